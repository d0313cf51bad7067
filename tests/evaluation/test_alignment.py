import numpy as np

from mmtrackgen.datasets import segment_foreground
from mmtrackgen.evaluation import box_alignment, summarize_alignment


def frames_with_square(x1, y1, x2, y2, size=32):
    frames = np.full((1, size, size, 3), 128, dtype=np.uint8)
    frames[0, y1:y2, x1:x2] = (220, 30, 30)
    return frames


def test_object_in_its_box_scores_one_and_a_shifted_one_less():
    boxes = np.array([[[8 / 32, 8 / 32, 16 / 32, 16 / 32]]])
    visible = np.array([[True]])
    exact = box_alignment(frames_with_square(8, 8, 16, 16), boxes, visible, segment_foreground)
    assert exact[0, 0] == 1.0
    shifted = box_alignment(frames_with_square(10, 8, 18, 16), boxes, visible, segment_foreground)
    np.testing.assert_allclose(shifted[0, 0], 6 * 8 / (2 * 64 - 6 * 8))
    far = box_alignment(frames_with_square(24, 24, 30, 30), boxes, visible, segment_foreground)
    assert far[0, 0] == 0.0  # nothing near the box


def test_invisible_entries_are_nan_and_excluded_from_the_summary():
    boxes = np.array([[[0.25, 0.25, 0.5, 0.5], [0, 0, 1, 1]]])
    ious = box_alignment(
        frames_with_square(8, 8, 16, 16), boxes, np.array([[True, False]]), segment_foreground)
    assert np.isnan(ious[0, 1])
    summary = summarize_alignment(ious)
    assert summary == dict(mean_iou=1.0, iou50=1.0, entries=1)
