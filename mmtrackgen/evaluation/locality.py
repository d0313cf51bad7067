"""Where does a generated clip change when one instance's box moves?"""
from typing import Dict

import numpy as np
import torch

from mmtrackgen.models.trackdiffusion import foreground_mask


def box_union_mask(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """(F, K, 4) normalised xyxy boxes -> (F, H, W) bool: pixel centres inside any of them
    (the loss weighting's :func:`foreground_mask`, for numpy arrays)."""
    boxes = torch.as_tensor(boxes, dtype=torch.float64)[None]  # (1, F, K, 4)
    visible = torch.ones(boxes.shape[:3], dtype=torch.bool)  # (1, F, K)
    return foreground_mask(boxes, visible, height, width)[0].numpy()  # (F, H, W)


def change_locality(before: np.ndarray, after: np.ndarray, old_boxes: np.ndarray,
                    new_boxes: np.ndarray) -> Dict[str, float]:
    """How much of the change between two samples falls inside the moved instance's old and
    new boxes, against how much of the frame those boxes cover.

    Args:
        before, after: (F, H, W, 3) uint8 samples with the same seed, before and after the move.
        old_boxes, new_boxes: (F, 4) the instance's box in each frame (normalised xyxy), where
            it is visible (rows of frames where it is not should be all zero).
    Returns:
        ``inside_fraction``: share of the total absolute pixel change inside the boxes;
        ``area_fraction``: share of the pixels the boxes cover (what a change spread evenly
        would give); ``locality``: their ratio (1 = no preference for the boxes).
    """
    h, w = before.shape[1:3]
    diff = np.abs(before.astype(np.float64) - after.astype(np.float64)).sum(-1)  # (F, H, W)
    region = box_union_mask(np.stack([old_boxes, new_boxes], axis=1), h, w)  # (F, H, W)
    total = diff.sum()
    inside = diff[region].sum() / total if total > 0 else float('nan')
    area = region.mean()
    return dict(inside_fraction=float(inside), area_fraction=float(area),
                locality=float(inside / area) if area > 0 else float('nan'))
