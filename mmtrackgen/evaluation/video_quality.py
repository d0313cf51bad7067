"""FID over frames and FVD over clips, streamed through :class:`FeatureStatistics`.

Use the networks of :func:`load_feature_network` with the standard weights for numbers that are
comparable with published ones; the sample counts (FID is biased upwards for small sets, FVD
even more) are returned alongside.
"""
from typing import Dict, Iterable, List, Optional, Union

import numpy as np
import torch
from torch import nn

from .frechet import FeatureStatistics, frechet_distance

__all__ = ['compute_fid', 'compute_fvd', 'extract_statistics']

Number = Union[float, int]


def _device_of(network: nn.Module) -> torch.device:
    parameter = next(network.parameters(), None)
    return parameter.device if parameter is not None else torch.device('cpu')


@torch.no_grad()
def extract_statistics(samples: Iterable[np.ndarray],
                       network: nn.Module,
                       ndim: int,
                       batch_size: int,
                       progress: bool = False) -> FeatureStatistics:
    """Feature statistics of uint8 samples: (H, W, 3) frames (ndim 3) or (F, H, W, 3) clips (4).

    Samples are batched ``batch_size`` at a time (a sample of another shape starts a new batch),
    moved channels-first ((B, 3, H, W) / (B, 3, F, H, W)) onto the network's device and passed
    through ``network``, which must return (B, D) features.
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    kind = 'frame (H, W, 3)' if ndim == 3 else 'clip (F, H, W, 3)'
    was_training = network.training
    network.eval()
    device = _device_of(network)
    statistics = FeatureStatistics()
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(samples) if hasattr(samples, '__len__') else 0)
    batch: List[np.ndarray] = []

    def flush() -> None:
        stacked = torch.from_numpy(np.stack(batch)).to(device)  # (B, [F,] H, W, 3)
        stacked = stacked.movedim(-1, 1)  # (B, 3, [F,] H, W)
        features = network(stacked)  # (B, D)
        if not isinstance(features, torch.Tensor) or features.ndim != 2:
            raise ValueError('the network must return (B, D) features, got '
                             f'{getattr(features, "shape", type(features))}')
        statistics.update(features)
        if bar is not None:
            bar.update(len(batch))
        batch.clear()

    try:
        for index, sample in enumerate(samples):
            sample = np.asarray(sample)
            if sample.dtype != np.uint8 or sample.ndim != ndim or sample.shape[-1] != 3:
                raise ValueError(f'sample {index} must be a uint8 {kind} array, got '
                                 f'{sample.dtype} {sample.shape}')
            if batch and sample.shape != batch[0].shape:
                flush()
            batch.append(sample)
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
    finally:
        network.train(was_training)
        if bar is not None:
            bar.file.write('\n')
    return statistics


def _compare(real: FeatureStatistics, fake: FeatureStatistics, metric: str) -> Dict[str, Number]:
    for name, statistics in (('real', real), ('fake', fake)):
        if statistics.count < 2:
            raise ValueError(f'{metric} needs at least 2 {name} samples, got {statistics.count}')
    value = frechet_distance(real.mean, real.covariance, fake.mean, fake.covariance)
    return {metric: value, 'num_real': real.count, 'num_fake': fake.count}


def compute_fid(real_frames: Iterable[np.ndarray],
                fake_frames: Iterable[np.ndarray],
                network: nn.Module,
                batch_size: int = 50,
                progress: bool = False,
                real_statistics: Optional[FeatureStatistics] = None) -> Dict[str, Number]:
    """Frechet Inception Distance between two sets of (H, W, 3) uint8 frames.

    Args:
        real_frames, fake_frames: iterables of frames (sizes may differ; the network resizes).
        network: e.g. ``load_feature_network('inception', path)``; frames -> (B, D) features.
        batch_size: frames per forward pass.
        progress: show an mmengine progress bar.
        real_statistics: precomputed statistics of the real set; then ``real_frames`` is unused
            (pass None).
    Returns:
        ``{'fid': value, 'num_real': frames, 'num_fake': frames}``.
    """
    if real_statistics is None:
        real_statistics = extract_statistics(real_frames, network, 3, batch_size, progress)
    fake_statistics = extract_statistics(fake_frames, network, 3, batch_size, progress)
    return _compare(real_statistics, fake_statistics, 'fid')


def compute_fvd(real_clips: Iterable[np.ndarray],
                fake_clips: Iterable[np.ndarray],
                network: nn.Module,
                batch_size: int = 8,
                progress: bool = False,
                real_statistics: Optional[FeatureStatistics] = None) -> Dict[str, Number]:
    """Frechet Video Distance between two sets of (F, H, W, 3) uint8 clips.

    Args:
        real_clips, fake_clips: iterables of clips (I3D needs F >= 8; 16 is usual).
        network: e.g. ``load_feature_network('i3d', path)``; clips -> (B, 400) logits.
        batch_size: clips per forward pass.
        progress: show an mmengine progress bar.
        real_statistics: precomputed statistics of the real set; then ``real_clips`` is unused
            (pass None).
    Returns:
        ``{'fvd': value, 'num_real': clips, 'num_fake': clips}``.
    """
    if real_statistics is None:
        real_statistics = extract_statistics(real_clips, network, 4, batch_size, progress)
    fake_statistics = extract_statistics(fake_clips, network, 4, batch_size, progress)
    return _compare(real_statistics, fake_statistics, 'fvd')
