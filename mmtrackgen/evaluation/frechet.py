"""Frechet distance between Gaussians fitted to features (the core of FID and FVD).

``FD = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``. :class:`FeatureStatistics` streams the
mean and covariance of a feature set in float64 without keeping the features.
"""
import warnings
from typing import Optional, Union

import numpy as np
import torch
from scipy import linalg

__all__ = ['frechet_distance', 'FeatureStatistics']

ArrayLike = Union[np.ndarray, torch.Tensor]


def _sqrtm_product(sigma1: np.ndarray, sigma2: np.ndarray) -> Optional[np.ndarray]:
    """``sqrtm(sigma1 @ sigma2)`` (may be complex), or None when it is not finite or inaccurate."""
    product = sigma1 @ sigma2
    with warnings.catch_warnings():  # singular products: we check the result ourselves
        warnings.simplefilter('ignore', linalg.LinAlgWarning)
        warnings.simplefilter('ignore', RuntimeWarning)
        root = linalg.sqrtm(product)
    if not np.isfinite(root).all():
        return None
    scale = max(np.linalg.norm(product), np.finfo(np.float64).tiny)
    if np.linalg.norm(root @ root - product) / scale > 1e-4:
        return None
    return root


def _imaginary_part(root: np.ndarray) -> float:
    return float(np.abs(np.diagonal(root).imag).max()) if np.iscomplexobj(root) else 0.0


def frechet_distance(mu1: ArrayLike,
                     sigma1: ArrayLike,
                     mu2: ArrayLike,
                     sigma2: ArrayLike,
                     eps: float = 1e-6,
                     imaginary_tol: float = 1e-3) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Args:
        mu1, mu2: (D,) means.
        sigma1, sigma2: (D, D) covariances.
        eps: added to both diagonals when ``sigma1 @ sigma2`` is too singular for ``sqrtm``
            (e.g. fewer samples than feature dimensions).
        imaginary_tol: largest imaginary part on the diagonal of ``sqrtm(sigma1 @ sigma2)`` that
            is discarded as rounding (the exact root is real: the product is similar to a
            positive semi-definite matrix).
    Returns:
        The distance (>= 0; rounding below zero is clipped).
    """
    mu1, mu2 = (np.atleast_1d(np.asarray(m, dtype=np.float64)) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(s, dtype=np.float64)) for s in (sigma1, sigma2))
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f'means must be two vectors of one length, got {mu1.shape} and '
                         f'{mu2.shape}')
    dim = mu1.shape[0]
    if sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(f'covariances must be ({dim}, {dim}) to match the means, got '
                         f'{sigma1.shape} and {sigma2.shape}')
    for name, value in (('mu1', mu1), ('sigma1', sigma1), ('mu2', mu2), ('sigma2', sigma2)):
        if not np.isfinite(value).all():
            raise ValueError(f'{name} contains NaN or inf')

    covmean = _sqrtm_product(sigma1, sigma2)
    if covmean is None or _imaginary_part(covmean) > imaginary_tol:
        offset = eps * np.eye(dim)
        covmean = _sqrtm_product(sigma1 + offset, sigma2 + offset)
        if covmean is None:
            raise ValueError(f'sqrtm(sigma1 @ sigma2) failed even with eps={eps} added to the '
                             'diagonals; try a larger eps or more samples')
    imaginary = _imaginary_part(covmean)
    if imaginary > imaginary_tol:
        raise ValueError(f'sqrtm(sigma1 @ sigma2) has an imaginary component of {imaginary:.3g} '
                         '(> imaginary_tol): are the covariances positive semi-definite?')
    diff = mu1 - mu2
    distance = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real)
    return max(float(distance), 0.0)


class FeatureStatistics:
    """Running mean and covariance of (B, D) feature batches, in float64.

    Keeps the count, the mean and the sum of centred outer products (Chan et al.'s pairwise
    update), which is as exact as two passes and merges across shards.
    """

    def __init__(self):
        self.count = 0
        self._mean: Optional[np.ndarray] = None  # (D,)
        self._scatter: Optional[np.ndarray] = None  # (D, D) sum of centred outer products

    @property
    def dim(self) -> Optional[int]:
        """The feature dimension, None before the first update."""
        return None if self._mean is None else self._mean.shape[0]

    def update(self, features: ArrayLike) -> 'FeatureStatistics':
        """Add a (B, D) batch of features."""
        if isinstance(features, torch.Tensor):
            features = features.detach().cpu().double().numpy()
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2:
            raise ValueError(f'features must be (B, D), got shape {features.shape}')
        if not np.isfinite(features).all():
            raise ValueError('features contain NaN or inf')
        if not len(features):
            return self
        batch_mean = features.mean(axis=0)  # (D,)
        centred = features - batch_mean  # (B, D)
        return self._combine(len(features), batch_mean, centred.T @ centred)

    def merge(self, other: 'FeatureStatistics') -> 'FeatureStatistics':
        """Add the samples of ``other`` (e.g. another shard) to these statistics, in place."""
        if not isinstance(other, FeatureStatistics):
            raise ValueError(f'can only merge FeatureStatistics, got {type(other).__name__}')
        if other.count == 0:
            return self
        return self._combine(other.count, other._mean, other._scatter)

    def _combine(self, count: int, mean: np.ndarray, scatter: np.ndarray) -> 'FeatureStatistics':
        if self.count == 0:
            self.count, self._mean, self._scatter = count, mean.copy(), scatter.copy()
            return self
        if mean.shape != self._mean.shape:
            raise ValueError(f'feature dimension {mean.shape[0]} does not match the '
                             f'{self._mean.shape[0]} seen so far')
        total = self.count + count
        delta = mean - self._mean  # (D,)
        self._scatter = self._scatter + scatter + np.outer(delta, delta) * (
            self.count * count / total)
        self._mean = self._mean + delta * (count / total)
        self.count = total
        return self

    def _require(self, minimum: int, what: str) -> None:
        if self.count < minimum:
            raise ValueError(f'the {what} needs at least {minimum} samples, got {self.count}')

    @property
    def mean(self) -> np.ndarray:
        """(D,) float64 sample mean."""
        self._require(2, 'mean')
        return self._mean.copy()

    @property
    def covariance(self) -> np.ndarray:
        """(D, D) float64 unbiased sample covariance."""
        self._require(2, 'covariance')
        return self._scatter / (self.count - 1)

    def frechet_distance(self, other: 'FeatureStatistics', eps: float = 1e-6) -> float:
        """Frechet distance between the Gaussians fitted to ``self`` and ``other``."""
        return frechet_distance(self.mean, self.covariance, other.mean, other.covariance, eps)
