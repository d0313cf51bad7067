# mmdet's ByteTrack YOLOX-X recipe (8 GPUs x 4; CrowdHuman + MOT17 half-train frames) with the
# frames of a tools/generate.py folder (configs/trackdiff/mot17.py) added to its detector's
# training set, tested on half-val. The COCO YOLOX-X weights are a local file (docs/trackers.md).
_base_ = [
    'mmdet::bytetrack/bytetrack_yolox_x_8xb4-80e_crowdhuman-mot17halftrain_test-mot17halfval.py'
]
default_scope = 'mmtrackgen'
generated_root = 'data/generated/mot17/'
generated_ratio = 1  # frames are sampled: the generated set is repeated this many times
detector_checkpoint = 'data/pretrained/yolox_x_8x8_300e_coco_20211126_140254-1ef88d67.pth'

model = dict(detector=dict(init_cfg=dict(checkpoint=detector_checkpoint)))
real_train = _base_.train_dataloader.dataset.dataset.datasets  # MOT17, CrowdHuman train, val
generated_train = dict(
    real_train[0], data_root=generated_root, ann_file='annotations.json', data_prefix=dict(img=''))
train_dataloader = dict(
    dataset=dict(
        dataset=dict(datasets=[
            *real_train,
            dict(type='RepeatDataset', times=generated_ratio, dataset=generated_train),
        ])))
val_evaluator = [_base_.val_evaluator, dict(type='mmtrackgen.GeneratedTrackMetric', prefix='track')]
test_evaluator = val_evaluator
