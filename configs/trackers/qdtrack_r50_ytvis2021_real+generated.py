# mmdet's QDTrack R50-FPN recipe (8 GPUs x 2) on YouTube-VIS 2021 boxes (40 classes) plus a
# folder of tools/generate.py (configs/trackdiff/ytvis.py). The valid split has no public
# annotations, so the last `val_videos` train videos are held out for testing. The backbone
# is a local file (docs/trackers.md): nothing is downloaded.
_base_ = ['mmdet::qdtrack/qdtrack_faster-rcnn_r50_fpn_8xb2-4e_mot17halftrain_test-mot17halfval.py']
default_scope = 'mmtrackgen'
data_root = 'data/youtube_vis_2021/'
generated_root = 'data/generated/ytvis2021/'
generated_ratio = 1
val_videos = 300
train_videos = 2985 - val_videos  # YouTube-VIS 2021 train has 2985 videos
max_iters = 20000  # about 4 passes over the ~80k annotated train frames at 8 x 2
backbone_checkpoint = 'data/pretrained/resnet50_msra-5891d200.pth'

model = dict(
    detector=dict(
        backbone=dict(init_cfg=dict(checkpoint=backbone_checkpoint)),
        roi_head=dict(bbox_head=dict(num_classes=40)),
        init_cfg=None))  # mmdet's COCO-person detector has one class
ytvis = dict(
    type='YouTubeVISDataset',
    dataset_version='2021',
    data_root=data_root,
    ann_file='annotations/youtube_vis_2021_train.json',
    data_prefix=dict(img_path='train/JPEGImages/'))
generated_train = dict(
    ytvis,
    data_root=generated_root,
    ann_file='annotations.json',
    data_prefix=dict(img_path=''),
    pipeline=_base_.train_pipeline)
train_dataloader = dict(
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(ytvis, indices=train_videos, pipeline=_base_.train_pipeline),
            dict(type='RepeatDataset', times=generated_ratio, dataset=generated_train),
        ]))
val_dataloader = dict(
    dataset=dict(
        _delete_=True, **ytvis, indices=-val_videos, test_mode=True, pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader
# mmdet's MOT metric scores 'pedestrian' only and its YouTube-VIS metric needs masks.
val_evaluator = [dict(type='mmtrackgen.GeneratedTrackMetric', prefix='track')]
test_evaluator = val_evaluator
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(
        type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[max_iters * 3 // 4])
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters // 4))
log_processor = dict(by_epoch=False)
