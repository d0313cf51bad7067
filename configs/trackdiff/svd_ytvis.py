# TrackDiffusion image-to-video (Stable Video Diffusion) on YouTube-VIS 2021: 16 frames, 480x320.
_base_ = [
    '../_base_/models/trackdiffusion_svd.py', '../_base_/datasets/ytvis2021.py',
    '../_base_/schedules/adamw_50k.py', '../_base_/default_runtime.py'
]
classes = ('airplane', 'bear', 'bird', 'boat', 'car', 'cat', 'cow', 'deer', 'dog', 'duck',
           'earless_seal', 'elephant', 'fish', 'flying_disc', 'fox', 'frog', 'giant_panda',
           'giraffe', 'horse', 'leopard', 'lizard', 'monkey', 'motorbike', 'mouse', 'parrot',
           'person', 'rabbit', 'shark', 'skateboard', 'snake', 'snowboard', 'squirrel', 'surfboard',
           'tennis_racket', 'tiger', 'train', 'truck', 'turtle', 'whale', 'zebra')
model = dict(tracklet_encoder=dict(category_embedding=dict(class_names=classes)))
train_dataloader = dict(dataset=dict(metainfo=dict(classes=classes)))
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
