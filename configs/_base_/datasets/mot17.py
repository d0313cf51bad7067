# MOT17 converted to CocoVID by mmdet's tools/dataset_converters/mot2coco.py (half splits).
# Layout and download: README.md#mot17. Crowded: 32 slots, the most visible people kept.
_base_ = './video_clips.py'
data_root = 'data/MOT17/'
setup_hint = 'README.md#mot17'
num_slots = 32
train_pipeline = [
    dict(type='LoadTrackletClip'),
    dict(type='ClipResize', scale=(480, 320)),
    dict(type='ClipRandomFlip', prob=0.5),
    dict(type='AssignInstanceSlots', num_slots=num_slots, overflow='most_visible'),
    dict(type='TemplateCaption', template='a street scene with {objects}'),
    dict(type='PackClipInputs'),
]
test_pipeline = [
    dict(type='LoadTrackletClip'),
    dict(type='ClipResize', scale=(480, 320)),
    dict(type='AssignInstanceSlots', num_slots=num_slots, overflow='most_visible'),
    dict(type='TemplateCaption', template='a street scene with {objects}'),
    dict(type='PackClipInputs'),
]
common = dict(data_root=data_root, metainfo=dict(classes=('pedestrian', )), setup_hint=setup_hint)
train_dataloader = dict(
    dataset=dict(
        **common,
        ann_file='annotations/half-train_cocoformat.json',
        data_prefix=dict(img_path='train/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        **common,
        ann_file='annotations/half-val_cocoformat.json',
        data_prefix=dict(img_path='train/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
