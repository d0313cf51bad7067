# synthetic_tiny_pixel32 shrunk for tests: 16x16 frames, 4-frame clips, a micro UNet, 4 iterations.
_base_ = ['../../configs/trackdiff/synthetic_tiny_pixel32.py']

num_frames = 4

model = dict(
    generator=dict(
        sample_size=16,
        down_block_types=('CrossAttnDownBlock3D', 'DownBlock3D'),
        up_block_types=('UpBlock3D', 'CrossAttnUpBlock3D'),
        block_out_channels=(8, 16),
        norm_num_groups=4,
        cross_attention_dim=16,
        attention_head_dim=2,
        grounding_context_dim=16,
        enhancer_track_dim=8),
    tracklet_encoder=dict(token_dim=16, track_dim=8, track_heads=2),
    num_inference_steps=2)
train_pipeline = [
    dict(type='LoadTrackletClip'),
    dict(type='ClipResize', scale=(16, 16)),
    dict(type='AssignInstanceSlots', num_slots=4, shuffle=True),
    dict(type='DrawSlotBoxes'),
    dict(type='PackClipInputs'),
]
test_pipeline = [
    dict(type='LoadTrackletClip'),
    dict(type='ClipResize', scale=(16, 16)),
    dict(type='AssignInstanceSlots', num_slots=4),
    dict(type='PackClipInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(clip_length=4, pipeline=train_pipeline))
preview_clips = dict(
    type='TrackletClipDataset',
    data_root='data/synthetic/',
    ann_file='annotations/val_cocoformat.json',
    data_prefix=dict(img_path='val/'),
    clip_length=4,
    test_mode=True,
    pipeline=test_pipeline)
train_cfg = dict(max_iters=4, val_interval=100)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2, max_keep_ckpts=3))
custom_hooks = [
    dict(type='SelfTrackingHook', switch_iter=2),
    dict(type='EMAHook', momentum=0.1, priority=49),  # as the full-size recipe uses it
    dict(type='SampleVisualizationHook', dataset=preview_clips, interval=2, num_clips=2),
]
