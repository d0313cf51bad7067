"""The page's functions without a browser: keyframes -> layout, interpolation, the canvas, and
a page message (never a traceback) for every kind of bad input."""
import json

import numpy as np
import pytest

from mmtrackgen.app.canvas import (canvas_value, parse_box_label, rows_from_table,
                                   set_frame_from_canvas)
from mmtrackgen.app.editor import (PageInputError, PageSpec, fit_layout, interpolate_track,
                                   keyframes_to_layout, layout_to_keyframes, page_spec,
                                   parse_keyframes, read_layout_file)
from mmtrackgen.datasets.tracklet_file import write_tracklet_file
from mmtrackgen.structures import TrackletLayout
from mmtrackgen.utils import load_config
from tests.conftest import MICRO_CONFIG

SPEC = PageSpec(
    classes=('square', 'circle', 'triangle', 'cross'),
    image_size=(32, 48),  # H, W
    num_frames=6,
    num_slots=2)


def layout_of(rows, spec=SPEC):
    return keyframes_to_layout(parse_keyframes(rows, spec), spec)


def test_page_spec_reads_the_model_config():
    spec = page_spec(load_config(MICRO_CONFIG))
    assert spec == PageSpec(('square', 'circle', 'triangle', 'cross'), (16, 16), 4, 4, False)


def test_boxes_between_keyframes_are_interpolated_linearly():
    boxes, visible = interpolate_track([(4, (8, 8, 12, 16)), (0, (0, 0, 4, 8))], 6)
    assert visible.tolist() == [True] * 5 + [False]  # leaves after its last keyframe
    np.testing.assert_allclose(boxes[2], [4, 4, 8, 12])
    np.testing.assert_allclose(boxes[1], [2, 2, 6, 10])
    assert (boxes[5] == 0).all()


def test_an_instance_enters_late_and_a_hidden_keyframe_breaks_its_track():
    boxes, visible = interpolate_track([(1, (0, 0, 2, 2)), (3, None), (5, (4, 4, 6, 6))], 6)
    assert visible.tolist() == [False, True, False, False, False, True]
    assert (boxes[[0, 2, 3, 4]] == 0).all()


def test_keyframes_become_a_layout_with_instances_in_id_order():
    layout = layout_of([
        [7, 'circle', 2, 10, 10, 20, 20],
        [3, 'square', 0, 0, 0, 8, 8],
        [3, 'square', 5, 40, 24, 48, 32],
        [None, None, None, None, None, None, None],  # a blank row of the table
        [7, 'circle', 3, 12, 10, 22, 20],
    ])
    assert isinstance(layout, TrackletLayout)
    assert layout.image_size == (32, 48) and layout.num_frames == 6
    assert layout.instance_ids.tolist() == [3, 7]
    assert layout.categories == ['square', 'circle']
    assert layout.visible[:, 1].tolist() == [False, False, True, True, False, False]
    np.testing.assert_allclose(layout.boxes[1, 0], [8, 4.8, 16, 12.8], rtol=1e-6)
    np.testing.assert_allclose(layout.boxes[5, 0], [40, 24, 48, 32])


def test_layout_to_keyframes_keeps_only_the_needed_keyframes_and_round_trips():
    layout = layout_of([
        [1, 'square', 0, 0, 0, 8, 8],
        [1, 'square', 2, 8, 8, 16, 16],  # a bend: stays a keyframe
        [1, 'square', 5, 8, 20, 16, 28],
        [2, 'cross', 0, 30, 0, 40, 10],
        [2, 'cross', 1, 31, 0, 41, 10],
        [2, 'cross', 2, None, None, None, None],  # leaves, comes back at 4
        [2, 'cross', 4, 33, 0, 43, 10],
        [2, 'cross', 5, 34, 0, 44, 10],
    ])
    rows = layout_to_keyframes(layout)
    assert [(r[0], r[2]) for r in rows] == [(1, 0), (1, 2), (1, 5), (2, 0), (2, 1), (2, 2),
                                            (2, 4), (2, 5)]
    again = layout_of(rows)
    np.testing.assert_allclose(again.boxes, layout.boxes, atol=0.05)
    assert (again.visible == layout.visible).all()


@pytest.mark.parametrize(
    'rows, message',
    [
        ([[1, 'square', 0, -3, 0, 8, 8]], r'row 1 .*outside the 48x32 frame'),
        ([[1, 'square', 0, 40, 0, 49, 8]], r'outside the 48x32 frame'),
        ([[1, 'square', 0, 0, 30, 8, 33]], r'outside the 48x32 frame'),
        ([[1, 'square', 0, 5, 5, 5, 9]], r'row 1 .*zero area'),
        ([[1, 'square', 0, 5, 9, 8, 2]], r'zero area'),
        ([[1, 'dog', 0, 0, 0, 8, 8]], r"unknown category 'dog'; the model knows \['square'"),
        ([[1, 'square', 0, 0, 0, 8, 8], [2, 'circle', 0, 0, 0, 8, 8], [3, 'cross', 1, 0, 0, 8, 8]],
         r'3 instances .*2 slots, so at most 2 instances per clip: remove 1'),
        ([[1, 'square', 6, 0, 0, 8, 8]], r'row 1: frame must be a whole number from 0 to 5'),
        ([[1, 'square', 0, 'a', 0, 8, 8]], r'row 1: x1 must be a number'),
        ([[1, 'square', 0, 0, 0, 8, None]], r'give all four of x1, y1, x2, y2'),
        ([[1, 'square', 0, 0, 0, 8, 8], [1, 'circle', 1, 0, 0, 8, 8]], r'one category'),
        ([[1, 'square', 0, 0, 0, 8, 8], [1, 'square', 0, 1, 1, 8, 8]], r'two keyframes at frame 0'),
        ([[-1, 'square', 0, 0, 0, 8, 8]], r'instance must be a whole number >= 0'),
        ([[1, None, 0, 0, 0, 8, 8]], r'instance, category and frame must all be given'),
        ([], r'the layout has no box'),
        ([[1, 'square', 0, None, None, None, None]], r'the layout has no box'),
    ])
def test_bad_keyframes_get_a_page_message(rows, message):
    with pytest.raises(PageInputError, match=message):
        layout_of(rows)


def test_a_table_dataframe_becomes_rows():
    import pandas as pd  # what gradio's Dataframe hands its events
    table = pd.DataFrame([[1, 'square', 0, 0, 0, 8, 8]], columns=list('abcdefg'))
    assert rows_from_table(table) == [[1, 'square', 0, 0, 0, 8, 8]]
    assert rows_from_table(None) == []


def write_file(tmp_path, name, layouts):
    path = str(tmp_path / name)
    write_tracklet_file(path, layouts)
    return path


def moving(name, num_frames, size=(64, 96), categories=('square', 'circle')):
    boxes = np.zeros((num_frames, 2, 4), np.float32)
    for t in range(num_frames):
        boxes[t, 0] = [4 + 2 * t, 4, 20 + 2 * t, 20]
        boxes[t, 1] = [60, 30, 80, 50]
    visible = np.ones((num_frames, 2), bool)
    return TrackletLayout(name, size, boxes, visible, np.array([1, 2]), list(categories))


def test_an_uploaded_file_is_cut_to_the_model_length_and_scaled(tmp_path):
    path = write_file(tmp_path, 'two.json', [moving('a', 9), moving('b', 6)])
    layouts = read_layout_file(path)
    assert [layout.name for layout in layouts] == ['a', 'b']
    layout = fit_layout(layouts[0], SPEC)  # 96x64 -> 48x32: half
    assert layout.num_frames == 6 and layout.image_size == (32, 48)
    np.testing.assert_allclose(layout.boxes[1, 0], [3, 2, 11, 10])
    np.testing.assert_allclose(layout.boxes[0, 1], [30, 15, 40, 25])


def test_a_too_short_uploaded_clip_is_refused(tmp_path):
    layout = read_layout_file(write_file(tmp_path, 'short.json', [moving('short', 3)]))[0]
    with pytest.raises(PageInputError, match=r"clip 'short' has 3 frames; .* clips of 6"):
        fit_layout(layout, SPEC)


def test_an_uploaded_file_with_an_unknown_category_is_refused_in_the_table(tmp_path):
    layout = read_layout_file(
        write_file(tmp_path, 'cats.json', [moving('a', 6, categories=('square', 'dog'))]))[0]
    with pytest.raises(PageInputError, match=r"unknown category 'dog'"):
        layout_of(layout_to_keyframes(fit_layout(layout, SPEC)))


@pytest.mark.parametrize(
    'name, content, message',
    [
        ('frame.png', b'\x89PNG\r\n', r"'frame.png' is not a layout file: upload a tracklet JSON"),
        ('broken.json', b'{"clips": [', r"wrong file format: 'broken.json': not valid JSON"),
        ('other.json', b'{"boxes": []}', r'wrong file format: .*neither the mmtrackgen tracklet'),
        ('bad.json', json.dumps({'clips': [{'name': 'x', 'image_size': [8, 8], 'num_frames': 1,
                                            'instances': [{'id': 1, 'category': 'square',
                                                           'boxes': [[4, 4, 2, 6]]}]}]}).encode(),
         r"wrong file format: 'bad.json', video 'x', frame 0.*zero or negative area"),
    ])
def test_a_file_of_the_wrong_format_gets_a_page_message(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(PageInputError, match=message):
        read_layout_file(str(path))


def test_the_canvas_shows_the_frame_and_setting_it_adds_keyframes():
    rows = [[1, 'square', 0, 0, 0, 8, 8], [1, 'square', 4, 8, 8, 16, 16]]
    value = canvas_value(rows, 2, SPEC, scale=4)
    assert value['image'].shape == (128, 192, 3)
    assert [(b['label'], b['xmin'], b['ymax']) for b in value['boxes']] == [('square 1', 16, 48)]
    boxes = [
        dict(xmin=20, ymin=16, xmax=52, ymax=48, label='square 1'),  # moved: a keyframe now
        dict(xmin=100, ymin=4, xmax=140, ymax=40, label='circle'),  # a new instance: id 2
    ]
    rows = set_frame_from_canvas(rows, 2, boxes, SPEC, scale=4)
    assert rows == [[1, 'square', 0, 0, 0, 8, 8], [1, 'square', 2, 5.0, 4.0, 13.0, 12.0],
                    [1, 'square', 4, 8, 8, 16, 16], [2, 'circle', 2, 25.0, 1.0, 35.0, 10.0]]
    # Removing instance 1 from the canvas of frame 3 hides it there.
    rows = set_frame_from_canvas(rows, 3, [boxes[1] | dict(label='circle 2')], SPEC, scale=4)
    assert [1, 'square', 3, None, None, None, None] in rows
    assert not layout_of(rows).visible[3, 0]


@pytest.mark.parametrize(
    'boxes, message',
    [
        ([dict(xmin=0, ymin=0, xmax=8, ymax=8, label='dog 1')], r"unknown category 'dog'"),
        ([dict(xmin=0, ymin=0, xmax=8, ymax=8, label='')], r'has no category'),
        ([dict(xmin=0, ymin=0, xmax=8, ymax=8, label='circle 1')], r"instance 1 is a 'square'"),
        ([dict(xmin=0, ymin=0, xmax=300, ymax=8, label='square 1')], r'outside the 48x32'),
        ([dict(xmin=0, ymin=0, xmax=8, ymax=8, label='square 1')] * 2, r'two boxes'),
    ])
def test_bad_canvas_boxes_get_a_page_message(boxes, message):
    rows = [[1, 'square', 0, 0, 0, 8, 8]]
    with pytest.raises(PageInputError, match=message):
        set_frame_from_canvas(rows, 1, boxes, SPEC, scale=4)


def test_the_clip_name_names_the_layout_and_must_be_a_folder_name():
    rows = [[1, 'square', 0, 0, 0, 8, 8]]
    assert keyframes_to_layout(parse_keyframes(rows, SPEC), SPEC, 'walk_2').name == 'walk_2'
    assert keyframes_to_layout(parse_keyframes(rows, SPEC), SPEC, ' ').name == 'page'
    with pytest.raises(PageInputError, match=r"clip name '../x' can only hold"):
        keyframes_to_layout(parse_keyframes(rows, SPEC), SPEC, '../x')


def test_box_labels():
    assert parse_box_label('circle 2', SPEC.classes) == ('circle', 2)
    assert parse_box_label(' cross ', SPEC.classes) == ('cross', None)
    assert parse_box_label('square #3', SPEC.classes) == ('square', 3)


def test_clips_of_the_config_test_split_are_offered_when_the_file_is_there(tmp_path):
    from types import SimpleNamespace

    from mmengine.config import Config

    from mmtrackgen.app.page import dataset_clips
    from tests.factories import moving_track, write_cocovid
    ann = write_cocovid(
        str(tmp_path), [
            dict(name='long', num_frames=8, size=(96, 64),
                 tracks={1: moving_track(0, 0, 8, (2, 2), (8, 8), (2, 1))}),
            dict(name='short', num_frames=3, tracks={2: moving_track(1, 0, 3, (4, 4), (6, 6),
                                                                     (1, 0))}),
        ],
        split='test',
        write_frames=False)
    dataset = dict(data_root=str(tmp_path), ann_file='annotations/test.json')
    model = SimpleNamespace(cfg=Config(dict(test_dataloader=dict(dataset=dataset))), spec=SPEC)
    path, clips = dataset_clips(model)
    assert path == ann
    assert [clip.name for clip in clips] == ['long']  # 'short' has fewer frames than 6
    assert clips[0].image_size == (32, 48) and clips[0].num_frames == 6
    np.testing.assert_allclose(clips[0].boxes[1, 0], [2, 1.5, 6, 5.5])
    model.cfg.test_dataloader.dataset.ann_file = 'annotations/missing.json'
    assert dataset_clips(model)[1] == []
