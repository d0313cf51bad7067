# TrackDiffusion text-to-video on GOT-10k: one object per clip, its class name embedded by CLIP.
_base_ = [
    '../_base_/models/trackdiffusion_t2v.py', '../_base_/datasets/got10k.py',
    '../_base_/schedules/adamw_50k.py', '../_base_/default_runtime.py'
]
# GOT-10k has hundreds of classes: the dataset and the embedding both take them, in the same
# order, from the converted annotation file.
model = dict(
    tracklet_encoder=dict(
        category_embedding=dict(
            class_names='data/got10k/annotations/got10k_train_cocoformat.json')))
# No validation loop yet: generation metrics come with the generation tools.
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
