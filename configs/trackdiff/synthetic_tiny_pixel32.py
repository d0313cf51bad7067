# The embedded default until 2026-12: a 4M-parameter TrackDiffusion in pixel space on the
# synthetic world, 8 frames of 32x32 (half the world's resolution), up to 4 instances, no caption
# path. Kept for the figures of docs/training.md (runs 1-4), the micro test configs and the
# benchmarks; the default is now synthetic_tiny.py (64x64 through the world's own autoencoder).
_base_ = ['../_base_/datasets/synthetic.py', '../_base_/default_runtime.py']

num_frames = 8
num_slots = 4
image_size = (32, 32)
classes = ('square', 'circle', 'triangle', 'cross')

model = dict(
    type='TrackDiffusion',
    data_preprocessor=dict(type='TrackDiffusionDataPreprocessor'),  # pixel space, no text
    generator=dict(
        type='TrackletUNet3D',
        sample_size=image_size[0],
        in_channels=3,
        out_channels=3,
        # attention (and with it grounding and the enhancer) only at 16x16 and 8x8
        down_block_types=('DownBlock3D', 'CrossAttnDownBlock3D', 'CrossAttnDownBlock3D'),
        up_block_types=('CrossAttnUpBlock3D', 'CrossAttnUpBlock3D', 'UpBlock3D'),
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=64,
        attention_head_dim=8,
        grounding_context_dim=64,
        enhancer_track_dim=32,
        # Learning boxes fast from scratch (docs/training.md): tokens know where they are,
        # instances are attended to only inside their boxes, and the new gates start open.
        token_position_freqs=4,
        ground_within_boxes=True,
        gate_init=1.0),
    tracklet_encoder=dict(
        type='TrackletEncoder',
        token_dim=64,
        track_dim=32,
        track_heads=4,
        category_embedding=dict(type='CategoryTable', num_classes=len(classes), embed_dim=32)),
    noise_scheduler=dict(
        type='DDPMScheduler', num_train_timesteps=1000, beta_schedule='squaredcos_cap_v2'),
    sampler='DDIMScheduler',
    prediction_type='v_prediction',  # smoother samples early in training than epsilon
    foreground_weight=2.0,
    caption_dropout=0.0,  # captions are not encoded in pixel space: nothing to drop
    tracklet_dropout=0.1,
    num_inference_steps=25,
    guidance_scale=2.0)

pipeline_resize = dict(type='ClipResize', scale=image_size)
train_pipeline = [
    dict(type='LoadTrackletClip'),
    pipeline_resize,
    dict(type='ClipRandomFlip', prob=0.5),
    dict(type='AssignInstanceSlots', num_slots=num_slots, overflow='most_visible', shuffle=True),
    dict(type='DrawSlotBoxes'),  # self-tracking stage 1, switched off by SelfTrackingHook
    dict(type='TemplateCaption'),
    dict(type='PackClipInputs'),
]
test_pipeline = [
    dict(type='LoadTrackletClip'),
    pipeline_resize,
    dict(type='AssignInstanceSlots', num_slots=num_slots, overflow='most_visible'),
    dict(type='TemplateCaption'),
    dict(type='PackClipInputs'),
]
train_dataloader = dict(batch_size=8, dataset=dict(clip_length=num_frames, pipeline=train_pipeline))
# No validation loop yet (metrics come with generation): held-out clips feed the sample previews.
preview_clips = dict(
    type='TrackletClipDataset',
    data_root='data/synthetic/',
    ann_file='annotations/val_cocoformat.json',
    data_prefix=dict(img_path='val/'),
    metainfo=dict(classes=classes),
    clip_length=num_frames,
    test_mode=True,
    pipeline=test_pipeline)
# `tools/generate.py --augment K`: K new layouts per input layout, each policy applied with
# its own probability (mmtrackgen/generation/augment.py).
tracklet_augment = [
    dict(type='HorizontalFlip', prob=0.5),
    dict(type='TemporalResample', speed=(0.75, 1.5), prob=0.5),
    dict(type='TranslateScaleJitter', translate=0.1, scale=0.2, prob=0.5),
    dict(type='InstanceDrop', drop_prob=0.3, min_instances=1, prob=0.3),
    dict(type='InstanceInsert', num_instances=(1, 1), max_instances=num_slots, prob=0.3),
]
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None

max_iters = 900  # about an hour on 2 CPU cores
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters + 1)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-2),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=75, by_epoch=False, max_keep_ckpts=3))
custom_hooks = [
    dict(type='SelfTrackingHook', switch_iter=1 / 3),  # clean clips for the last two thirds
    dict(type='SampleVisualizationHook', dataset=preview_clips, interval=75, num_clips=4),
]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
