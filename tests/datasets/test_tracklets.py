import copy
import json
import math

import pytest

from mmtrackgen.datasets.tracklets import (TrackletAnnotationError, group_annotations, load_cocovid,
                                           validate_cocovid)


def valid_ann():
    return dict(
        categories=[dict(id=1, name='square'), dict(id=2, name='circle')],
        videos=[dict(id=1, name='vid_a'), dict(id=2, name='vid_b')],
        images=[
            dict(
                id=i + 1,
                video_id=1 + i // 3,
                frame_id=i % 3,
                file_name=f'{i}.jpg',
                width=32,
                height=24) for i in range(6)
        ],
        annotations=[
            dict(id=1, image_id=1, category_id=1, instance_id=1, bbox=[1, 2, 5, 6]),
            dict(id=2, image_id=2, category_id=1, instance_id=1, bbox=[2, 2, 5, 6]),
            dict(id=3, image_id=2, category_id=2, instance_id=2, bbox=[10, 2, 5, 6]),
            dict(id=4, image_id=5, category_id=2, instance_id=3, bbox=[30, 20, 8, 8]),
        ])


def test_valid_annotations_pass_and_group_by_video():
    ann = valid_ann()
    validate_cocovid(ann, file='a.json')
    grouped = group_annotations(ann)
    assert [img['frame_id'] for img, _ in grouped[1]['frames']] == [0, 1, 2]
    assert [len(anns) for _, anns in grouped[1]['frames']] == [1, 2, 0]


def _set(path, value):

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


# (mutation, the video, frame and field the error must name, words of the message)
BAD = {
    'missing annotations list': (_delete(['annotations']), None, None, 'annotations', 'missing'),
    'missing bbox': (_delete(['annotations', 0,
                              'bbox']), None, None, 'annotations.bbox', "no 'bbox'"),
    'missing frame_id': (_delete(['images', 2,
                                  'frame_id']), None, None, 'images.frame_id', 'frame_id'),
    'x2 < x1': (_set(['annotations', 1, 'bbox'],
                     [9, 2, -3, 6]), 'vid_a', 1, 'annotations.bbox', 'non-positive width'),
    'zero height': (_set(['annotations', 1, 'bbox'],
                         [9, 2, 3, 0]), 'vid_a', 1, 'annotations.bbox', 'non-positive'),
    'NaN coordinate': (_set(['annotations', 2, 'bbox'],
                            [math.nan, 2, 3, 3]), 'vid_a', 1, 'annotations.bbox', 'non-finite'),
    'infinite coordinate':
    (_set(['annotations', 0, 'bbox'],
          [1, 2, math.inf, 3]), 'vid_a', 0, 'annotations.bbox', 'non-finite'),
    'string coordinate': (_set(['annotations', 0, 'bbox'],
                               [1, '2', 3, 3]), 'vid_a', 0, 'annotations.bbox', 'four numbers'),
    'three coordinates': (_set(['annotations', 0, 'bbox'],
                               [1, 2, 3]), 'vid_a', 0, 'annotations.bbox', 'four numbers'),
    'box outside the image':
    (_set(['annotations', 3, 'bbox'],
          [40, 30, 5, 5]), 'vid_b', 1, 'annotations.bbox', 'entirely outside'),
    'duplicate annotation id': (_set(['annotations', 1, 'id'],
                                     1), None, None, 'annotations.id', 'used twice'),
    'duplicate image id': (_set(['images', 1, 'id'], 1), None, None, 'images.id', 'used twice'),
    'instance twice in a frame': (_set(['annotations', 2, 'instance_id'],
                                       1), 'vid_a', 1, 'annotations.instance_id', 'same frame'),
    'instance changes category': (_set(['annotations', 1, 'category_id'],
                                       2), 'vid_a', 1, 'annotations.category_id', 'differs'),
    'unknown category': (_set(['annotations', 0, 'category_id'],
                              7), 'vid_a', 0, 'annotations.category_id', 'unknown category_id 7'),
    'unknown image': (_set(['annotations', 0, 'image_id'],
                           99), None, None, 'annotations.image_id', 'unknown image_id 99'),
    'unknown video': (_set(['images', 0, 'video_id'],
                           9), None, 0, 'images.video_id', 'unknown video_id 9'),
    'repeated frame_id': (_set(['images', 1, 'frame_id'],
                               0), 'vid_a', 0, 'images.frame_id', 'same frame_id'),
    'negative width': (_set(['images', 0, 'width'], -5), 'vid_a', 0, 'images.width', 'positive'),
    'visibility above 1': (_set(['annotations', 0, 'visibility'],
                                1.5), 'vid_a', 0, 'annotations.visibility', '[0, 1]'),
}


@pytest.mark.parametrize('case', sorted(BAD))
def test_bad_annotations_name_file_video_frame_and_field(case):
    mutate, video, frame, field, words = BAD[case]
    ann = copy.deepcopy(valid_ann())
    mutate(ann)
    with pytest.raises(TrackletAnnotationError) as info:
        validate_cocovid(ann, file='data/x.json')
    err = info.value
    assert (err.file, err.video, err.frame, err.field) == ('data/x.json', video, frame, field)
    assert words in str(err) and 'data/x.json' in str(err)


def test_box_partly_outside_the_image_is_accepted():
    ann = valid_ann()
    ann['annotations'][0]['bbox'] = [-3, -2, 6, 6]  # pipeline clips it
    validate_cocovid(ann)


def test_load_cocovid_reports_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.json'):
        load_cocovid(str(tmp_path / 'nope.json'))
    broken = tmp_path / 'broken.json'
    broken.write_text('{"videos": [}')
    with pytest.raises(TrackletAnnotationError, match=r'broken.json.*not valid JSON \(line 1'):
        load_cocovid(str(broken))
    good = tmp_path / 'good.json'
    good.write_text(json.dumps(valid_ann()))
    assert len(load_cocovid(str(good))['videos']) == 2
