# mmdet's QDTrack R50-FPN MOT17 recipe (8 GPUs x 2) trained on MOT17 half-train plus a folder
# of tools/generate.py (configs/trackdiff/mot17.py), tested on half-val. The weights are local
# files (docs/trackers.md): nothing is downloaded.
_base_ = ['mmdet::qdtrack/qdtrack_faster-rcnn_r50_fpn_8xb2-4e_mot17halftrain_test-mot17halfval.py']
default_scope = 'mmtrackgen'
generated_root = 'data/generated/mot17/'
generated_ratio = 1
# Videos are sampled (TrackImgSampler cannot index a ConcatDataset), so MOT17's 7 long videos
# are repeated: about n_generated_clips * generated_ratio / 7 gives an even mix.
real_repeat = 25
max_iters = 1400  # about 4 epochs of half-train when half of the samples are generated
backbone_checkpoint = 'data/pretrained/resnet50_msra-5891d200.pth'
detector_checkpoint = 'data/pretrained/faster_rcnn_r50_fpn_1x_coco-person_20201216_175929-d022e227.pth'  # noqa: E501

model = dict(
    detector=dict(
        backbone=dict(init_cfg=dict(checkpoint=backbone_checkpoint)),
        init_cfg=dict(checkpoint=detector_checkpoint)))
real_train = _base_.train_dataloader.dataset
# BaseVideoDataset drops frames without boxes (MOTChallengeDataset stops at them).
generated_train = dict(
    type='BaseVideoDataset',
    data_root=generated_root,
    ann_file='annotations.json',
    data_prefix=dict(img_path=''),
    metainfo=dict(classes=('pedestrian', )),
    pipeline=_base_.train_pipeline)
train_dataloader = dict(
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(type='RepeatDataset', times=real_repeat, dataset=real_train),
            dict(type='RepeatDataset', times=generated_ratio, dataset=generated_train),
        ]))
val_evaluator = [
    *_base_.val_evaluator,
    dict(type='mmtrackgen.GeneratedTrackMetric', prefix='track')
]
test_evaluator = val_evaluator
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(
        type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[max_iters * 3 // 4])
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters // 4))
log_processor = dict(by_epoch=False)
