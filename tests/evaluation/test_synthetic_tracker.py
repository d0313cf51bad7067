import numpy as np
import pytest

from mmtrackgen.evaluation import (SyntheticTracker, detect_components, identity_metrics,
                                   track_clip)

COLOURS = [(220, 40, 40), (40, 200, 60), (40, 60, 220)]


def draw_clip(num_frames=12, hidden=()):
    """Three coloured rectangles moving on flat grey; returns frames and their GT tracks.

    ``hidden``: (object index, frame) pairs not drawn.
    """
    starts = [(4, 2, 12, 8), (70, 24, 10, 10), (30, 48, 16, 6)]  # x, y, w, h; never touch
    steps = [(3, 1), (-2, 0), (1, -1)]
    frames = np.full((num_frames, 64, 96, 3), 128, dtype=np.uint8)
    gt = {}
    for t in range(num_frames):
        ids, boxes = [], []
        for k, ((x, y, w, h), (dx, dy)) in enumerate(zip(starts, steps)):
            if (k, t) in hidden:
                continue
            x, y = x + dx * t, y + dy * t
            frames[t, y:y + h, x:x + w] = COLOURS[k]
            ids.append(10 + k)
            boxes.append([x, y, x + w, y + h])
        gt[t] = dict(ids=np.array(ids), boxes=np.array(boxes, dtype=float).reshape(-1, 4))
    return frames, gt


def test_detect_components_boxes_and_min_area():
    frames, gt = draw_clip(1)
    frame = frames[0].copy()
    frame[60:62, 90:92] = (250, 0, 0)  # a 4-pixel speck
    boxes, areas = detect_components(frame, min_area=16)
    order = np.argsort(boxes[:, 0])
    assert boxes[order].tolist() == gt[0]['boxes'][np.argsort(gt[0]['boxes'][:, 0])].tolist()
    assert sorted(areas.tolist()) == [96, 96, 100]  # 12 x 8, 16 x 6, 10 x 10
    assert len(detect_components(frame, min_area=4)[0]) == 4
    assert detect_components(np.full((8, 8, 3), 128, np.uint8), 1)[0].shape == (0, 4)


def test_tracks_drawn_rectangles_perfectly():
    frames, gt = draw_clip()
    tracks = track_clip(frames)
    assert set(tracks) == set(range(len(frames)))
    assert all(len(tracks[t]['ids']) == 3 for t in tracks)
    assert np.allclose(tracks[0]['scores'], 1.0)  # solid rectangles fill their boxes
    result = identity_metrics({'clip': gt}, {'clip': tracks})
    assert result['IDF1'] == 1 and result['IDSW'] == 0
    assert result['HOTA'] == pytest.approx(1.0)
    # swapping two ids from frame 6 on breaks identity, not detection
    swapped = {t: dict(v, ids=v['ids'].copy()) for t, v in tracks.items()}
    for t in range(6, len(frames)):
        ids = swapped[t]['ids']
        first, second = ids == tracks[0]['ids'][0], ids == tracks[0]['ids'][1]
        ids[first], ids[second] = tracks[0]['ids'][1], tracks[0]['ids'][0]
    result = identity_metrics({'clip': gt}, {'clip': swapped})
    assert result['IDF1'] < 1 and result['AssA'] < 1 and result['DetA'] == pytest.approx(1.0)


def test_lost_track_keeps_id_within_max_age():
    # object 0 is missing in frames 4 and 5 and reappears where its motion puts it
    frames, gt = draw_clip(hidden={(0, 4), (0, 5)})
    result = identity_metrics({'clip': gt}, {'clip': track_clip(frames, max_age=5)})
    assert result['IDF1'] == 1 and result['HOTA'] == pytest.approx(1.0)
    # with max_age 1 the track has ended: a new id, one identity switch
    tracks = track_clip(frames, max_age=1)
    assert len(np.unique(np.concatenate([f['ids'] for f in tracks.values()]))) == 4
    assert identity_metrics({'clip': gt}, {'clip': tracks})['IDSW'] == 1


def test_tracker_state_and_input_checks():
    frames, _ = draw_clip(2)
    tracker = SyntheticTracker(score='one')
    first = tracker.update(frames[0])
    assert sorted(first['ids'].tolist()) == [0, 1, 2] and first['scores'].tolist() == [1, 1, 1]
    tracker.reset()
    assert sorted(tracker.update(frames[1])['ids'].tolist()) == [0, 1, 2]
    with pytest.raises(ValueError, match='uint8'):
        track_clip(frames.astype(np.float32))
    with pytest.raises(ValueError, match='score'):
        SyntheticTracker(score='area')
