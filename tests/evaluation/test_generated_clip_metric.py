import pytest
import torch
from mmdet.structures import DetDataSample, TrackDataSample
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData

from mmtrackgen.evaluation import GeneratedTrackMetric
from mmtrackgen.registry import METRICS

IDENTITY = ('HOTA', 'DetA', 'AssA', 'IDF1', 'IDP', 'IDR', 'MOTA', 'MOTP')


def gt_boxes(t):
    return [[10 + t, 10, 20 + t, 20], [40, 30 + t, 52, 40 + t]]


def frame_sample(video_id, t, shift=0.0, gt_as='instances', pred_ids=(7, 3)):
    """One frame: two GT instances (ids 1, 2; labels 0, 1) and a tracker's output."""
    meta = dict(video_id=video_id, frame_id=t, ori_video_length=4)
    boxes = gt_boxes(t)
    if gt_as == 'instances':
        meta['instances'] = [
            dict(bbox=b, instance_id=i + 1, bbox_label=i, ignore_flag=0)
            for i, b in enumerate(boxes)
        ]
    sample = DetDataSample(metainfo=meta)
    if gt_as == 'gt_instances':
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor(boxes, dtype=torch.float32),
            labels=torch.tensor([0, 1]),
            instances_ids=torch.tensor([1, 2]))
    pred = torch.tensor(boxes, dtype=torch.float32)
    pred[0, [0, 2]] += shift
    sample.pred_track_instances = InstanceData(
        bboxes=pred,
        scores=torch.tensor([0.9, 0.8]),
        labels=torch.tensor([0, 1]),
        instances_id=torch.tensor(pred_ids))
    return sample


def video_sample(video_id, **kwargs):
    sample = TrackDataSample()
    sample.video_data_samples = [frame_sample(video_id, t, **kwargs) for t in range(4)]
    return sample


def run(samples, num_videos=None, **cfg):
    """Evaluate as mmengine's test loop does: ``evaluate(len(dataset))``, and a tracking
    dataset's length is its number of videos."""
    evaluator = Evaluator([METRICS.build(dict(type='GeneratedTrackMetric', **cfg))])
    evaluator.dataset_meta = dict(classes=('square', 'circle'))
    for sample in samples:  # one sample per step, as the test loop feeds them
        evaluator.process([sample])
    return evaluator.evaluate(num_videos or len(samples))


def test_perfect_tracks_in_whole_video_samples():
    result = run([video_sample(1), video_sample(2, gt_as='gt_instances')])
    for key in ('TrackAP', 'TrackAP50', 'TrackAP75') + IDENTITY:
        assert result[f'generated/{key}'] == pytest.approx(1.0), key
    assert result['generated/IDSW'] == 0


def test_frame_by_frame_samples_and_shifted_boxes():
    samples = []
    for t in range(4):
        sample = TrackDataSample()
        sample.video_data_samples = [frame_sample('clip', t, shift=4)]
        samples.append(sample)
    result = run(samples, num_videos=1)
    # the square (label 0) is off by 4 of 10 px: IoU 60 / 140 < 0.5, its category's AP is 0,
    # the circle's 1
    assert result['generated/TrackAP50'] == pytest.approx(0.5)
    assert result['generated/IDF1'] == pytest.approx(0.5)
    assert result['generated/HOTA'] < 1 and result['generated/MOTP'] == pytest.approx(1.0)


def test_process_on_plain_frame_dicts_and_class_agnostic():
    metric = GeneratedTrackMetric(class_agnostic=True, prefix='gen')
    frames = [frame_sample('v', t).to_dict() for t in range(4)]
    for frame in frames:
        frame['pred_track_instances'].pop('labels')
    metric.process({}, frames)
    assert len(metric.results) == 1  # one video
    assert metric.evaluate(1)['gen/TrackAP'] == pytest.approx(1.0)


def test_every_frame_of_every_video_counts_when_videos_come_frame_by_frame():
    """mmdet's tracking test loop: one frame per step, then evaluate(number of videos).
    Video 1 is tracked perfectly, video 2 not at all (no predictions): half the GT is missed."""
    samples = []
    for video in (1, 2):
        for t in range(4):
            sample = TrackDataSample()
            frame = frame_sample(video, t)
            if video == 2:
                none = torch.zeros(2, dtype=torch.bool)
                frame.pred_track_instances = frame.pred_track_instances[none]
            sample.video_data_samples = [frame]
            samples.append(sample)
    result = run(samples, num_videos=2)
    assert result['generated/MOTA'] == pytest.approx(0.5)  # 8 of 16 GT boxes missed
    assert result['generated/IDR'] == pytest.approx(0.5)
    assert result['generated/IDP'] == pytest.approx(1.0)


def test_a_video_with_missing_frames_is_still_scored():
    metric = GeneratedTrackMetric(prefix='gen')
    sample = TrackDataSample()
    sample.video_data_samples = [frame_sample('v', 0)]  # 1 of its 4 frames
    metric.process({}, [sample])
    assert metric.results == []
    assert metric.evaluate(1)['gen/MOTA'] == pytest.approx(1.0)


def test_missing_fields_are_named():
    metric = GeneratedTrackMetric()
    frame = frame_sample('v', 0).to_dict()
    frame.pop('pred_track_instances')
    with pytest.raises(KeyError, match='pred_track_instances'):
        metric.process({}, [frame])
    frames = [frame_sample('v', t).to_dict() for t in range(4)]
    frames[0]['pred_track_instances'].pop('labels')
    metric.process({}, frames)
    with pytest.raises(KeyError, match='class_agnostic'):
        metric.compute_metrics(metric.results)
