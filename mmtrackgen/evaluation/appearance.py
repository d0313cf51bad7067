"""Appearance consistency: does each generated object keep its look from frame to frame?

For every visible (frame, instance) the foreground pixels inside the box (the same segmentation
as :func:`box_alignment`) give a coarse colour histogram; an instance's score is the mean
histogram intersection of its frames with its own average histogram (1: the same colours in
every frame). A tracker-free stand-in for what the Instance Enhancer is meant to improve.
"""
from typing import Callable, Dict

import numpy as np


def colour_histogram(pixels: np.ndarray, bins: int = 4) -> np.ndarray:
    """(K, 3) uint8 RGB pixels -> (bins^3,) normalised histogram (zeros when K = 0)."""
    cells = (pixels.astype(np.int64) * bins) // 256  # (K, 3)
    index = (cells[:, 0] * bins + cells[:, 1]) * bins + cells[:, 2]  # (K,)
    hist = np.bincount(index, minlength=bins**3).astype(np.float64)  # (bins^3,)
    return hist / hist.sum() if hist.sum() else hist


def appearance_consistency(frames: np.ndarray,
                           boxes: np.ndarray,
                           visible: np.ndarray,
                           segment: Callable[[np.ndarray], np.ndarray],
                           bins: int = 4) -> np.ndarray:
    """Per-instance consistency of the foreground colours inside its boxes across frames.

    Args:
        frames: (F, H, W, 3) uint8.
        boxes: (F, N, 4) xyxy normalised to [0, 1].
        visible: (F, N) bool.
        segment: frame -> (H, W) bool foreground mask.
    Returns:
        (N,) scores in [0, 1]; NaN for instances with fewer than two frames that show some
        foreground in their box.
    """
    num_frames, h, w = frames.shape[:3]
    masks = [segment(frame) if visible[t].any() else None for t, frame in enumerate(frames)]
    scale = np.array([w, h, w, h])
    scores = np.full(boxes.shape[1], np.nan)
    for n in range(boxes.shape[1]):
        hists = []
        for t in np.flatnonzero(visible[:, n]):
            x1, y1, x2, y2 = np.round(boxes[t, n] * scale).astype(int)
            region = masks[t][max(0, y1):max(0, y2), max(0, x1):max(0, x2)]  # (h', w')
            pixels = frames[t, max(0, y1):max(0, y2), max(0, x1):max(0, x2)][region]  # (K, 3)
            if len(pixels):
                hists.append(colour_histogram(pixels, bins))
        if len(hists) >= 2:
            hists = np.stack(hists)  # (T, bins^3)
            mean = hists.mean(axis=0)  # (bins^3,)
            scores[n] = float(np.minimum(hists, mean).sum(axis=1).mean())
    return scores


def summarize_consistency(scores: np.ndarray) -> Dict[str, float]:
    valid = scores[~np.isnan(scores)]
    return dict(
        appearance_consistency=float(valid.mean()) if len(valid) else float('nan'),
        instances=int(len(valid)))
