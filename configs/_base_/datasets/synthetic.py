# The synthetic tracklet world that `python tools/make_synthetic.py --out data/synthetic` writes
# (the README's main job does it). Clips of 8 frames, up to 4 instances, frames kept at 64x64.
dataset_type = 'TrackletClipDataset'
data_root = 'data/synthetic/'
classes = ('square', 'circle', 'triangle', 'cross')
setup_hint = 'README.md#the-synthetic-world'

train_pipeline = [
    dict(type='LoadTrackletClip'),
    dict(type='ClipRandomFlip', prob=0.5),
    dict(type='AssignInstanceSlots', num_slots=4, overflow='most_visible', shuffle=True),
    dict(type='TemplateCaption'),
    dict(type='PackClipInputs'),
]
test_pipeline = [
    dict(type='LoadTrackletClip'),
    dict(type='AssignInstanceSlots', num_slots=4, overflow='most_visible'),
    dict(type='TemplateCaption'),
    dict(type='PackClipInputs'),
]
common = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=dict(classes=classes),
    clip_length=8,
    frame_stride=1,
    captions_file='annotations/captions.json',
    setup_hint=setup_hint)

train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        **common,
        ann_file='annotations/train_cocoformat.json',
        data_prefix=dict(img_path='train/'),
        clip_step=2,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        **common,
        ann_file='annotations/val_cocoformat.json',
        data_prefix=dict(img_path='val/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        **common,
        ann_file='annotations/test_cocoformat.json',
        data_prefix=dict(img_path='test/'),
        test_mode=True,
        pipeline=test_pipeline))
