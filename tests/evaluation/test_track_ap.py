import numpy as np
import pytest

from mmtrackgen.evaluation import spatiotemporal_box_iou, track_ap

RECALLS = np.linspace(0, 1, 101)  # COCO's 101 recall points


def video(num_frames=10, shift=0.0, swap_at=None, keep=(0, 1), scores=(0.9, 0.8)):
    """Two tracks (ids 1, 2; labels 0, 1) of 10x10 boxes; ``shift`` moves track 1 in x."""
    frames = {}
    for t in range(num_frames):
        ids = [1, 2] if swap_at is None or t < swap_at else [2, 1]
        boxes = [[10 + t + shift, 10, 20 + t + shift, 20], [50, 40 + t, 60, 50 + t]]
        entry = dict(ids=ids, boxes=boxes, scores=list(scores), labels=[0, 1])
        frames[t] = {k: np.array([v[i] for i in keep]) for k, v in entry.items()}
    return frames


def test_spatiotemporal_iou_sums_over_frames():
    nan = [np.nan] * 4
    dt = np.array([[[0, 0, 10, 10], [0, 0, 10, 10], nan]])  # (1, 3, 4)
    gt = np.array([[[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 10]], [nan, nan, nan]])
    # intersections 100 + 50; unions 100 + 150 + 100 (GT only in the last frame)
    assert spatiotemporal_box_iou(dt, gt) == pytest.approx(np.array([[150 / 350, 0.0]]))


def test_perfect_predictions_score_one():
    gt = {'v': video()}
    assert track_ap(gt, {'v': video()}) == pytest.approx(
        dict(TrackAP=1.0, TrackAP50=1.0, TrackAP75=1.0))
    result = track_ap(gt, {'v': video()}, categories=['a', 'b'], per_category=True)
    assert result == pytest.approx(
        dict(TrackAP=1.0, TrackAP50=1.0, TrackAP75=1.0, TrackAP_a=1.0, TrackAP_b=1.0))


def test_shifted_boxes_lower_ap():
    gt = {'v': video()}
    # track 1 shifted by 3 px in every frame: IoU 70 / 130 = 0.54, a match only at 0.50
    result = track_ap(gt, {'v': video(shift=3)})
    assert result['TrackAP50'] == pytest.approx(1.0)
    # at 0.75 the top-scored track is a false positive, then the other is found: precision 1/2
    assert result['TrackAP75'] == pytest.approx(0.5 * np.mean(RECALLS <= 0.5))
    assert result['TrackAP'] < 0.7


def test_swapped_identities_lower_ap():
    # ids swap after frame 5 of 10: each predicted track covers each GT for half its length
    result = track_ap({'v': video()}, {'v': video(swap_at=5)})
    assert result['TrackAP'] < 0.2 and result['TrackAP75'] == 0
    # swapped after 3 frames: spatio-temporal IoU 7 / 13 with the other GT track
    assert track_ap({'v': video()}, {'v': video(swap_at=3)})['TrackAP'] < 0.2


def test_missed_track_lowers_ap_and_scores_rank():
    gt = {'v': video()}
    missed = track_ap(gt, {'v': video(keep=(0, ))})
    assert missed['TrackAP'] == pytest.approx(np.mean(RECALLS <= 0.5))
    assert track_ap(gt, {})['TrackAP'] == 0
    # a spurious track ranked first costs precision (envelope 2/3 at every recall); ranked
    # last, nothing
    for score, expected in ((0.95, 2 / 3), (0.1, 1.0)):
        pred = {'v': video()}
        for t in range(3):
            extra = dict(ids=[9], boxes=[[80, 0, 90, 5]], scores=[score], labels=[0])
            pred['v'][t] = {k: np.concatenate([pred['v'][t][k], extra[k]]) for k in extra}
        assert track_ap(gt, pred)['TrackAP'] == pytest.approx(expected)


def test_category_mismatch_and_errors():
    gt = {'v': video()}
    wrong = video()
    for entry in wrong.values():
        entry['labels'] = entry['labels'][::-1].copy()
    assert track_ap(gt, {'v': wrong}, categories=['a', 'b'])['TrackAP'] == 0
    assert track_ap(gt, {'v': wrong})['TrackAP'] == pytest.approx(1.0)  # class-agnostic
    with pytest.raises(ValueError, match='indices'):
        track_ap(gt, {'v': video()}, categories=['a'])
    with pytest.raises(KeyError, match='scores'):
        track_ap(gt, {'v': {0: dict(ids=[1], boxes=[[0, 0, 1, 1]])}})
    with pytest.raises(KeyError, match='without GT'):
        track_ap(gt, {'w': video()})
