# YouTube-VIS 2021 converted to CocoVID by mmdet's tools/dataset_converters/youtubevis2coco.py.
# Layout and download: README.md#youtube-vis-2021. Classes are read from the annotation file.
_base_ = './video_clips.py'
data_root = 'data/youtube_vis_2021/'
setup_hint = 'README.md#youtube-vis-2021'
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/youtube_vis_2021_train.json',
        data_prefix=dict(img_path='train/JPEGImages/'),
        setup_hint=setup_hint))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/youtube_vis_2021_valid.json',
        data_prefix=dict(img_path='valid/JPEGImages/'),
        setup_hint=setup_hint))
test_dataloader = val_dataloader
