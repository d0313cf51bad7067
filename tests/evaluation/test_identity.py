import numpy as np
import pytest

from mmtrackgen.evaluation import check_tracks, identity_metrics, layouts_to_tracks
from mmtrackgen.structures import TrackletLayout

# 19 HOTA alphas 0.05..0.95: a match of IoU s counts for the alphas <= s.
ALPHAS = np.arange(0.05, 0.99, 0.05)


def two_objects(num_frames=8, shift=0.0, ids=(1, 2), swap_at=None):
    """Video of two 10x10 boxes moving right and down; ``shift`` moves the first in x."""
    frames = {}
    for t in range(num_frames):
        frame_ids = ids if swap_at is None or t < swap_at else ids[::-1]
        boxes = [[10 + t + shift, 10, 20 + t + shift, 20], [50, 40 + t, 60, 50 + t]]
        frames[t] = dict(ids=np.array(frame_ids), boxes=np.array(boxes, dtype=float))
    return frames


def test_perfect_tracks_score_one_with_any_id_values():
    gt = {'v': two_objects(ids=(1000, 7))}
    result = identity_metrics(gt, {'v': two_objects(ids=(0, 1))})
    for key in ('HOTA', 'DetA', 'AssA', 'IDF1', 'IDP', 'IDR', 'MOTA', 'MOTP'):
        assert result[key] == pytest.approx(1.0), key
    assert result['IDSW'] == 0
    combined = {k: v for k, v in result.items() if k != 'per_video'}
    assert result['per_video']['v'] == pytest.approx(combined)


def test_shifted_boxes_known_answers():
    gt = {'v': two_objects()}
    # first box shifted by 2 of its 10 px: IoU 80 / 120 = 2/3, matched for 13 of 19 alphas;
    # for the other 6 each frame has 1 TP, 1 FN, 1 FP: DetA 1/3
    result = identity_metrics(gt, {'v': two_objects(shift=2)})
    assert result['DetA'] == pytest.approx((13 + 6 / 3) / 19)
    assert result['HOTA'] < 1 and result['AssA'] == pytest.approx(1.0)
    assert result['IDF1'] == 1 and result['MOTA'] == 1
    assert result['MOTP'] == pytest.approx((2 / 3 + 1) / 2)
    # one object shifted by 5: IoU 1/3, below the 0.5 match threshold, 6 alphas
    one = {'v': {t: {k: v[:1] for k, v in f.items()} for t, f in two_objects().items()}}
    shifted = {'v': {t: {k: v[:1] for k, v in f.items()} for t, f in two_objects(shift=5).items()}}
    result = identity_metrics(one, shifted)
    assert result['HOTA'] == pytest.approx(np.mean(ALPHAS <= 1 / 3 + 1e-9))
    assert result['IDF1'] == 0 and result['MOTA'] == -1


def test_identity_swap_lowers_association_not_detection():
    gt = {'v': two_objects()}
    result = identity_metrics(gt, {'v': two_objects(swap_at=4)})
    assert result['DetA'] == pytest.approx(1.0)
    assert result['AssA'] < 1 and result['HOTA'] < 1
    assert result['IDF1'] == pytest.approx(0.5) and result['IDSW'] == 2
    assert result['MOTA'] == pytest.approx(1 - 2 / 16)


def test_missed_track_and_combination_over_videos():
    gt = {'a': two_objects(), 'b': two_objects()}
    half = {t: {k: v[:1] for k, v in f.items()} for t, f in two_objects().items()}
    result = identity_metrics(gt, {'a': two_objects(), 'b': half})
    assert result['per_video']['a']['IDF1'] == 1
    assert result['per_video']['b']['IDR'] == 0.5 and result['per_video']['b']['IDP'] == 1
    assert result['IDR'] == pytest.approx(0.75) and result['IDP'] == 1
    assert result['MOTA'] == pytest.approx(0.75)
    # a GT video without predictions is all missed
    result = identity_metrics(gt, {'a': two_objects()})
    assert result['per_video']['b']['DetA'] == 0 and result['IDR'] == pytest.approx(0.5)


def test_empty_frames_and_bad_input():
    gt = {'v': {0: dict(ids=[1], boxes=[[0, 0, 4, 4]]), 3: dict(ids=[], boxes=[])}}
    pred = {'v': {0: dict(ids=[5], boxes=[[0, 0, 4, 4]])}}
    assert identity_metrics(gt, pred)['IDF1'] == 1
    with pytest.raises(ValueError, match='unique'):
        check_tracks({'v': {0: dict(ids=[1, 1], boxes=np.zeros((2, 4)))}})
    with pytest.raises(ValueError, match=r'\(K, 4\)'):
        check_tracks({'v': {0: dict(ids=[1, 2], boxes=np.zeros((3, 4)))}})
    with pytest.raises(KeyError, match='boxes'):
        check_tracks({'v': {0: dict(ids=[1])}})
    with pytest.raises(KeyError, match='without GT'):
        identity_metrics(gt, {'w': pred['v']})


def test_layouts_to_tracks_keeps_visible_boxes_and_labels():
    boxes = np.zeros((3, 2, 4), np.float32)
    boxes[:, 0] = [1, 2, 5, 6]
    boxes[:2, 1] = [10, 10, 20, 20]
    visible = np.array([[True, True], [True, True], [True, False]])
    layout = TrackletLayout('clip', (32, 32), boxes, visible, np.array([4, 9]), ['cat', 'dog'])
    tracks = layouts_to_tracks([layout], categories=['dog', 'cat'])
    assert set(tracks) == {'clip'} and set(tracks['clip']) == {0, 1, 2}
    assert tracks['clip'][2]['ids'].tolist() == [4]
    assert tracks['clip'][2]['boxes'].tolist() == [[1, 2, 5, 6]]
    assert tracks['clip'][0]['labels'].tolist() == [1, 0]
    assert 'labels' not in layouts_to_tracks([layout])['clip'][0]
    assert identity_metrics(tracks, tracks)['HOTA'] == pytest.approx(1.0)
    with pytest.raises(KeyError, match='dog'):
        layouts_to_tracks([layout], categories=['cat'])
