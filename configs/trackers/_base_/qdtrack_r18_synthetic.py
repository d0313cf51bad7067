# mmdet's QDTrack recipe (Faster R-CNN R50-FPN, MOT17) shrunk for the synthetic world on CPU:
# ResNet-18 trained from scratch (nothing downloaded), 128 px input, the generator's classes,
# an iteration schedule with the real/generated mix of the leaf configs.
_base_ = [
    'mmdet::qdtrack/qdtrack_faster-rcnn_r50_fpn_8xb2-4e_mot17halftrain_test-mot17halfval.py',
    './synthetic_world.py'
]
default_scope = 'mmtrackgen'  # our metric; mmdet's parts keep their mmdet scope
img_scale = _base_.input_size
max_iters = 2000  # about 45 min at 1.4 s an iteration on one busy CPU thread (docs/trackers.md)

model = dict(
    detector=dict(
        backbone=dict(
            depth=18,
            style='pytorch',
            frozen_stages=-1,
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=False,
            init_cfg=None),
        neck=dict(in_channels=[64, 128, 256, 512]),
        # objects are 10-50 px at 128 px: anchors from 16 px (stride 4) instead of 32
        rpn_head=dict(anchor_generator=dict(scales=[4])),
        roi_head=dict(bbox_head=dict(num_classes=_base_.num_classes)),
        # a few objects in a 128 px frame: a quarter of the RoIs of a 1088 px MOT17 frame
        train_cfg=dict(
            rpn_proposal=dict(nms_pre=500, max_per_img=250), rcnn=dict(sampler=dict(num=128))),
        test_cfg=dict(rpn=dict(nms_pre=250, max_per_img=250)),
        init_cfg=None),
    track_head=dict(train_cfg=dict(sampler=dict(num=64))))

train_pipeline = [
    dict(type='UniformRefFrameSample', num_ref_imgs=1, frame_range=10, filter_key_img=True),
    dict(
        type='TransformBroadcaster',
        share_random_params=True,
        transforms=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadTrackAnnotations'),
            dict(
                type='RandomResize',
                scale=img_scale,
                ratio_range=(0.8, 1.2),
                keep_ratio=True,
                clip_object_border=False),
            dict(type='PhotoMetricDistortion')
        ]),
    dict(
        type='TransformBroadcaster',
        share_random_params=False,
        transforms=[dict(type='RandomCrop', crop_size=img_scale, bbox_clip_border=False)]),
    dict(
        type='TransformBroadcaster',
        share_random_params=True,
        transforms=[dict(type='RandomFlip', prob=0.5)]),
    dict(type='PackTrackInputs')
]
test_pipeline = [
    dict(
        type='TransformBroadcaster',
        transforms=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=img_scale, keep_ratio=True),
            dict(type='LoadTrackAnnotations')
        ]),
    dict(type='PackTrackInputs')
]

# The training sets the leaf configs combine. BaseVideoDataset, not mmdet's MOT17 choice
# MOTChallengeDataset, which stops at a frame without objects (objects here leave the view);
# it drops such frames from training. A video is sampled, then a key frame in it and a
# reference frame near it: mmdet's frame-level TrackImgSampler cannot index a ConcatDataset
# (it passes (video, frame) tuples that ConcatDataset/RepeatDataset do not accept), so every
# variant samples videos alike (InfiniteSampler: the iteration loop never restarts it) and the
# mix is counted in videos (clips for generated data).
real_train = dict(
    type='BaseVideoDataset',
    data_root=_base_.real_root,
    ann_file='annotations/train_cocoformat.json',
    data_prefix=dict(img_path='train/'),
    metainfo=_base_.world_metainfo,
    pipeline=train_pipeline)
generated_train = dict(
    real_train,
    data_root=_base_.generated_root,
    ann_file='annotations.json',
    data_prefix=dict(img_path=''))

train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(_delete_=True, **real_train))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(_delete_=True, **_base_.world_val_data, pipeline=test_pipeline))
test_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(_delete_=True, **_base_.world_test_data, pipeline=test_pipeline))
val_evaluator = _base_.world_evaluator
test_evaluator = _base_.world_evaluator

# 8 GPUs x 2 at lr 0.02 in mmdet; one process x 2 from scratch: 0.01 after a warm-up.
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(
        type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[max_iters * 3 // 4])
]
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=max_iters // 4, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
