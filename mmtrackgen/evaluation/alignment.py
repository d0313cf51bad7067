"""Tracker-free alignment: does each generated object sit in its box?

For every visible (frame, instance) the frame is segmented into foreground and background (for
the synthetic world: saturated objects on a grey background), the foreground pixels near the
target box are collected, and the IoU between their bounding box and the target box is the
score of that entry (0 when no foreground is near the box).
"""
from typing import Callable, Dict

import numpy as np


def box_alignment(frames: np.ndarray,
                  boxes: np.ndarray,
                  visible: np.ndarray,
                  segment: Callable[[np.ndarray], np.ndarray],
                  context: float = 0.25) -> np.ndarray:
    """IoU of each visible target box with the foreground found around it.

    Args:
        frames: (F, H, W, 3) uint8 generated frames.
        boxes: (F, N, 4) target boxes, xyxy normalised to [0, 1].
        visible: (F, N) bool.
        segment: frame (H, W, 3) uint8 -> (H, W) bool foreground mask.
        context: the search region is the box grown by this fraction of its size on each side.
    Returns:
        (F, N) float IoUs, NaN where the instance is not visible.
    """
    num_frames, h, w = frames.shape[:3]
    ious = np.full(visible.shape, np.nan)
    scale = np.array([w, h, w, h])
    for t in range(num_frames):
        slots = np.flatnonzero(visible[t])
        if not len(slots):
            continue
        mask = segment(frames[t])  # (H, W)
        for s in slots:
            x1, y1, x2, y2 = boxes[t, s] * scale
            bw, bh = x2 - x1, y2 - y1
            rx1, ry1 = int(max(0, np.floor(x1 - context * bw))), int(
                max(0, np.floor(y1 - context * bh)))
            rx2, ry2 = int(min(w, np.ceil(x2 + context * bw))), int(
                min(h, np.ceil(y2 + context * bh)))
            ys, xs = np.nonzero(mask[ry1:ry2, rx1:rx2])
            if not len(xs):
                ious[t, s] = 0.0
                continue
            px1, py1 = xs.min() + rx1, ys.min() + ry1
            px2, py2 = xs.max() + rx1 + 1, ys.max() + ry1 + 1  # pixel edges, exclusive
            iw = max(0.0, min(x2, px2) - max(x1, px1))
            ih = max(0.0, min(y2, py2) - max(y1, py1))
            inter = iw * ih
            union = bw * bh + (px2 - px1) * (py2 - py1) - inter
            ious[t, s] = inter / union if union > 0 else 0.0
    return ious


def summarize_alignment(ious: np.ndarray) -> Dict[str, float]:
    """Mean IoU and the share of entries above 0.5 over all visible entries."""
    valid = ious[~np.isnan(ious)]
    if not len(valid):
        return dict(mean_iou=float('nan'), iou50=float('nan'), entries=0)
    return dict(
        mean_iou=float(valid.mean()), iou50=float((valid >= 0.5).mean()), entries=int(len(valid)))
