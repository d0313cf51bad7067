# The authors' released TrackDiffusion weights on YouTube-VIS 2021 (16 frames, 480x320, 20 slots):
# convert them with tools/convert_authors_checkpoint.py, then generate, evaluate or fine-tune
# (docs/pretrained.md#the-authors-released-weights).
_base_ = [
    '../_base_/models/trackdiffusion_authors_t2v.py', '../_base_/datasets/ytvis2021.py',
    '../_base_/schedules/adamw_50k.py', '../_base_/default_runtime.py'
]
model = dict(tracklet_encoder=dict(category_embedding=dict(class_names={{_base_.classes}})))
# No TrimFrozenWeightsHook: the generator has no pretrained folder to restore frozen layers from,
# so every checkpoint keeps all its weights.
custom_hooks = [dict(type='EMAHook', momentum=1e-4, update_buffers=False, priority=49)]
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
