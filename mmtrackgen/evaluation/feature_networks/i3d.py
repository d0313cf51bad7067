"""Inflated 3D ConvNet (Inception-v1 inflated to 3D; Carreira & Zisserman 2017) for FVD.

The Kinetics-400 RGB I3D: clips -> 400 logits (the usual FVD feature) and optionally the 1024-d
pooled features. Convolutions and max pools use TensorFlow's 'SAME' padding, as the original.
Parameter names follow the common PyTorch port (``Conv3d_1a_7x7.conv3d.weight``,
``Conv3d_1a_7x7.bn.running_mean``, ``Mixed_3b.b0.conv3d.weight``, ``logits.conv3d.bias``, ...),
so its converted Kinetics weights load.
"""
import math
from typing import Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .inception import frames_to_unit_range

__all__ = ['I3DFeatures']

Triple = Tuple[int, int, int]
Output = Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]


def _same_padding(sizes: Sequence[int], kernel: Triple, stride: Triple) -> Tuple[int, ...]:
    """``F.pad`` amounts (last dim first) for TF 'SAME': output = ceil(input / stride)."""
    pads = []
    for size, k, s in zip(sizes, kernel, stride):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))  # the extra pixel goes after, as in TF
    return tuple(p for before_after in reversed(pads) for p in before_after)


class Unit3D(nn.Module):
    """'SAME'-padded Conv3d -> BatchNorm3d (eps 1e-3) -> ReLU; the logits unit has a bias and
    neither batch norm nor activation."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel: Triple = (1, 1, 1),
                 stride: Triple = (1, 1, 1),
                 logits: bool = False):
        super().__init__()
        self.kernel, self.stride, self.is_logits = kernel, stride, logits
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, bias=logits)
        if not logits:
            self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, _same_padding(x.shape[2:], self.kernel, self.stride))
        x = self.conv3d(x)  # (B, C_out, ceil(T / s), ceil(H / s), ceil(W / s))
        if self.is_logits:
            return x
        return F.relu(self.bn(x))


def _max_pool_same(x: torch.Tensor, kernel: Triple, stride: Triple) -> torch.Tensor:
    """3D max pool with TF 'SAME' padding (the padding never wins the max)."""
    x = F.pad(x, _same_padding(x.shape[2:], kernel, stride), value=float('-inf'))
    return F.max_pool3d(x, kernel, stride)


class InceptionModule(nn.Module):
    """Inflated Inception block: 1x1 | 1x1-3x3 | 1x1-3x3 | maxpool-1x1, concatenated.

    ``channels`` = (b0, b1a, b1b, b2a, b2b, b3b) output channels; the output has
    b0 + b1b + b2b + b3b channels.
    """

    def __init__(self, in_channels: int, channels: Sequence[int]):
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3b = channels
        self.b0 = Unit3D(in_channels, c0)
        self.b1a = Unit3D(in_channels, c1a)
        self.b1b = Unit3D(c1a, c1b, kernel=(3, 3, 3))
        self.b2a = Unit3D(in_channels, c2a)
        self.b2b = Unit3D(c2a, c2b, kernel=(3, 3, 3))
        self.b3b = Unit3D(in_channels, c3b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b0 = self.b0(x)  # (B, c0, T, H, W)
        b1 = self.b1b(self.b1a(x))  # (B, c1b, T, H, W)
        b2 = self.b2b(self.b2a(x))  # (B, c2b, T, H, W)
        b3 = self.b3b(_max_pool_same(x, (3, 3, 3), (1, 1, 1)))  # (B, c3b, T, H, W)
        return torch.cat([b0, b1, b2, b3], 1)


class I3DFeatures(nn.Module):
    """Kinetics-400 I3D: (B, 3, T, H, W) clips -> (B, 400) logits [, (B, 1024) features].

    Clips need at least ``MIN_FRAMES`` = 8 frames (time is downsampled 8x). The final pool
    averages windows of 2 time steps (stride 1) over the whole 7x7 grid and the logits are
    averaged over the windows, as in the original; with T = 8 a single time step is left, which
    is pooled alone (the original needs T >= 9). FVD is usually computed on 16-frame clips.

    Args:
        num_classes: logits size (400 for the Kinetics-400 weights).
        input_size: side the frames are resized to. Keep the default 224 for FVD; smaller sizes
            (>= 32) only make tests fast and give numbers comparable only with themselves.
    """

    FEATURE_DIM = 1024
    MIN_FRAMES = 8
    MIN_INPUT_SIZE = 32

    def __init__(self, num_classes: int = 400, input_size: int = 224):
        super().__init__()
        if input_size < self.MIN_INPUT_SIZE:
            raise ValueError(f'input_size must be >= {self.MIN_INPUT_SIZE}, got {input_size}')
        self.num_classes, self.input_size = num_classes, input_size
        self.Conv3d_1a_7x7 = Unit3D(3, 64, kernel=(7, 7, 7), stride=(2, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, kernel=(3, 3, 3))
        self.Mixed_3b = InceptionModule(192, (64, 96, 128, 16, 32, 32))
        self.Mixed_3c = InceptionModule(256, (128, 128, 192, 32, 96, 64))
        self.Mixed_4b = InceptionModule(480, (192, 96, 208, 16, 48, 64))
        self.Mixed_4c = InceptionModule(512, (160, 112, 224, 24, 64, 64))
        self.Mixed_4d = InceptionModule(512, (128, 128, 256, 24, 64, 64))
        self.Mixed_4e = InceptionModule(512, (112, 144, 288, 32, 64, 64))
        self.Mixed_4f = InceptionModule(528, (256, 160, 320, 32, 128, 128))
        self.Mixed_5b = InceptionModule(832, (256, 160, 320, 32, 128, 128))
        self.Mixed_5c = InceptionModule(832, (384, 192, 384, 48, 128, 128))
        self.logits = Unit3D(1024, num_classes, logits=True)

    def preprocess(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) uint8 or [0, 1] float -> (B, 3, T, S, S) in [-1, 1] (bilinear)."""
        if clips.ndim != 5 or clips.shape[1] != 3:
            raise ValueError(f'clips must be (B, 3, T, H, W), got shape {tuple(clips.shape)}')
        b, _, t, h, w = clips.shape
        if t < self.MIN_FRAMES:
            raise ValueError(f'I3D needs clips of at least {self.MIN_FRAMES} frames, got {t}')
        x = frames_to_unit_range(clips).transpose(1, 2).reshape(b * t, 3, h, w)  # (B*T, 3, H, W)
        x = F.interpolate(
            x, size=(self.input_size, self.input_size), mode='bilinear',
            align_corners=False)  # (B*T, 3, S, S)
        x = x.reshape(b, t, 3, self.input_size, self.input_size).transpose(1, 2)
        return 2 * x - 1  # (B, 3, T, S, S)

    def forward(self, clips: torch.Tensor, return_features: bool = False) -> Output:
        """Clips -> (B, num_classes) logits, plus the (B, 1024) pooled features if asked."""
        x = self.preprocess(clips)  # (B, 3, T, 224, 224); sizes below are for 224, T = 16
        x = self.Conv3d_1a_7x7(x)  # (B, 64, 8, 112, 112)
        x = _max_pool_same(x, (1, 3, 3), (1, 2, 2))  # (B, 64, 8, 56, 56)
        x = self.Conv3d_2b_1x1(x)  # (B, 64, 8, 56, 56)
        x = self.Conv3d_2c_3x3(x)  # (B, 192, 8, 56, 56)
        x = _max_pool_same(x, (1, 3, 3), (1, 2, 2))  # (B, 192, 8, 28, 28)
        x = self.Mixed_3b(x)  # (B, 256, 8, 28, 28)
        x = self.Mixed_3c(x)  # (B, 480, 8, 28, 28)
        x = _max_pool_same(x, (3, 3, 3), (2, 2, 2))  # (B, 480, 4, 14, 14)
        x = self.Mixed_4b(x)  # (B, 512, 4, 14, 14)
        x = self.Mixed_4c(x)  # (B, 512, 4, 14, 14)
        x = self.Mixed_4d(x)  # (B, 512, 4, 14, 14)
        x = self.Mixed_4e(x)  # (B, 528, 4, 14, 14)
        x = self.Mixed_4f(x)  # (B, 832, 4, 14, 14)
        x = _max_pool_same(x, (2, 2, 2), (2, 2, 2))  # (B, 832, 2, 7, 7)
        x = self.Mixed_5b(x)  # (B, 832, 2, 7, 7)
        x = self.Mixed_5c(x)  # (B, 1024, 2, 7, 7)
        window = (min(2, x.shape[2]), ) + tuple(x.shape[3:])
        x = F.avg_pool3d(x, window, stride=1)  # (B, 1024, T', 1, 1), T' = max(ceil(T / 8) - 1, 1)
        logits = self.logits(x).mean(dim=(2, 3, 4))  # (B, num_classes)
        if not return_features:
            return logits
        return logits, x.mean(dim=(2, 3, 4))  # (B, num_classes), (B, 1024)
