"""MinSizeByteTracker: mmdet's ByteTracker that survives detections of zero height."""
import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmtrackgen.registry import MODELS

TRACKER = dict(
    motion=dict(type='KalmanFilter'),
    obj_score_thrs=dict(high=0.6, low=0.1),
    init_track_thr=0.7,
    weight_iou_with_det_scores=True,
    match_iou_thrs=dict(high=0.1, low=0.5, tentative=0.3),
    num_frames_retain=30)


def frames(num_frames=6):
    """A square moving right, plus from frame 2 on a detection of zero height where it is."""
    for t in range(num_frames):
        boxes = [[10. + 2 * t, 10., 20. + 2 * t, 20.]]
        if t >= 2:
            boxes.append([10. + 2 * t, 15., 20. + 2 * t, 15.])
        sample = DetDataSample(metainfo=dict(frame_id=t, img_shape=(64, 64)))
        sample.pred_instances = InstanceData(
            bboxes=torch.tensor(boxes),
            scores=torch.full((len(boxes), ), 0.9),
            labels=torch.zeros(len(boxes), dtype=torch.long))
        yield sample


def run(tracker):
    tracker.reset()
    return [tracker.track(sample) for sample in frames()]


def test_stock_byte_tracker_fails_on_a_box_of_zero_height():
    stock = MODELS.build(dict(type='mmdet.ByteTracker', **TRACKER))
    with pytest.raises(np.linalg.LinAlgError):
        run(stock)


def test_boxes_at_most_min_box_size_are_dropped_and_the_object_keeps_its_id():
    tracker = MODELS.build(dict(type='MinSizeByteTracker', min_box_size=1.0, **TRACKER))
    outputs = run(tracker)
    ids = [out.instances_id.tolist() for out in outputs]
    assert all(len(frame_ids) == 1 for frame_ids in ids)  # only the square, every frame
    assert len({frame_ids[0] for frame_ids in ids}) == 1  # one identity throughout
    with pytest.raises(ValueError, match='min_box_size'):
        MODELS.build(dict(type='MinSizeByteTracker', min_box_size=-1, **TRACKER))
