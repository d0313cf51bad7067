# The synthetic world's own latent space: a small diffusers AutoencoderKL (4x down, 4 channels:
# 64x64 frames -> 16x16x4 latents) trained on the world's train frames, exported after training
# to work_dirs/synthetic_f4/vae/, the folder configs/trackdiff/synthetic_tiny.py reads.
#   python tools/train.py configs/autoencoder/synthetic_f4.py
_base_ = ['../_base_/default_runtime.py']

model = dict(
    type='FrameAutoencoder',
    vae=dict(
        in_channels=3,
        out_channels=3,
        down_block_types=('DownEncoderBlock2D', ) * 3,
        up_block_types=('UpDecoderBlock2D', ) * 3,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=64,
        mid_block_add_attention=False),  # 16x16 latents: convolutions see far enough
    kl_weight=1e-4,
    pixel_loss='mse')  # L1 lost the objects: 13 vs 19 dB inside boxes (docs/training.md run 6)

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='VideoFrameDataset',
        data_root='data/synthetic/',
        ann_file='annotations/train_cocoformat.json',
        data_prefix=dict(img_path='train/'),
        setup_hint='README.md#the-synthetic-world',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='PackFrameInputs'),
        ]))

max_iters = 1000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters + 1)
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=500, by_epoch=False, max_keep_ckpts=1))
custom_hooks = [dict(type='ExportAutoencoderHook', out_dir='vae')]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
