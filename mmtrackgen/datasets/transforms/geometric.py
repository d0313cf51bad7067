"""Resize, crop and flip applied identically to every frame of a clip, with its boxes.

All transforms read and write ``frames`` (F, H, W, 3) (or ``None`` for tracklets-only clips),
``img_shape`` (H, W) and the per-frame box lists of :class:`LoadTrackletClip`.
"""
from typing import Tuple

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmtrackgen.registry import TRANSFORMS

_PER_BOX_KEYS = ('gt_bboxes', 'gt_bboxes_labels', 'gt_instance_ids', 'gt_visibility')


def _clip_and_drop_boxes(results: dict, min_size: float = 1.0) -> None:
    """Clip boxes to the image; boxes left narrower or lower than ``min_size`` pixels leave the
    frame (the instance is not visible there); visibility shrinks with the area cut off."""
    h, w = results['img_shape']
    for t, boxes in enumerate(results['gt_bboxes']):
        if len(boxes) == 0:
            continue
        clipped = boxes.copy()
        clipped[:, 0::2] = clipped[:, 0::2].clip(0, w)
        clipped[:, 1::2] = clipped[:, 1::2].clip(0, h)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        cw, ch = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
        keep = (cw >= min_size) & (ch >= min_size)
        ratio = np.where(area > 0, cw * ch / np.maximum(area, 1e-12), 0).astype(np.float32)
        results['gt_visibility'][t] = results['gt_visibility'][t] * ratio
        results['gt_bboxes'][t] = clipped
        for key in _PER_BOX_KEYS:
            results[key][t] = results[key][t][keep]


@TRANSFORMS.register_module()
class ClipResize(BaseTransform):
    """Resize every frame to ``scale`` (W, H), or within it keeping the aspect ratio.

    Adds ``scale_factor`` (w_scale, h_scale).
    """

    def __init__(self,
                 scale: Tuple[int, int],
                 keep_ratio: bool = False,
                 interpolation: str = 'bilinear'):
        if len(scale) != 2 or min(scale) < 1:
            raise ValueError(f'scale must be (width, height) of positive ints, got {scale}')
        self.scale = tuple(int(s) for s in scale)
        self.keep_ratio = keep_ratio
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        h, w = results['img_shape']
        if self.keep_ratio:
            ratio = min(self.scale[0] / w, self.scale[1] / h)
            new_w, new_h = int(w * ratio + 0.5), int(h * ratio + 0.5)
        else:
            new_w, new_h = self.scale
        w_scale, h_scale = new_w / w, new_h / h
        if results.get('frames') is not None:
            results['frames'] = np.stack([
                mmcv.imresize(f, (new_w, new_h), interpolation=self.interpolation)
                for f in results['frames']
            ])
        factor = np.array([w_scale, h_scale, w_scale, h_scale], dtype=np.float32)
        results['gt_bboxes'] = [b * factor for b in results['gt_bboxes']]
        results['img_shape'] = (new_h, new_w)
        results['scale_factor'] = (w_scale, h_scale)
        _clip_and_drop_boxes(results, min_size=0)
        return results


@TRANSFORMS.register_module()
class ClipCrop(BaseTransform):
    """Crop the same window of ``crop_size`` (W, H) from every frame.

    ``mode='random'`` picks the window uniformly (once per clip), ``'center'`` centres it.
    A crop larger than the frame is reduced to the frame. Boxes are shifted and clipped; a box
    cut to less than ``min_size`` pixels makes its instance invisible in that frame. Adds
    ``crop_box`` (x1, y1, x2, y2) in the input frame.
    """

    def __init__(self, crop_size: Tuple[int, int], mode: str = 'random', min_size: float = 1.0):
        if mode not in ('random', 'center'):
            raise ValueError(f"mode must be 'random' or 'center', got {mode!r}")
        if len(crop_size) != 2 or min(crop_size) < 1:
            raise ValueError(f'crop_size must be (width, height) of positive ints, '
                             f'got {crop_size}')
        self.crop_size = tuple(int(s) for s in crop_size)
        self.mode = mode
        self.min_size = min_size

    @cache_randomness
    def _offset(self, free_x: int, free_y: int) -> Tuple[int, int]:
        if self.mode == 'center':
            return free_x // 2, free_y // 2
        return np.random.randint(0, free_x + 1), np.random.randint(0, free_y + 1)

    def transform(self, results: dict) -> dict:
        h, w = results['img_shape']
        cw, ch = min(self.crop_size[0], w), min(self.crop_size[1], h)
        x0, y0 = self._offset(w - cw, h - ch)
        if results.get('frames') is not None:
            results['frames'] = np.ascontiguousarray(results['frames'][:, y0:y0 + ch, x0:x0 + cw])
        shift = np.array([x0, y0, x0, y0], dtype=np.float32)
        results['gt_bboxes'] = [b - shift for b in results['gt_bboxes']]
        results['img_shape'] = (ch, cw)
        results['crop_box'] = (x0, y0, x0 + cw, y0 + ch)
        _clip_and_drop_boxes(results, self.min_size)
        return results


@TRANSFORMS.register_module()
class ClipRandomFlip(BaseTransform):
    """Flip every frame of a clip horizontally with probability ``prob`` (one draw per clip).

    Adds ``flip`` (bool).
    """

    def __init__(self, prob: float = 0.5):
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.prob = prob

    @cache_randomness
    def _do_flip(self) -> bool:
        return bool(np.random.rand() < self.prob)

    def transform(self, results: dict) -> dict:
        flip = self._do_flip()
        results['flip'] = flip
        if not flip:
            return results
        w = results['img_shape'][1]
        if results.get('frames') is not None:
            results['frames'] = np.ascontiguousarray(results['frames'][:, :, ::-1])
        flipped = []
        for b in results['gt_bboxes']:
            b = b.copy()
            b[:, [0, 2]] = w - b[:, [2, 0]]
            flipped.append(b)
        results['gt_bboxes'] = flipped
        return results
