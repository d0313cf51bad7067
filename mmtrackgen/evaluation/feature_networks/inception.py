"""Inception-v3 as used for FID: 2048-d pool features after ``Mixed_7c``.

This is the variant of the TensorFlow FID graph (``pt_inception-2015-12-05``, as distributed by
pytorch-fid): the average pools inside the mixed blocks ignore padding, and the pool branch of
``Mixed_7c`` is a max pool. Module names follow that weights file, so its state dict loads
(``fc.*``, the 1008-way classifier, is not part of this network and is ignored when loading).
"""
from typing import Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ['InceptionV3Features', 'frames_to_unit_range']

Size = Union[int, Tuple[int, int]]


def frames_to_unit_range(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [0, 1]; float input must already be in [0, 1]."""
    if frames.dtype == torch.uint8:
        return frames.float() / 255
    if not frames.is_floating_point():
        raise ValueError(f'frames must be uint8 or float in [0, 1], got {frames.dtype}')
    if frames.numel() and (frames.min() < -1e-3 or frames.max() > 1 + 1e-3):
        raise ValueError(f'float frames must be in [0, 1], got values in '
                         f'[{frames.min().item():.3g}, {frames.max().item():.3g}]')
    return frames.float()


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: Size,
                 stride: Size = 1,
                 padding: Size = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool that, like TensorFlow's, averages only the real pixels."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | pool-1x1 -> 224 + pool_features channels."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)  # (B, 64, H, W)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))  # (B, 64, H, W)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # 96
        branch_pool = self.branch_pool(_avg_pool_3x3(x))  # (B, pool_features, H, W)
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class InceptionB(nn.Module):
    """35x35 -> 17x17 reduction: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2 -> 480 + in channels."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3(x)  # (B, 384, H', W')
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # 96
        branch_pool = F.max_pool2d(x, 3, stride=2)  # (B, C_in, H', W')
        return torch.cat([branch3x3, branch3x3dbl, branch_pool], 1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions -> 768 channels."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)  # (B, 192, H, W)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))  # (B, 192, H, W)
        branch7x7dbl = self.branch7x7dbl_1(x)  # (B, c7, H, W)
        branch7x7dbl = self.branch7x7dbl_3(self.branch7x7dbl_2(branch7x7dbl))
        branch7x7dbl = self.branch7x7dbl_5(self.branch7x7dbl_4(branch7x7dbl))  # (B, 192, H, W)
        branch_pool = self.branch_pool(_avg_pool_3x3(x))  # (B, 192, H, W)
        return torch.cat([branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)


class InceptionD(nn.Module):
    """17x17 -> 8x8 reduction: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2 -> 512 + in channels."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))  # (B, 320, H', W')
        branch7x7x3 = self.branch7x7x3_2(self.branch7x7x3_1(x))  # (B, 192, H, W)
        branch7x7x3 = self.branch7x7x3_4(self.branch7x7x3_3(branch7x7x3))  # (B, 192, H', W')
        branch_pool = F.max_pool2d(x, 3, stride=2)  # (B, C_in, H', W')
        return torch.cat([branch3x3, branch7x7x3, branch_pool], 1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3/3x1 outputs -> 2048 channels.

    ``pool='avg'`` for ``Mixed_7b`` and ``'max'`` for ``Mixed_7c`` (as in the FID graph).
    """

    def __init__(self, in_channels: int, pool: str):
        super().__init__()
        if pool not in ('avg', 'max'):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)  # (B, 320, H, W)
        branch3x3 = self.branch3x3_1(x)  # (B, 384, H, W)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))  # (B, 384, H, W)
        branch3x3dbl = torch.cat(
            [self.branch3x3dbl_3a(branch3x3dbl),
             self.branch3x3dbl_3b(branch3x3dbl)], 1)  # (B, 768, H, W)
        if self.pool == 'avg':
            pooled = _avg_pool_3x3(x)
        else:
            pooled = F.max_pool2d(x, 3, stride=1, padding=1)
        branch_pool = self.branch_pool(pooled)  # (B, 192, H, W)
        return torch.cat([branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)


class InceptionV3Features(nn.Module):
    """FID Inception-v3 up to the global average pool: frames -> (B, 2048) features.

    Args:
        input_size: side the frames are resized to. Keep the default 299 for FID; smaller sizes
            (>= 75) only make tests fast and give numbers comparable only with themselves.
    """

    FEATURE_DIM = 2048
    MIN_INPUT_SIZE = 75

    def __init__(self, input_size: int = 299):
        super().__init__()
        if input_size < self.MIN_INPUT_SIZE:
            raise ValueError(f'input_size must be >= {self.MIN_INPUT_SIZE}, got {input_size}')
        self.input_size = input_size
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool='avg')
        self.Mixed_7c = InceptionE(2048, pool='max')

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 or [0, 1] float -> (B, 3, S, S) float in [-1, 1] (bilinear)."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f'frames must be (B, 3, H, W), got shape {tuple(frames.shape)}')
        x = frames_to_unit_range(frames)
        x = F.interpolate(
            x, size=(self.input_size, self.input_size), mode='bilinear',
            align_corners=False)  # (B, 3, S, S)
        return 2 * x - 1

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 or [0, 1] float frames -> (B, 2048) features."""
        x = self.preprocess(frames)  # (B, 3, 299, 299); sizes below are for 299
        x = self.Conv2d_1a_3x3(x)  # (B, 32, 149, 149)
        x = self.Conv2d_2a_3x3(x)  # (B, 32, 147, 147)
        x = self.Conv2d_2b_3x3(x)  # (B, 64, 147, 147)
        x = F.max_pool2d(x, 3, stride=2)  # (B, 64, 73, 73)
        x = self.Conv2d_3b_1x1(x)  # (B, 80, 73, 73)
        x = self.Conv2d_4a_3x3(x)  # (B, 192, 71, 71)
        x = F.max_pool2d(x, 3, stride=2)  # (B, 192, 35, 35)
        x = self.Mixed_5b(x)  # (B, 256, 35, 35)
        x = self.Mixed_5c(x)  # (B, 288, 35, 35)
        x = self.Mixed_5d(x)  # (B, 288, 35, 35)
        x = self.Mixed_6a(x)  # (B, 768, 17, 17)
        x = self.Mixed_6b(x)  # (B, 768, 17, 17)
        x = self.Mixed_6c(x)  # (B, 768, 17, 17)
        x = self.Mixed_6d(x)  # (B, 768, 17, 17)
        x = self.Mixed_6e(x)  # (B, 768, 17, 17)
        x = self.Mixed_7a(x)  # (B, 1280, 8, 8)
        x = self.Mixed_7b(x)  # (B, 2048, 8, 8)
        x = self.Mixed_7c(x)  # (B, 2048, 8, 8)
        return x.mean(dim=(2, 3))  # (B, 2048)
