"""Batching and normalising clips: the model sees ready tensors, never lists of samples."""
from typing import Sequence, Union

import torch
from mmengine.model import BaseDataPreprocessor

from mmtrackgen.registry import MODELS


@MODELS.register_module()
class ClipDataPreprocessor(BaseDataPreprocessor):
    """Stack a batch of clips and normalise their frames.

    Returns ``dict(inputs=dict(...), data_samples=[...])`` where ``inputs`` holds
    (B clips, F frames, N slots):

    - ``frames`` (B, F, 3, H, W) float, ``(pixel - mean) / std`` (default: [-1, 1]); absent
      for tracklets-only batches (generation from layouts);
    - ``boxes`` (B, F, N, 4), ``visible`` (B, F, N), ``labels`` (B, N), ``slot_mask`` (B, N),
      ``instance_ids`` (B, N), from the :class:`TrackletClipSample` of each clip;
    - ``captions``: list of B strings.

    Clips of one batch must share F, N and the frame size; a batch that does not is refused
    with the videos named (resize them in the pipeline).
    """

    def __init__(self,
                 mean: Union[float, Sequence[float]] = 127.5,
                 std: Union[float, Sequence[float]] = 127.5):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
        if mean.shape[0] not in (1, 3) or std.shape[0] not in (1, 3):
            raise ValueError('mean and std must be one value or one per RGB channel')
        if (std <= 0).any():
            raise ValueError(f'std must be positive, got {std.flatten().tolist()}')
        self.register_buffer('mean', mean, persistent=False)  # (1 or 3, 1, 1)
        self.register_buffer('std', std, persistent=False)

    @staticmethod
    def _stack(tensors, what, samples):
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) > 1:
            names = [s.metainfo.get('video_name') for s in samples]
            raise ValueError(f'cannot batch clips whose {what} differ in shape {sorted(shapes)}'
                             f' (videos {names}); resize/crop them to one size in the pipeline')
        return torch.stack(tensors)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        samples = data['data_samples']
        inputs = {}
        frames = data.get('inputs')
        if frames is not None and not all(f is None for f in frames):
            if any(f is None for f in frames):
                raise ValueError('a batch mixes clips with and without frames')
            frames = self._stack(list(frames), 'frames', samples)  # (B, F, 3, H, W) uint8
            inputs['frames'] = (frames.float() - self.mean) / self.std  # (B, F, 3, H, W)
        inputs['boxes'] = self._stack([s.gt_boxes for s in samples], 'boxes', samples)
        inputs['visible'] = self._stack([s.gt_visible for s in samples], 'visible', samples)
        inputs['labels'] = self._stack([s.gt_labels for s in samples], 'labels', samples)
        inputs['slot_mask'] = self._stack([s.gt_slot_mask for s in samples], 'slots', samples)
        inputs['instance_ids'] = torch.stack([s.gt_instance_ids for s in samples])  # (B, N)
        inputs['captions'] = [s.metainfo.get('caption', '') for s in samples]
        return dict(inputs=inputs, data_samples=samples)

    def denormalize(self, frames: torch.Tensor) -> torch.Tensor:
        """(…, 3, H, W) normalised floats -> uint8 pixels; the inverse of ``forward``."""
        return (frames * self.std + self.mean).round().clamp(0, 255).to(torch.uint8)
