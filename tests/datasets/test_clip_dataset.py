import json
import os

import numpy as np
import pytest
from mmengine.registry import init_default_scope

from mmtrackgen.datasets import TrackletClipDataset
from mmtrackgen.datasets.transforms import FrameLoadError
from mmtrackgen.registry import DATASETS
from tests.factories import instance_colour, moving_track, write_cocovid

PIPELINE = [
    dict(type='LoadTrackletClip'),
    dict(type='ClipResize', scale=(64, 48)),
    dict(type='AssignInstanceSlots', num_slots=3),
    dict(type='TemplateCaption'),
    dict(type='PackClipInputs'),
]


@pytest.fixture
def data_root(tmp_path):
    videos = [
        dict(
            name='long',
            num_frames=10,
            size=(32, 24),
            tracks={
                1: moving_track(0, 0, 10, (2, 2), (6, 6), (2, 1)),
                2: moving_track(1, 3, 4, (20, 10), (8, 8), (0, 0)),
            }),
        dict(
            name='short',
            num_frames=3,
            size=(32, 24),
            tracks={5: moving_track(1, 0, 3, (1, 1), (4, 4), (1, 1))}),
    ]
    write_cocovid(str(tmp_path), videos)
    with open(tmp_path / 'annotations' / 'captions.json', 'w') as f:
        json.dump({'long': 'a square passes a circle'}, f)
    return tmp_path


def build(data_root, **kwargs):
    cfg = dict(
        type='TrackletClipDataset',
        data_root=str(data_root),
        ann_file='annotations/train.json',
        data_prefix=dict(img_path='train/'),
        clip_length=4,
        pipeline=PIPELINE)
    cfg.update(kwargs)
    init_default_scope('mmtrackgen')
    return DATASETS.build(cfg)


def test_clips_follow_length_stride_and_step(data_root):
    ds = build(data_root, frame_stride=2, clip_step=1)
    # 'long' has 10 frames: a clip spans 7, so starts 0..3; 'short' (3 frames) is skipped
    assert [c['frame_ids'] for c in (ds.get_data_info(i) for i in range(len(ds)))] == [[0, 2, 4, 6],
                                                                                       [1, 3, 5, 7],
                                                                                       [2, 4, 6, 8],
                                                                                       [3, 5, 7, 9]]
    default = build(data_root)  # non-overlapping clips of 4: starts 0 and 4 of 'long'
    assert [default.get_data_info(i)['clip_start'] for i in range(len(default))] == [0, 4]
    assert default.metainfo['classes'] == ('square', 'circle')  # read from the file


def test_item_holds_resized_frames_and_slot_tracklets(data_root):
    ds = build(data_root, clip_step=1)
    item = ds[3]  # frames 3..6 of 'long': instance 2 visible in all four
    frames, sample = item['inputs'], item['data_samples']
    assert frames.shape == (4, 3, 48, 64)
    assert sample.frame_ids == [3, 4, 5, 6] and sample.video_name == 'long'
    np.testing.assert_array_equal(sample.gt_instance_ids.numpy(), [1, 2, -1])
    assert sample.gt_visible[:, :2].all() and not sample.gt_visible[:, 2].any()
    # instance 1 at frame 3: [2 + 6, 2 + 3, 6, 6] xywh in a 32x24 frame
    np.testing.assert_allclose(
        sample.gt_boxes[0, 0].numpy(), [8 / 32, 5 / 24, 14 / 32, 11 / 24], rtol=1e-6)
    # the pixels inside instance 2's box carry its colour after resizing
    x1, y1, x2, y2 = (sample.gt_boxes[0, 1].numpy() * [64, 48, 64, 48]).astype(int)
    patch = frames[0, :, y1 + 2:y2 - 2, x1 + 2:x2 - 2].float().mean((1, 2)).numpy()
    np.testing.assert_allclose(patch, instance_colour(2), atol=4)
    assert sample.caption == 'a video of a square and a circle'


def test_captions_file_and_empty_clip_filter(data_root):
    ds = build(data_root, captions_file='annotations/captions.json')
    assert ds[0]['data_samples'].caption == 'a square passes a circle'
    assert len(build(data_root, clip_length=2, filter_cfg=dict(filter_empty_gt=True))) == 6


def test_missing_annotation_file_names_path_and_readme(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        build(tmp_path / 'nowhere', setup_hint='README.md#mot17')
    assert 'nowhere/annotations/train.json' in str(info.value)
    assert 'README.md#mot17' in str(info.value)


def test_missing_and_corrupt_frames_name_video_frame_and_file(data_root):
    ds = build(data_root)
    os.remove(data_root / 'train' / 'long' / 'img1' / '000003.jpg')
    with pytest.raises(FrameLoadError, match=r"video 'long', frame 2: .*000003.jpg' does not"):
        ds[0]
    (data_root / 'train' / 'long' / 'img1' / '000006.jpg').write_bytes(b'not a jpeg')
    with pytest.raises(FrameLoadError, match=r"video 'long', frame 5: .*000006.jpg' cannot be"):
        ds[1]


def test_invalid_annotation_stops_at_build(data_root):
    path = data_root / 'annotations' / 'train.json'
    ann = json.loads(path.read_text())
    ann['annotations'][4]['bbox'][2] = -1
    path.write_text(json.dumps(ann))
    with pytest.raises(
            ValueError, match=r"train.json', video 'long', frame \d+, field "
            r"'annotations.bbox'"):
        build(data_root)


def test_bad_arguments():
    with pytest.raises(ValueError, match='clip_length'):
        TrackletClipDataset(clip_length=0, ann_file='x.json')
