# GOT-10k (one tracked object per video) in CocoVID, written by
# tools/dataset_converters/got10k_to_cocovid.py. Layout and download: README.md#got-10k.
_base_ = './video_clips.py'
data_root = 'data/got10k/'
setup_hint = 'README.md#got-10k'
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/got10k_train_cocoformat.json',
        data_prefix=dict(img_path='train/'),
        setup_hint=setup_hint))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/got10k_val_cocoformat.json',
        data_prefix=dict(img_path='val/'),
        setup_hint=setup_hint))
test_dataloader = val_dataloader
