# Clips of a real CocoVID video dataset at the paper's size: 16 frames resized (not cropped) to
# 480x320, up to 20 instances. Leaf dataset configs set the paths, classes and slot count.
dataset_type = 'TrackletClipDataset'
num_frames = 16
num_slots = 20
image_scale = (480, 320)  # (W, H)

train_pipeline = [
    dict(type='LoadTrackletClip'),
    dict(type='ClipResize', scale=image_scale),
    dict(type='ClipRandomFlip', prob=0.5),
    dict(type='AssignInstanceSlots', num_slots=num_slots, overflow='most_visible'),
    dict(type='TemplateCaption'),
    dict(type='PackClipInputs'),
]
test_pipeline = [
    dict(type='LoadTrackletClip'),
    dict(type='ClipResize', scale=image_scale),
    dict(type='AssignInstanceSlots', num_slots=num_slots, overflow='most_visible'),
    dict(type='TemplateCaption'),
    dict(type='PackClipInputs'),
]
train_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type=dataset_type, clip_length=num_frames, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type=dataset_type, clip_length=num_frames, test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
