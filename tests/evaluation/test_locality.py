import numpy as np

from mmtrackgen.evaluation import box_union_mask, change_locality


def test_box_union_mask_marks_pixel_centres():
    mask = box_union_mask(np.array([[[0, 0, 0.5, 0.25], [0.75, 0.75, 1, 1]]]), 4, 4)
    expected = np.zeros((1, 4, 4), dtype=bool)
    expected[0, 0, :2] = expected[0, 3, 3] = True
    assert (mask == expected).all()


def test_change_only_inside_the_boxes_is_fully_local():
    before = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    after = before.copy()
    after[:, 0:2, 0:2] = 90  # inside the old box
    after[:, 6:8, 6:8] = 30  # inside the new box
    old = np.array([[0, 0, 0.25, 0.25]] * 2)
    new = np.array([[0.75, 0.75, 1, 1]] * 2)
    result = change_locality(before, after, old, new)
    assert result['inside_fraction'] == 1.0 and result['area_fraction'] == 8 / 64
    assert result['locality'] == 8.0
    after[:, 4, 4] = 240  # a change outside: 3 * 240 of 3 * (4 * 90 + 4 * 30 + 240) per frame
    assert np.isclose(change_locality(before, after, old, new)['inside_fraction'], 480 / 720)
