# mmdet's ByteTrack recipe (YOLOX-X, CrowdHuman + MOT17) shrunk for the synthetic world on CPU:
# a YOLOX of depth 0.33 and width 0.25 trained from scratch (nothing downloaded), 128 px input,
# the generator's classes, an iteration schedule. As in mmdet, only the detector is trained,
# on single frames (Mosaic, MixUp); ByteTracker associates its boxes at test time.
_base_ = [
    'mmdet::bytetrack/bytetrack_yolox_x_8xb4-80e_crowdhuman-mot17halftrain_test-mot17halfval.py',
    './synthetic_world.py'
]
default_scope = 'mmtrackgen'  # our metric; mmdet's parts keep their mmdet scope
img_scale = _base_.input_size
lr = 0.0025
max_iters = 10000  # about 15 min at 0.09 s an iteration (4 frames) on one busy CPU thread

model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(type='BatchSyncRandomResize', random_size_range=(96, 160), size_divisor=32)
    ]),
    detector=dict(
        backbone=dict(deepen_factor=0.33, widen_factor=0.25),
        neck=dict(in_channels=[64, 128, 256], out_channels=64, num_csp_blocks=1),
        bbox_head=dict(num_classes=_base_.num_classes, in_channels=64, feat_channels=64),
        init_cfg=None),
    # A detector trained from scratch on few frames outputs boxes of zero height at times,
    # which stop mmdet's ByteTracker (its Kalman noise scales with the height); drop them.
    tracker=dict(type='mmtrackgen.MinSizeByteTracker', min_box_size=1.0))

train_pipeline = [
    dict(type='Mosaic', img_scale=img_scale, pad_val=114.0, bbox_clip_border=False),
    dict(
        type='RandomAffine',
        scaling_ratio_range=(0.5, 1.5),  # 0.1 would shrink 10 px objects to a pixel
        border=(-img_scale[0] // 2, -img_scale[1] // 2),
        bbox_clip_border=False),
    dict(
        type='MixUp',
        img_scale=img_scale,
        ratio_range=(0.8, 1.6),
        pad_val=114.0,
        bbox_clip_border=False),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=img_scale, keep_ratio=True, clip_object_border=False),
    dict(type='Pad', size_divisor=32, pad_val=dict(img=(114.0, 114.0, 114.0))),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(
        type='TransformBroadcaster',
        transforms=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=img_scale, keep_ratio=True),
            dict(type='Pad', size_divisor=32, pad_val=dict(img=(114.0, 114.0, 114.0))),
            dict(type='LoadTrackAnnotations'),
        ]),
    dict(type='PackTrackInputs')
]

# The frames the leaf configs combine (CocoDataset reads a CocoVID file as images).
real_train = dict(
    type='CocoDataset',
    data_root=_base_.real_root,
    ann_file='annotations/train_cocoformat.json',
    data_prefix=dict(img='train/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=32),
    metainfo=_base_.world_metainfo,
    pipeline=[dict(type='LoadImageFromFile'),
              dict(type='LoadAnnotations', with_bbox=True)])
generated_train = dict(
    real_train,
    data_root=_base_.generated_root,
    ann_file='annotations.json',
    data_prefix=dict(img=''))

train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    sampler=dict(type='InfiniteSampler'),
    dataset=dict(dataset=dict(_delete_=True, **real_train), pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(_delete_=True, **_base_.world_val_data, pipeline=test_pipeline))
test_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(_delete_=True, **_base_.world_test_data, pipeline=test_pipeline))
val_evaluator = _base_.world_evaluator
test_evaluator = _base_.world_evaluator

optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='QuadraticWarmupLR', by_epoch=False, begin=0, end=100),
    dict(
        type='CosineAnnealingLR',
        eta_min=lr * 0.05,
        by_epoch=False,
        begin=100,
        T_max=max_iters - 100,
        end=max_iters)
]
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
# mmdet's YOLOXModeSwitchHook (no Mosaic/MixUp for the last epochs) counts epochs: left out.
custom_hooks = [
    dict(type='SyncNormHook', priority=48),
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0001,
        update_buffers=True,
        priority=49)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=max_iters // 4, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
