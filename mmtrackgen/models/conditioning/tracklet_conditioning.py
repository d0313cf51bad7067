"""The tracklet conditioning that flows from the TrackletEncoder into the generator."""
from dataclasses import dataclass

import torch


@dataclass
class TrackletConditioning:
    """Everything the generator's grounding and Instance Enhancer layers read.

    Made once per forward pass by :class:`TrackletEncoder` (B clips, F frames, N slots).

    Attributes:
        tokens: (B, F, N, D) one token per instance and frame, for gated grounding.
        track_features: (B, N, F, Dt) the tracklet branch (each instance's boxes attended over
            its frames), fused with RoI features in the Instance Enhancer.
        boxes: (B, F, N, 4) xyxy normalised to [0, 1].
        visible: (B, F, N) bool; invisible entries never reach the visual tokens.
        frame_size: (H, W) of the generator's input frames, set by the generator so layers that
            see flattened tokens can place them (:func:`token_grid_shape`); None until then.
        feature_map: (B*F, C, H, W), the map entering the spatial transformer being run, set by
            the generator (only while that transformer runs) for Instance Enhancers placed
            inside its blocks, which pool their RoIs from it; None elsewhere.
    """
    tokens: torch.Tensor
    track_features: torch.Tensor
    boxes: torch.Tensor
    visible: torch.Tensor
    frame_size: tuple[int, int] | None = None
    feature_map: torch.Tensor | None = None

    @property
    def num_frames(self) -> int:
        return self.tokens.shape[1]

    @property
    def num_slots(self) -> int:
        return self.tokens.shape[2]

    def frame_major(self, tensor: torch.Tensor) -> torch.Tensor:
        """(B, F, ...) -> (B * F, ...): the frame-batch layout of the UNet's spatial layers."""
        return tensor.flatten(0, 1)

    @classmethod
    def concat(cls, parts) -> 'TrackletConditioning':
        """Join conditionings along the batch (e.g. conditional and unconditional passes)."""
        parts = list(parts)
        joined = (
            torch.cat([getattr(p, name) for p in parts])
            for name in ('tokens', 'track_features', 'boxes', 'visible'))
        return cls(*joined, frame_size=parts[0].frame_size)
