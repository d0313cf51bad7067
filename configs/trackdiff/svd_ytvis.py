# TrackDiffusion image-to-video (Stable Video Diffusion) on YouTube-VIS 2021: 16 frames, 480x320.
_base_ = [
    '../_base_/models/trackdiffusion_svd.py', '../_base_/datasets/ytvis2021.py',
    '../_base_/schedules/adamw_50k.py', '../_base_/default_runtime.py'
]
# The CLIP category embedding needs the class names when it is built, before any data.
model = dict(tracklet_encoder=dict(category_embedding=dict(class_names={{_base_.classes}})))
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
