"""Tracklet files: both formats load, every malformed case names where it is, cutting, and
the CocoVID / JSON writers round-trip."""
import copy
import json
import math
import os

import numpy as np
import pytest

from mmtrackgen.datasets.tracklet_file import (BOX_TOLERANCE, check_layout, cut_layout,
                                               layouts_from_cocovid, layouts_to_cocovid,
                                               load_tracklet_file, write_tracklet_file)
from mmtrackgen.datasets.tracklets import TrackletAnnotationError, validate_cocovid
from mmtrackgen.structures import TrackletLayout
from tests.factories import moving_track, write_cocovid


def valid_tracklets():
    """Two clips of 4 and 3 frames, 40 wide and 30 high."""
    return {
        'format':
        'mmtrackgen-tracklets',
        'version':
        1,
        'categories': ['car', 'person'],
        'clips': [{
            'name':
            'clip_a',
            'image_size': [30, 40],
            'num_frames':
            4,
            'caption':
            'a car and a person',
            'instances': [{
                'id': 3,
                'category': 'car',
                'boxes': [[1, 2, 11, 12], [2, 2, 12, 12], None, [4, 2, 14, 12]],
            }, {
                'id': 7,
                'category': 'person',
                'boxes': [None, [20, 5, 25, 25], [21, 5, 26, 25], [22, 5, 27, 25]],
                'visibility': [None, 0.5, None, 1.0],
            }]
        }, {
            'name':
            'clip_b',
            'image_size': [30, 40],
            'num_frames':
            3,
            'frame_ids': [10, 11, 13],
            'instances': [{
                'id': 1,
                'category': 'car',
                'boxes': [[0, 0, 40, 30], [-0.5, 0, 40.5, 30], [39, 29, 40, 30]]
            }]
        }]
    }


def write(tmp_path, ann, name='tracklets.json'):
    path = tmp_path / name
    with open(path, 'w') as f:
        json.dump(ann, f)
    return str(path)


def assert_same_layout(a: TrackletLayout, b: TrackletLayout, frame_ids=True):
    assert (a.name, tuple(a.image_size), a.categories, a.caption) == \
        (b.name, tuple(b.image_size), b.categories, b.caption)
    np.testing.assert_array_equal(a.visible, b.visible)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.visibility, b.visibility)
    np.testing.assert_array_equal(a.instance_ids, b.instance_ids)
    if frame_ids:
        np.testing.assert_array_equal(a.frame_ids, b.frame_ids)


def test_json_format_loads(tmp_path):
    path = write(tmp_path, valid_tracklets())
    a, b = load_tracklet_file(path)
    check_layout(a), check_layout(b)
    assert a.name == 'clip_a' and a.image_size == (30, 40) and a.caption == 'a car and a person'
    assert a.categories == ['car', 'person'] and a.instance_ids.tolist() == [3, 7]
    assert a.boxes.shape == (4, 2, 4) and a.boxes.dtype == np.float32
    assert a.visible.tolist() == [[True, False], [True, True], [False, True], [True, True]]
    assert a.boxes[3, 0].tolist() == [4, 2, 14, 12] and a.boxes[2, 0].tolist() == [0, 0, 0, 0]
    np.testing.assert_allclose(a.visibility[:, 1], [0, 0.5, 1, 1])
    assert a.frame_ids.tolist() == [0, 1, 2, 3] and a.source == path
    # frame_ids kept; a box up to BOX_TOLERANCE past the border is clipped to the image.
    assert b.frame_ids.tolist() == [10, 11, 13] and b.caption is None
    assert b.boxes[1, 0].tolist() == [0, 0, 40, 30]


def test_cocovid_loads_frames_in_frame_id_order_with_gaps_kept(tmp_path):
    path = write_cocovid(
        str(tmp_path), [
            dict(
                name='v1',
                num_frames=5,
                size=(32, 24),
                tracks={
                    9: moving_track(0, 1, 3, (2, 2), (6, 5), (1, 0)),
                    4: (1, {
                        0: [28, 10, 8, 6]
                    }),
                })
        ],
        write_frames=False)
    ann = json.load(open(path))
    ann['images'] = [im for im in ann['images'] if im['frame_id'] != 2][::-1]  # gap, shuffled
    ann['annotations'] = [a for a in ann['annotations'] if a['image_id'] != 3]
    ann['annotations'][0]['visibility'] = 0.25
    path = write(tmp_path, ann, 'coco.json')
    (layout, ) = load_tracklet_file(path)
    check_layout(layout)
    assert layout.name == 'v1' and layout.image_size == (24, 32) and layout.source == path
    assert layout.frame_ids.tolist() == [0, 1, 3, 4]
    assert layout.instance_ids.tolist() == [4, 9]  # sorted by id
    assert layout.categories == ['circle', 'square']
    assert layout.visible.tolist() == [[True, False], [False, True], [False, True], [False, False]]
    # partly outside: clipped to the image (CocoVID allows MOT-style full-extent boxes)
    assert layout.boxes[0, 0].tolist() == [28, 10, 32, 16]
    assert layout.boxes[2, 1].tolist() == [4, 2, 10, 7]
    assert layout.visibility[0, 0] == 0.25 and layout.visibility[1, 1] == 1


def test_not_clipped_when_not_checking(tmp_path):
    ann = valid_tracklets()
    ann['clips'][0]['instances'][0]['boxes'][0] = [-10, 2, 60, 12]
    (a, _) = load_tracklet_file(write(tmp_path, ann), check_boxes_in_image=False)
    assert a.boxes[0, 0].tolist() == [-10, 2, 60, 12]


def _set(path, value):
    """A mutation setting ``ann[path...] = value``."""

    def mutate(ann):
        target = ann
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path):

    def mutate(ann):
        target = ann
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


C0 = ('clips', 0)
I0 = C0 + ('instances', 0)
I1 = C0 + ('instances', 1)
# (mutation, clip named in the error, frame, field, words of the message)
MALFORMED = {
    'empty_object': (lambda ann: ann.clear(), None, None, None, 'neither'),
    'wrong_format_name': (_set(('format', ), 'other'), None, None, 'format', 'expected'),
    'newer_version': (_set(('version', ), 2), None, None, 'version', 'newer'),
    'unknown_top_key': (_set(('videoz', ), []), None, None, 'videoz', 'unknown'),
    'clips_not_list': (_set(('clips', ), {}), None, None, 'clips', 'expected a list'),
    'no_clips': (_set(('clips', ), []), None, None, 'clips', 'no clips'),
    'categories_repeat': (_set(('categories', ),
                               ['car', 'car']), None, None, 'categories[1]', 'twice'),
    'clip_not_object': (_set(C0, 3), None, None, 'clips[0]', 'expected an object'),
    'missing_name': (_delete(C0 + ('name', )), None, None, 'clips[0].name', 'missing'),
    'empty_name': (_set(C0 + ('name', ), ''), None, None, 'clips[0].name', 'non-empty'),
    'duplicate_clip_name': (_set(('clips', 1, 'name'),
                                 'clip_a'), 'clip_a', None, 'clips[1].name', 'also used'),
    'unknown_clip_key': (_set(C0 + ('instance', ),
                              []), 'clip_a', None, 'clips[0].instance', 'unknown'),
    'image_size_one_value':
    (_set(C0 + ('image_size', ),
          [30]), 'clip_a', None, 'clips[0].image_size', 'two positive integers'),
    'image_size_float':
    (_set(C0 + ('image_size', ),
          [30.5, 40]), 'clip_a', None, 'clips[0].image_size', 'two positive integers'),
    'image_size_zero': (_set(C0 + ('image_size', ), [0, 40]), 'clip_a', None, 'clips[0].image_size',
                        'two positive integers'),
    'num_frames_zero': (_set(C0 + ('num_frames', ),
                             0), 'clip_a', None, 'clips[0].num_frames', '>= 1'),
    'num_frames_string': (_set(C0 + ('num_frames', ),
                               '4'), 'clip_a', None, 'clips[0].num_frames', 'integer'),
    'caption_not_string': (_set(C0 + ('caption', ),
                                5), 'clip_a', None, 'clips[0].caption', 'string'),
    'frame_ids_decrease': (_set(('clips', 1, 'frame_ids'),
                                [3, 2, 5]), 'clip_b', 1, 'clips[1].frame_ids[1]', 'increase'),
    'instances_missing':
    (_delete(C0 + ('instances', )), 'clip_a', None, 'clips[0].instances', 'missing'),
    'instance_id_missing':
    (_delete(I0 + ('id', )), 'clip_a', None, 'clips[0].instances[0].id', 'missing'),
    'instance_id_string': (_set(I0 + ('id', ),
                                '3'), 'clip_a', None, 'clips[0].instances[0].id', 'integer'),
    'duplicate_instance_id': (_set(I1 + ('id', ),
                                   3), 'clip_a', None, 'clips[0].instances[1].id', 'also used'),
    'unknown_category': (_set(I1 + ('category', ), 'truck'), 'clip_a', None,
                         'clips[0].instances[1].category', 'unknown category'),
    'unknown_instance_key': (_set(I0 + ('visiblity', ), []), 'clip_a', None,
                             'clips[0].instances[0].visiblity', 'unknown'),
    'boxes_too_short': (_set(I0 + ('boxes', ), [[1, 2, 11, 12]] * 3), 'clip_a', None,
                        'clips[0].instances[0].boxes', 'num_frames = 4'),
    'boxes_not_list': (_set(I0 + ('boxes', ),
                            None), 'clip_a', None, 'clips[0].instances[0].boxes', 'num_frames = 4'),
    'box_three_numbers': (_set(I0 + ('boxes', 1), [1, 2, 3]), 'clip_a', 1,
                          'clips[0].instances[0].boxes[1]', 'four numbers'),
    'box_string': (_set(I0 + ('boxes', 1), [1, 2, 3, '4']), 'clip_a', 1,
                   'clips[0].instances[0].boxes[1]', 'four numbers'),
    'box_bool': (_set(I0 + ('boxes', 1), [1, 2, True, 4]), 'clip_a', 1,
                 'clips[0].instances[0].boxes[1]', 'four numbers'),
    'box_nan': (_set(I0 + ('boxes', 3), [1, 2, math.nan, 12]), 'clip_a', 3,
                'clips[0].instances[0].boxes[3]', 'non-finite'),
    'box_inf': (_set(I0 + ('boxes', 3), [1, 2, math.inf, 12]), 'clip_a', 3,
                'clips[0].instances[0].boxes[3]', 'non-finite'),
    'box_x2_le_x1': (_set(I0 + ('boxes', 0), [11, 2, 11, 12]), 'clip_a', 0,
                     'clips[0].instances[0].boxes[0]', 'zero or negative area'),
    'box_y2_lt_y1': (_set(I0 + ('boxes', 0), [1, 12, 11, 2]), 'clip_a', 0,
                     'clips[0].instances[0].boxes[0]', 'zero or negative area'),
    'box_past_right': (_set(I1 + ('boxes', 2), [30, 5, 41 + BOX_TOLERANCE, 25]), 'clip_a', 2,
                       'clips[0].instances[1].boxes[2]', 'outside the image'),
    'box_hw_swapped': (_set(I1 + ('boxes', 2), [1, 1, 5, 35]), 'clip_a', 2,
                       'clips[0].instances[1].boxes[2]', 'image_size [height, width]'),
    'box_only_in_tolerance': (_set(I1 + ('boxes', 2), [40.2, 5, 40.8, 25]), 'clip_a', 2,
                              'clips[0].instances[1].boxes[2]', 'no area left inside'),
    'visibility_too_long': (_set(I1 + ('visibility', ), [1] * 5), 'clip_a', None,
                            'clips[0].instances[1].visibility', 'num_frames = 4'),
    'visibility_above_one': (_set(I1 + ('visibility', 1), 1.5), 'clip_a', 1,
                             'clips[0].instances[1].visibility[1]', '[0, 1]'),
    'visibility_without_box': (_set(I1 + ('visibility', 0), 0.5), 'clip_a', 0,
                               'clips[0].instances[1].visibility[0]', 'without a box'),
}


@pytest.mark.parametrize('case', sorted(MALFORMED))
def test_malformed_json_format_names_where(tmp_path, case):
    mutate, clip, frame, field, words = MALFORMED[case]
    ann = valid_tracklets()
    mutate(ann)
    path = write(tmp_path, ann)
    with pytest.raises(TrackletAnnotationError) as info:
        load_tracklet_file(path)
    err = info.value
    assert (err.file, err.video, err.frame, err.field) == (path, clip, frame, field), str(err)
    assert words in str(err) and path in str(err)


def _coco():
    return dict(
        categories=[dict(id=1, name='car')],
        videos=[dict(id=1, name='v1')],
        images=[
            dict(id=i + 1, video_id=1, frame_id=i, file_name=f'{i}.jpg', width=32, height=24)
            for i in range(3)
        ],
        annotations=[
            dict(id=1, image_id=1, category_id=1, instance_id=5, bbox=[1, 2, 5, 6]),
            dict(id=2, image_id=2, category_id=1, instance_id=5, bbox=[2, 2, 5, 6]),
        ])


MALFORMED_COCO = {
    # from validate_cocovid
    'nan_bbox': (_set(('annotations', 1, 'bbox'),
                      [2, math.nan, 5, 6]), 'v1', 1, 'annotations.bbox'),
    'zero_width': (_set(('annotations', 1, 'bbox'), [2, 2, 0, 6]), 'v1', 1, 'annotations.bbox'),
    'outside': (_set(('annotations', 0, 'bbox'), [40, 2, 5, 6]), 'v1', 0, 'annotations.bbox'),
    # added for layouts
    'image_sizes_differ': (_set(('images', 2, 'width'), 30), 'v1', 2, 'images.width'),
    'fractional_size': (lambda ann: [im.update(height=24.5)
                                     for im in ann['images']], 'v1', 0, 'images.height'),
    'instance_id_string': (_set(('annotations', 1, 'instance_id'),
                                'a'), 'v1', 1, 'annotations.instance_id'),
    'video_without_images':
    (lambda ann: ann['videos'].append(dict(id=2, name='empty')), 'empty', None, None),
    'no_videos':
    (lambda ann: ann.update(videos=[], images=[], annotations=[]), None, None, 'videos'),
    'both_formats': (_set(('clips', ), []), None, None, None),
}


@pytest.mark.parametrize('case', sorted(MALFORMED_COCO))
def test_malformed_cocovid_names_where(tmp_path, case):
    mutate, video, frame, field = MALFORMED_COCO[case]
    ann = _coco()
    mutate(ann)
    path = write(tmp_path, ann)
    with pytest.raises(TrackletAnnotationError) as info:
        load_tracklet_file(path)
    err = info.value
    assert (err.file, err.video, err.frame, err.field) == (path, video, frame, field), str(err)


def test_not_json_or_missing_file(tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text('{"clips": [')
    with pytest.raises(TrackletAnnotationError, match='not valid JSON') as info:
        load_tracklet_file(str(bad))
    assert info.value.file == str(bad)
    with pytest.raises(FileNotFoundError, match='nope.json'):
        load_tracklet_file(str(tmp_path / 'nope.json'))


def layout(name='long', num_frames=10):
    """Instance 1 visible in all frames, 2 in frames 0-2 only, 3 in frames 6-9."""
    visible = np.zeros((num_frames, 3), bool)
    visible[:, 0], visible[:3, 1], visible[6:, 2] = True, True, True
    boxes = np.zeros((num_frames, 3, 4), np.float32)
    t = np.arange(num_frames, dtype=np.float32)
    boxes[:, 0] = np.stack([t, t, t + 4, t + 3], axis=1)
    boxes[:, 1] = [10, 10, 12.25, 13.5]
    boxes[:, 2] = [1, 1, 20, 14]
    boxes[~visible] = 0
    return TrackletLayout(
        name=name,
        image_size=(16, 24),
        boxes=boxes,
        visible=visible,
        instance_ids=np.array([1, 2, 3]),
        categories=['car', 'person', 'car'],
        visibility=np.where(visible, 0.75, 0).astype(np.float32),
        frame_ids=np.arange(100, 100 + num_frames),
        caption='two cars and a person',
        source='x.json')


def test_cut_layout():
    long = layout()
    clips = cut_layout(long, 4)
    assert [c.name for c in clips] == ['long_000000', 'long_000004']  # frames 8-9 unused
    assert clips[0].instance_ids.tolist() == [1, 2]  # 3 is not visible in frames 0-3
    assert clips[1].instance_ids.tolist() == [1, 3]  # 2 is not visible in frames 4-7
    assert clips[1].frame_ids.tolist() == [104, 105, 106, 107]
    np.testing.assert_array_equal(clips[1].boxes[:, 0], long.boxes[4:8, 0])
    assert clips[1].categories == ['car', 'car'] and clips[1].caption == long.caption
    for clip in clips:
        check_layout(clip)
    overlapping = cut_layout(long, 4, stride=3)
    assert [c.name for c in overlapping] == ['long_000000', 'long_000003', 'long_000006']
    assert cut_layout(long, 11) == [] and len(cut_layout(long, 10)) == 1
    clips[0].boxes[:] = 1  # a copy: the input is unchanged
    assert long.boxes[0, 0].tolist() == [0, 0, 4, 3]
    with pytest.raises(ValueError, match='stride'):
        cut_layout(long, 4, stride=0)


def test_cocovid_writer_round_trip_and_readers(tmp_path):
    layouts = [layout('a'), layout('b', 8)]  # (CocoVID has no never-visible instances)
    layouts[1].caption = None
    coco = layouts_to_cocovid(layouts, ['person', 'car'], info=dict(note='test'))
    validate_cocovid(coco, file='written')
    assert [c['name'] for c in coco['categories']] == ['person', 'car']
    assert coco['images'][0]['frame_id'] == 0
    assert coco['images'][0]['file_name'] == 'a/img1/000001.jpg'
    assert coco['videos'][0]['caption'] == layouts[0].caption and 'caption' not in coco['videos'][1]
    first = coco['annotations'][0]
    assert first['bbox'] == [0, 0, 4, 3] and first['visibility'] == 0.75
    assert first['category_id'] == 2 and first['instance_id'] == 1 and first['area'] == 12
    assert [a['id'] for a in coco['annotations']] == list(range(1, len(coco['annotations']) + 1))

    back = layouts_from_cocovid(coco)
    for a, b in zip(layouts, back):
        assert_same_layout(a, b, frame_ids=False)  # frame_id is the frame index
        assert b.frame_ids.tolist() == list(range(a.num_frames))

    # mmdet's own video dataset reads it
    from mmdet.datasets import BaseVideoDataset
    path = write(tmp_path, coco, 'coco.json')
    dataset = BaseVideoDataset(
        ann_file=path, metainfo=dict(classes=('person', 'car')), test_mode=True, pipeline=[])
    video = dataset.get_data_info(0)
    assert len(dataset) == 2 and video['video_length'] == 10
    inst = video['images'][0]['instances'][0]
    assert inst['bbox'] == [0, 0, 4, 3] and inst['bbox_label'] == 1
    assert load_tracklet_file(path)[1].name == 'b'


def test_cocovid_writer_exact_without_rounding_and_refuses_bad_input():
    a = layout('a')
    a.boxes[a.visible] += np.float32(1 / 3)
    a.boxes = np.minimum(a.boxes, 16)
    a.boxes[~a.visible] = 0
    (back, ) = layouts_from_cocovid(layouts_to_cocovid([a], decimals=None))
    assert_same_layout(a, back, frame_ids=False)
    (rounded, ) = layouts_from_cocovid(layouts_to_cocovid([a]))
    np.testing.assert_allclose(rounded.boxes, a.boxes, atol=0.006)
    with pytest.raises(ValueError, match="'car' is not one of"):
        layouts_to_cocovid([a], ['person'])
    with pytest.raises(ValueError, match='used twice'):
        layouts_to_cocovid([a, a])
    bad = layout('bad')
    bad.boxes[0, 0, 2] = 30  # past the 24-pixel width
    with pytest.raises(ValueError, match="layout 'bad', frame 0, instance 1, field 'boxes'"):
        layouts_to_cocovid([bad])


def test_tracklet_json_writer_round_trip(tmp_path):
    a, b = layout('a'), layout('b', 3)
    a.boxes[a.visible] += np.float32(0.1)  # values with no short float64 repr
    a.boxes[~a.visible] = 0
    b.visibility[b.visible] = 1
    path = str(tmp_path / 'sub' / 'out.json')
    assert write_tracklet_file(path, [a, b]) == path
    assert os.listdir(tmp_path / 'sub') == ['out.json']  # no temporary file left
    text = open(path).read()
    assert '4.1, 3.1' in text and len(text.splitlines()) == 11  # one line per instance
    data = json.loads(text)
    assert data['categories'] == ['car', 'person'] and 'visibility' not in \
        data['clips'][1]['instances'][0]
    back = load_tracklet_file(path)
    assert_same_layout(a, back[0])
    assert_same_layout(b, back[1])
    # cut clips keep their source frame ids through the file
    clips = cut_layout(a, 4)
    write_tracklet_file(path, clips)
    for clip, again in zip(clips, load_tracklet_file(path)):
        assert_same_layout(clip, again)


def test_check_layout_names_the_problem():
    good = layout()
    check_layout(good)
    cases = [
        (lambda x: setattr(x, 'name', ''), "field 'name'"),
        (lambda x: setattr(x, 'image_size', (16, 0)), "field 'image_size'"),
        (lambda x: x.instance_ids.__setitem__(1, 1), 'instance id 1 is used more than once'),
        (lambda x: x.visibility.__setitem__((2, 1), 2), "frame 2, instance 2, field 'visibility'"),
        (lambda x: x.boxes.__setitem__((6, 2, 0), -1), "frame 6, instance 3, field 'boxes'"),
        (lambda x: x.boxes.__setitem__((4, 0, 2), 1), "frame 4, instance 1, field 'boxes'"),
        (lambda x: x.boxes.__setitem__((5, 1, 0), 3), 'must be 0 where the instance is not'),
        (lambda x: setattr(x, 'visible', x.visible.astype(int)), "field 'visible'"),
        (lambda x: setattr(x, 'boxes', x.boxes[:, :2]), "field 'boxes'"),
        (lambda x: x.categories.__setitem__(0, None), "instance 1, field 'categories'"),
    ]
    for mutate, words in cases:
        bad = copy.deepcopy(good)
        mutate(bad)
        with pytest.raises(ValueError, match="layout '.*'") as info:
            check_layout(bad)
        assert words in str(info.value), (words, str(info.value))
