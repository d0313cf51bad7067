"""A training-free tracker for the synthetic world, so generated clips get identity figures.

Detections are the connected components of :func:`mmtrackgen.datasets.segment_foreground`
(saturated objects on a grey background) of at least ``min_area`` pixels, boxed by their
pixel extents. Tracks are associated to detections by box IoU with the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``); a track's box is predicted forward by its last
displacement, a track unmatched for more than ``max_age`` frames ends, and unmatched
detections start new tracks.

mmdet's ``SORTTracker`` and ``ByteTracker`` are not used: they need ``motmetrics`` and ``lap``
(not installed), Kalman-filter task utils, and a detector model / ``DetDataSample`` plumbing,
none of which the pixel-component detector needs.
"""
from typing import Dict

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from mmtrackgen.datasets import segment_foreground
from .identity import box_iou


def detect_components(frame: np.ndarray, min_area: int = 16, connectivity: int = 8) -> tuple:
    """Boxes (K, 4) xyxy pixel edges and pixel counts (K,) of the frame's foreground objects.

    Args:
        frame: (H, W, 3) uint8 RGB synthetic-world frame.
        min_area: smallest component kept, in pixels.
        connectivity: 4 or 8 neighbours join pixels into one component.
    """
    if connectivity not in (4, 8):
        raise ValueError(f'connectivity must be 4 or 8, got {connectivity}')
    mask = segment_foreground(frame)
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    labels, num = ndimage.label(mask, structure=structure)
    if num == 0:
        return np.zeros((0, 4)), np.zeros(0, np.int64)
    areas = np.bincount(labels.ravel(), minlength=num + 1)[1:]
    boxes = np.array([[s[1].start, s[0].start, s[1].stop, s[0].stop]
                      for s in ndimage.find_objects(labels)],
                     dtype=np.float64)
    keep = areas >= min_area
    return boxes[keep], areas[keep]


class SyntheticTracker:
    """IoU + Hungarian tracker on foreground components; call :meth:`update` frame by frame.

    Args:
        min_area: smallest component kept as a detection, in pixels.
        iou_threshold: lowest IoU between a track's predicted box and a detection to match.
        max_age: frames a track may go unmatched before it ends (0: ends when first missed).
        score: ``'fill'``: a detection's score is its pixel count over its box area; ``'one'``:
            every score is 1.
        connectivity: 4 or 8, see :func:`detect_components`.
    """

    def __init__(self,
                 min_area: int = 16,
                 iou_threshold: float = 0.3,
                 max_age: int = 5,
                 score: str = 'fill',
                 connectivity: int = 8):
        if score not in ('fill', 'one'):
            raise ValueError(f"score must be 'fill' or 'one', got {score!r}")
        if max_age < 0 or min_area < 1:
            raise ValueError(f'need max_age >= 0 and min_area >= 1, got {max_age}, {min_area}')
        self.min_area = min_area
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self.score = score
        self.connectivity = connectivity
        self.reset()

    def reset(self) -> None:
        """Forget all tracks; ids start again from 0."""
        self.tracks = {}  # id -> dict(box, velocity, age)
        self.next_id = 0

    def _predicted_boxes(self) -> np.ndarray:
        """Each live track's box moved by its last displacement times the frames since seen."""
        if not self.tracks:
            return np.zeros((0, 4))
        return np.stack([t['box'] + t['velocity'] * (t['age'] + 1) for t in self.tracks.values()])

    def update(self, frame: np.ndarray) -> Dict[str, np.ndarray]:
        """Track one frame; returns ``dict(ids (K,), boxes (K, 4), scores (K,))``.

        Only tracks matched or started in this frame are returned (in detection order).
        """
        boxes, areas = detect_components(frame, self.min_area, self.connectivity)
        if self.score == 'fill':
            box_areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            scores = areas / np.maximum(box_areas, 1)
        else:
            scores = np.ones(len(boxes))
        track_ids = list(self.tracks)
        ious = box_iou(self._predicted_boxes(), boxes)  # (T, K)
        rows, cols = linear_sum_assignment(-ious) if ious.size else ([], [])
        ids = np.full(len(boxes), -1, dtype=np.int64)
        for r, c in zip(rows, cols):
            if ious[r, c] >= self.iou_threshold:
                track = self.tracks[track_ids[r]]
                track['velocity'] = (boxes[c] - track['box']) / (track['age'] + 1)
                track['box'], track['age'] = boxes[c], 0
                ids[c] = track_ids[r]
        matched = set(ids.tolist())
        for tid in track_ids:
            if tid not in matched:
                self.tracks[tid]['age'] += 1
                if self.tracks[tid]['age'] > self.max_age:
                    del self.tracks[tid]
        for c in np.flatnonzero(ids < 0):
            ids[c] = self.next_id
            self.tracks[self.next_id] = dict(box=boxes[c], velocity=np.zeros(4), age=0)
            self.next_id += 1
        return dict(ids=ids, boxes=boxes, scores=scores)


def track_clip(frames: np.ndarray, **kwargs) -> Dict[int, Dict[str, np.ndarray]]:
    """Track a clip with a fresh :class:`SyntheticTracker` (``kwargs`` are its arguments).

    Args:
        frames: (F, H, W, 3) uint8 RGB.
    Returns:
        ``{frame_index: dict(ids (K,) int64, boxes (K, 4) xyxy pixels, scores (K,))}`` for
        frames 0..F-1, one video of the tracks format of :mod:`mmtrackgen.evaluation.identity`.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError('track_clip expects (F, H, W, 3) uint8 RGB frames, got shape '
                         f'{frames.shape} dtype {frames.dtype}')
    tracker = SyntheticTracker(**kwargs)
    return {t: tracker.update(frame) for t, frame in enumerate(frames)}
