# TrackDiffusion text-to-video on MOT17 (half-train): pedestrians only, 32 slots.
_base_ = [
    '../_base_/models/trackdiffusion_t2v.py', '../_base_/datasets/mot17.py',
    '../_base_/schedules/adamw_50k.py', '../_base_/default_runtime.py'
]
model = dict(tracklet_encoder=dict(category_embedding=dict(class_names=('pedestrian', ))))
# No validation loop yet: generation metrics come with the generation tools.
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
