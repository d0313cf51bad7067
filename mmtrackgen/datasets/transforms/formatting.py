"""Packing a processed clip into model inputs and a :class:`TrackletClipSample`."""
import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmtrackgen.registry import TRANSFORMS
from mmtrackgen.structures import TrackletClipSample

_DATA_FIELDS = ('gt_boxes', 'gt_visible', 'gt_visibility', 'gt_labels', 'gt_instance_ids',
                'gt_slot_mask')


@TRANSFORMS.register_module()
class PackClipInputs(BaseTransform):
    """Pack ``frames`` as ``inputs`` (F, 3, H, W) uint8 (``None`` for tracklets-only clips) and
    the slot arrays of :class:`AssignInstanceSlots` into a :class:`TrackletClipSample`, with
    ``meta_keys`` copied to its metainfo when present."""

    def __init__(self,
                 meta_keys=('video_id', 'video_name', 'clip_start', 'frame_ids', 'img_paths',
                            'img_shape', 'ori_shape', 'scale_factor', 'flip', 'crop_box', 'caption',
                            'num_dropped_instances')):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        missing = [k for k in _DATA_FIELDS if k not in results]
        if missing:
            raise KeyError(f'PackClipInputs needs {missing}: put AssignInstanceSlots before it '
                           'in the pipeline')
        sample = TrackletClipSample(
            metainfo={k: results[k]
                      for k in self.meta_keys if k in results})
        for key in _DATA_FIELDS:
            setattr(sample, key, torch.from_numpy(np.ascontiguousarray(results[key])))
        frames = results.get('frames')
        inputs = None
        if frames is not None:
            inputs = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
            inputs = inputs.contiguous()  # (F, 3, H, W) uint8
        return dict(inputs=inputs, data_samples=sample)


@TRANSFORMS.register_module()
class PackFrameInputs(BaseTransform):
    """Pack one loaded image (``img``, (H, W, 3) uint8 as mmcv loads it) as ``inputs``
    (3, H, W) uint8, for models that learn from single frames (the frame autoencoder)."""

    def transform(self, results: dict) -> dict:
        img = np.ascontiguousarray(results['img'])  # (H, W, 3)
        return dict(inputs=torch.from_numpy(img).permute(2, 0, 1).contiguous(), data_samples=None)
