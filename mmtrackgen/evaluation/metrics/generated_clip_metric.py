"""mmengine metric: TrackAP and identity figures of a tracker's output on generated clips."""
from typing import Any, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from mmtrackgen.registry import METRICS
from ..identity import identity_metrics
from ..track_ap import track_ap


def _get(obj: Any, key: str, default=None):
    """A field or metainfo of a data element, or a key of its ``to_dict()`` form."""
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _numpy(value, dtype) -> np.ndarray:
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def _video_key(frame: Any):
    for key in ('video_name', 'video_id'):
        value = _get(frame, key)
        if value is not None:
            return value
    raise KeyError('a frame sample needs `video_name` or `video_id` in its metainfo to group '
                   'its tracks by video')


def _pred_entry(frame: Any) -> dict:
    pred = _get(frame, 'pred_track_instances')
    if pred is None:
        raise KeyError('a frame sample lacks `pred_track_instances` (a tracker\'s output with '
                       'instances_id, bboxes, scores)')
    entry = dict(
        ids=_numpy(_get(pred, 'instances_id'), np.int64),
        boxes=_numpy(_get(pred, 'bboxes'), np.float64).reshape(-1, 4),
        scores=_numpy(_get(pred, 'scores'), np.float64))
    if _get(pred, 'labels') is not None:
        entry['labels'] = _numpy(_get(pred, 'labels'), np.int64)
    return entry


def _gt_entry(frame: Any) -> dict:
    """GT of a frame from mmdet's raw ``instances`` (original image coordinates, as mmdet's
    MOT metric reads them) or else from ``gt_instances`` (``instances_ids``, ``bboxes``,
    ``labels``)."""
    instances = _get(frame, 'instances')
    if instances is not None:
        instances = [i for i in instances if not i.get('ignore_flag', 0)]
        return dict(
            ids=np.array([i['instance_id'] for i in instances], dtype=np.int64),
            boxes=np.array([i['bbox'] for i in instances], dtype=np.float64).reshape(-1, 4),
            labels=np.array([i.get('bbox_label', 0) for i in instances], dtype=np.int64))
    gt = _get(frame, 'gt_instances')
    if gt is None:
        raise KeyError('a frame sample needs the GT tracklets as `instances` (mmdet '
                       'annotations) or `gt_instances` (with instances_ids)')
    entry = dict(
        ids=_numpy(_get(gt, 'instances_ids'), np.int64),
        boxes=_numpy(_get(gt, 'bboxes'), np.float64).reshape(-1, 4))
    if _get(gt, 'labels') is not None:
        entry['labels'] = _numpy(_get(gt, 'labels'), np.int64)
    return entry


@METRICS.register_module()
class GeneratedTrackMetric(BaseMetric):
    """TrackAP (50, 75) and HOTA, DetA, AssA, IDF1, IDP, IDR, MOTA, MOTP, IDSW of tracks that a
    tracker found in generated clips, against the tracklets the clips were generated from.

    Each data sample is a ``TrackDataSample`` (or its ``to_dict()``) whose
    ``video_data_samples`` are frames, or one frame itself. A frame holds
    ``pred_track_instances`` (``instances_id``, ``bboxes`` xyxy, ``scores``, optional
    ``labels``, as mmdet's trackers output), the GT as ``instances`` (mmdet annotations:
    ``bbox`` xyxy, ``instance_id``, ``bbox_label``) or ``gt_instances`` (``instances_ids``,
    ``bboxes``, ``labels``), and metainfo ``video_name`` or ``video_id`` and ``frame_id``
    (defaults to the frame's position in ``video_data_samples``). Frames of one video may
    come in several samples (frame-by-frame test loops).

    Args:
        class_agnostic (bool): TrackAP ignores categories. Otherwise labels are needed and
            indexed into ``dataset_meta['classes']`` (or named by their index without one).
        iou_threshold (float): box IoU of a match for the CLEAR and ID figures.
        max_tracks (int): highest-scored tracks per video and category kept by TrackAP.
        collect_device, prefix: see ``mmengine.evaluator.BaseMetric``.
    """
    default_prefix: Optional[str] = 'generated'

    def __init__(self,
                 class_agnostic: bool = False,
                 iou_threshold: float = 0.5,
                 max_tracks: int = 100,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.class_agnostic = class_agnostic
        self.iou_threshold = iou_threshold
        self.max_tracks = max_tracks
        self._incomplete: dict = {}  # video -> records of the frames seen so far

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        """Keep the frames as ``(video, frame_id, pred, gt)`` numpy records, one ``results``
        entry per video. mmdet's tracking test loop feeds a video frame by frame but evaluates
        ``len(dataset)`` entries, its number of videos (mmengine drops entries beyond that), so
        frames wait until their video is complete (``ori_video_length`` frames), as in mmdet's
        ``BaseVideoMetric``. A sample without ``ori_video_length`` is an entry of its own."""
        for sample in data_samples:
            frames = _get(sample, 'video_data_samples')
            if frames is None:
                frames = [sample]
            records = [(_video_key(frame), int(_get(frame, 'frame_id', pos)), _pred_entry(frame),
                        _gt_entry(frame)) for pos, frame in enumerate(frames)]
            length = _get(frames[0], 'ori_video_length')
            if length is None or len(frames) >= length:
                self.results.append(records)
                continue
            video = records[0][0]
            waiting = self._incomplete.setdefault(video, [])
            waiting.extend(records)
            if len(waiting) >= length:
                self.results.append(self._incomplete.pop(video))

    def evaluate(self, size: int) -> dict:
        # A video whose frames did not all arrive is still scored on those that did.
        self.results.extend(self._incomplete.values())
        self._incomplete.clear()
        return super().evaluate(size)

    def _categories(self, gt: dict, pred: dict) -> Optional[list]:
        if self.class_agnostic:
            return None
        entries = [
            e for tracks in (gt, pred) for frames in tracks.values() for e in frames.values()
        ]
        if any('labels' not in e for e in entries):
            raise KeyError('class-aware TrackAP needs labels in every frame\'s predictions and '
                           'GT; set class_agnostic=True for a class-agnostic tracker')
        classes = (self.dataset_meta or {}).get('classes')
        if classes is not None:
            return list(classes)
        top = max([int(e['labels'].max()) for e in entries if len(e['labels'])], default=0)
        return [str(i) for i in range(top + 1)]

    def compute_metrics(self, results: list) -> dict:
        """TrackAP, TrackAP50, TrackAP75 and the identity figures over all videos."""
        gt, pred = {}, {}
        for records in results:
            for video, frame_id, pred_entry, gt_entry in records:
                pred.setdefault(video, {})[frame_id] = pred_entry
                gt.setdefault(video, {})[frame_id] = gt_entry
        metrics = track_ap(gt, pred, self._categories(gt, pred), max_tracks=self.max_tracks)
        identity = identity_metrics(gt, pred, iou_threshold=self.iou_threshold)
        identity.pop('per_video')
        metrics.update(identity)
        return metrics
