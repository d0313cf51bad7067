# YouTube-VIS 2021 converted to CocoVID by mmdet's tools/dataset_converters/youtubevis2coco.py.
# Layout and download: README.md#youtube-vis-2021. The 40 classes, in the annotation file's
# order; leaf configs hand them to the model's category embedding (`_base_.classes`).
_base_ = './video_clips.py'
classes = ('airplane', 'bear', 'bird', 'boat', 'car', 'cat', 'cow', 'deer', 'dog', 'duck',
           'earless_seal', 'elephant', 'fish', 'flying_disc', 'fox', 'frog', 'giant_panda',
           'giraffe', 'horse', 'leopard', 'lizard', 'monkey', 'motorbike', 'mouse', 'parrot',
           'person', 'rabbit', 'shark', 'skateboard', 'snake', 'snowboard', 'squirrel', 'surfboard',
           'tennis_racket', 'tiger', 'train', 'truck', 'turtle', 'whale', 'zebra')
data_root = 'data/youtube_vis_2021/'
setup_hint = 'README.md#youtube-vis-2021'
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/youtube_vis_2021_train.json',
        metainfo=dict(classes=classes),
        data_prefix=dict(img_path='train/JPEGImages/'),
        setup_hint=setup_hint))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/youtube_vis_2021_valid.json',
        data_prefix=dict(img_path='valid/JPEGImages/'),
        setup_hint=setup_hint))
test_dataloader = val_dataloader
