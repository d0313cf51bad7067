"""Clip transforms against hand-computed values."""
import numpy as np
import pytest
import torch

from mmtrackgen.datasets.transforms import (AssignInstanceSlots, ClipCrop, ClipRandomFlip,
                                            ClipResize, PackClipInputs, TemplateCaption,
                                            TooManyInstancesError, describe_categories)
from mmtrackgen.structures import TrackletClipSample


def clip_results(boxes_per_frame,
                 ids_per_frame,
                 labels_per_frame=None,
                 size=(32, 24),
                 with_frames=True):
    """A results dict as LoadTrackletClip makes it; frame t has value t in every pixel except
    a marker column x=0 set to 200 so flips and crops can be traced."""
    w, h = size
    num_frames = len(boxes_per_frame)
    frames = np.zeros((num_frames, h, w, 3), dtype=np.uint8)
    for t in range(num_frames):
        frames[t] = t
        frames[t, :, 0] = 200
    labels_per_frame = labels_per_frame or [[0] * len(i) for i in ids_per_frame]
    return dict(
        video_name='v',
        frames=frames if with_frames else None,
        img_shape=(h, w),
        ori_shape=(h, w),
        frame_ids=list(range(num_frames)),
        gt_bboxes=[np.asarray(b, np.float32).reshape(-1, 4) for b in boxes_per_frame],
        gt_instance_ids=[np.asarray(i, np.int64) for i in ids_per_frame],
        gt_bboxes_labels=[np.asarray(lab, np.int64) for lab in labels_per_frame],
        gt_visibility=[np.ones(len(i), np.float32) for i in ids_per_frame])


def test_resize_scales_frames_and_boxes():
    r = ClipResize(scale=(64, 48))(clip_results([[[2, 3, 10, 9]], []], [[1], []]))
    assert r['frames'].shape == (2, 48, 64, 3) and r['img_shape'] == (48, 64)
    np.testing.assert_allclose(r['gt_bboxes'][0], [[4, 6, 20, 18]])
    assert r['gt_bboxes'][1].shape == (0, 4) and r['scale_factor'] == (2.0, 2.0)


def test_resize_keep_ratio_fits_inside_the_scale():
    r = ClipResize(scale=(16, 16), keep_ratio=True)(clip_results([[[2, 3, 10, 9]]], [[1]]))
    assert r['img_shape'] == (12, 16)
    np.testing.assert_allclose(r['gt_bboxes'][0], [[1, 1.5, 5, 4.5]])


def test_center_crop_shifts_clips_and_drops_boxes():
    boxes = [[[2, 3, 10, 9], [20, 14, 24, 18], [0, 0, 4, 4]]]
    r = ClipCrop(crop_size=(16, 12), mode='center')(clip_results(boxes, [[1, 2, 3]]))
    assert r['crop_box'] == (8, 6, 24, 18) and r['frames'].shape == (1, 12, 16, 3)
    # box 1 cut to its corner [0, 0, 2, 3] keeps 6 of 48 pixels; box 3 leaves the crop
    np.testing.assert_allclose(r['gt_bboxes'][0], [[0, 0, 2, 3], [12, 8, 16, 12]])
    np.testing.assert_array_equal(r['gt_instance_ids'][0], [1, 2])
    np.testing.assert_allclose(r['gt_visibility'][0], [6 / 48, 1.0])


def test_random_crop_takes_the_same_window_in_every_frame():
    np.random.seed(3)
    src = clip_results([[[2, 3, 10, 9]]] * 3, [[1]] * 3)
    frames = src['frames'].copy()
    r = ClipCrop(crop_size=(16, 12))(src)
    x0, y0, x1, y1 = r['crop_box']
    np.testing.assert_array_equal(r['frames'], frames[:, y0:y1, x0:x1])
    assert len({tuple(b.ravel()) for b in r['gt_bboxes']}) == 1


def test_crop_larger_than_frame_is_the_frame():
    r = ClipCrop(crop_size=(100, 100))(clip_results([[[2, 3, 10, 9]]], [[1]]))
    assert r['img_shape'] == (24, 32) and r['crop_box'] == (0, 0, 32, 24)


def test_flip_mirrors_frames_and_boxes():
    src = clip_results([[[2, 3, 10, 9]], [[0, 0, 32, 24]]], [[1], [1]])
    r = ClipRandomFlip(prob=1.0)(src)
    assert r['flip'] is True
    assert (r['frames'][:, :, -1] == 200).all() and (r['frames'][:, :, 0] != 200).all()
    np.testing.assert_allclose(r['gt_bboxes'][0], [[22, 3, 30, 9]])
    np.testing.assert_allclose(r['gt_bboxes'][1], [[0, 0, 32, 24]])
    assert ClipRandomFlip(prob=0.0)(clip_results([[[2, 3, 10, 9]]], [[1]]))['flip'] is False


def test_slots_are_stable_normalised_and_padded():
    boxes = [[[8, 6, 16, 12]], [[8, 6, 16, 12], [0, 0, 32, 24]], [[0, 0, 32, 24]]]
    r = AssignInstanceSlots(num_slots=3)(
        clip_results(boxes, [[7], [7, 4], [4]], [[1], [1, 0], [0]]))
    assert r['gt_boxes'].shape == (3, 3, 4) and r['gt_visible'].shape == (3, 3)
    np.testing.assert_array_equal(r['gt_instance_ids'], [7, 4, -1])  # first appearance
    np.testing.assert_array_equal(r['gt_labels'], [1, 0, -1])
    np.testing.assert_array_equal(r['gt_visible'], [[1, 0, 0], [1, 1, 0], [0, 1, 0]])
    np.testing.assert_allclose(r['gt_boxes'][0, 0], [0.25, 0.25, 0.5, 0.5])
    np.testing.assert_allclose(r['gt_boxes'][2, 1], [0, 0, 1, 1])
    assert (r['gt_boxes'][2, 0] == 0).all() and r['num_dropped_instances'] == 0
    assert 'gt_bboxes' not in r


@pytest.mark.parametrize('policy,kept', [('most_visible', [2, 3]), ('largest', [1, 3]),
                                         ('first', [1, 2])])
def test_overflow_policies_pick_documented_instances(policy, kept):
    # id 1: area 100 in one frame; id 2: 36 in 4 frames (144 in all); id 3: 49 in 3 (147)
    boxes = [[[0, 0, 10, 10], [0, 0, 6, 6]], [[0, 0, 6, 6], [10, 10, 17, 17]],
             [[0, 0, 6, 6], [10, 10, 17, 17]], [[0, 0, 6, 6], [10, 10, 17, 17]]]
    ids = [[1, 2], [2, 3], [2, 3], [2, 3]]
    r = AssignInstanceSlots(num_slots=2, overflow=policy)(clip_results(boxes, ids))
    assert sorted(r['gt_instance_ids'].tolist()) == kept
    assert r['num_dropped_instances'] == 1


def test_overflow_error_names_the_video():
    with pytest.raises(TooManyInstancesError, match="video 'v'.*2 instances.*1 slots"):
        AssignInstanceSlots(
            num_slots=1, overflow='error')(
                clip_results([[[0, 0, 4, 4], [5, 5, 9, 9]]], [[1, 2]]))


def test_shuffled_slots_carry_the_same_tracklets():
    np.random.seed(0)
    boxes = [[[8, 6, 16, 12], [0, 0, 32, 24]]] * 2
    plain = AssignInstanceSlots(num_slots=6)(clip_results(boxes, [[7, 4]] * 2))
    mixed = AssignInstanceSlots(num_slots=6, shuffle=True)(clip_results(boxes, [[7, 4]] * 2))
    for iid in (7, 4):
        a = plain['gt_instance_ids'].tolist().index(iid)
        b = mixed['gt_instance_ids'].tolist().index(iid)
        np.testing.assert_array_equal(plain['gt_boxes'][:, a], mixed['gt_boxes'][:, b])
    assert mixed['gt_slot_mask'].sum() == 2


def test_zero_slots_and_empty_clips():
    r = AssignInstanceSlots(num_slots=0)(clip_results([[[0, 0, 4, 4]]], [[1]]))
    assert r['gt_boxes'].shape == (1, 0, 4) and r['num_dropped_instances'] == 1
    r = AssignInstanceSlots(num_slots=2)(clip_results([[], []], [[], []]))
    assert not r['gt_visible'].any() and (r['gt_labels'] == -1).all()


def test_template_caption_names_the_categories():
    assert describe_categories(['circle', 'square', 'circle']) == 'two circles and a square'
    assert describe_categories(['cross', 'cross', 'ostrich']) == 'two crosses and an ostrich'
    assert describe_categories([]) == 'no objects'
    results = dict(gt_labels=np.array([1, 0, 1, -1]), classes=('square', 'circle'))
    assert TemplateCaption()(dict(results))['caption'] == 'a video of two circles and a square'
    kept = TemplateCaption()(dict(results, caption='given'))['caption']
    assert kept == 'given'


def test_pack_makes_typed_sample_and_chw_frames():
    r = AssignInstanceSlots(num_slots=2)(clip_results([[[8, 6, 16, 12]]] * 2, [[3]] * 2))
    r['caption'] = 'c'
    packed = PackClipInputs()(r)
    assert packed['inputs'].shape == (2, 3, 24, 32) and packed['inputs'].dtype == torch.uint8
    sample = packed['data_samples']
    assert isinstance(sample, TrackletClipSample)
    assert sample.gt_boxes.shape == (2, 2, 4) and sample.gt_visible.dtype == torch.bool
    assert sample.caption == 'c' and sample.video_name == 'v'
    no_frames = AssignInstanceSlots(num_slots=2)(
        clip_results([[[8, 6, 16, 12]]], [[3]], with_frames=False))
    assert PackClipInputs()(no_frames)['inputs'] is None
    with pytest.raises(KeyError, match='AssignInstanceSlots'):
        PackClipInputs()(clip_results([[[8, 6, 16, 12]]], [[3]]))


def test_draw_slot_boxes_outlines_visible_slots_in_their_colours():
    from mmtrackgen.datasets.transforms import DrawSlotBoxes
    from mmtrackgen.visualization import slot_colours
    r = AssignInstanceSlots(num_slots=2)(clip_results([[[8, 6, 16, 12]], []], [[3], []]))
    before = r['frames'].copy()
    r = DrawSlotBoxes(thickness=1)(r)
    colour = slot_colours(2)[0]
    # box [8, 6, 16, 12]: top edge row 6, columns 8..15; inside untouched
    assert (r['frames'][0, 6, 8:16] == colour).all() and (r['frames'][0, 11, 8:16] == colour).all()
    assert (r['frames'][0, 7:11, 9:15] == before[0, 7:11, 9:15]).all()
    assert (r['frames'][1] == before[1]).all()  # nothing visible in frame 1
    clean = DrawSlotBoxes(prob=0.0)(
        AssignInstanceSlots(num_slots=2)(clip_results([[[8, 6, 16, 12]]], [[3]])))
    assert 'self_tracking' not in clean
