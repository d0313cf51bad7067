import numpy as np
import pytest
import torch
from scipy import linalg

from mmtrackgen.evaluation import FeatureStatistics, frechet_distance


def _random_rotation(dim, rng):
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))


def test_diagonal_covariances_match_the_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    a, b = rng.uniform(0.1, 3, size=6), rng.uniform(0.1, 3, size=6)
    expected = np.sum((mu1 - mu2)**2) + np.sum((np.sqrt(a) - np.sqrt(b))**2)
    assert np.isclose(frechet_distance(mu1, np.diag(a), mu2, np.diag(b)), expected, rtol=1e-10)


def test_commuting_covariances_match_the_closed_form():
    rng = np.random.default_rng(1)
    q = _random_rotation(8, rng)
    a, b = rng.uniform(0.1, 3, size=8), rng.uniform(0.1, 3, size=8)
    sigma1, sigma2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    mu = rng.normal(size=8)
    shift = rng.normal(size=8)
    expected = shift @ shift + np.sum((np.sqrt(a) - np.sqrt(b))**2)
    assert np.isclose(frechet_distance(mu, sigma1, mu + shift, sigma2), expected, rtol=1e-8)


def test_general_covariances_match_the_symmetric_form_and_are_symmetric():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    sigma1, sigma2 = x @ x.T + 0.1 * np.eye(5), y @ y.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    root1 = linalg.sqrtm(sigma1).real  # tr (S1 S2)^(1/2) = tr (S1^(1/2) S2 S1^(1/2))^(1/2)
    cross = np.sum(np.sqrt(np.linalg.eigvalsh(root1 @ sigma2 @ root1)))
    expected = np.sum((mu1 - mu2)**2) + np.trace(sigma1) + np.trace(sigma2) - 2 * cross
    forward = frechet_distance(mu1, sigma1, mu2, sigma2)
    assert np.isclose(forward, expected, rtol=1e-8)
    assert np.isclose(frechet_distance(mu2, sigma2, mu1, sigma1), forward, rtol=1e-8)


def test_singular_covariances_fall_back_to_a_finite_value():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(10, 64))  # 10 samples in 64 dims: rank 9
    sigma = np.cov(x, rowvar=False)
    mu = x.mean(0)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-6)
    shift = np.full(64, 0.5)
    assert frechet_distance(mu, sigma, mu + shift, sigma) == pytest.approx(16, rel=1e-6)
    other = np.cov(rng.normal(size=(10, 64)), rowvar=False)
    assert np.isfinite(frechet_distance(mu, sigma, mu, other))


def test_samples_from_one_gaussian_are_close_and_a_shift_adds_its_square():
    rng = np.random.default_rng(4)
    q = _random_rotation(4, rng)
    cov = q @ np.diag([0.5, 1, 2, 3]) @ q.T
    chol = np.linalg.cholesky(cov)
    first = FeatureStatistics().update(rng.normal(size=(40000, 4)) @ chol.T)
    second = FeatureStatistics().update(rng.normal(size=(40000, 4)) @ chol.T)
    assert first.frechet_distance(second) < 0.01
    shift = np.array([1.0, -2.0, 0.5, 0.0])
    shifted = FeatureStatistics().update(rng.normal(size=(40000, 4)) @ chol.T + shift)
    assert first.frechet_distance(shifted) == pytest.approx(shift @ shift, abs=0.05)


def test_frechet_distance_rejects_bad_inputs():
    eye = np.eye(3)
    with pytest.raises(ValueError, match='means'):
        frechet_distance(np.zeros(3), eye, np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match='covariances'):
        frechet_distance(np.zeros(3), eye, np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match='mu2 contains NaN'):
        frechet_distance(np.zeros(3), eye, np.full(3, np.nan), eye)
    with pytest.raises(ValueError, match='imaginary'):  # not positive semi-definite
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))


def test_statistics_match_numpy_and_merge_equals_one_pass():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(37, 6)) * [1, 2, 3, 4, 5, 6] + 3
    one_pass = FeatureStatistics().update(features)
    assert one_pass.count == 37 and one_pass.dim == 6
    assert np.allclose(one_pass.mean, features.mean(0))
    assert np.allclose(one_pass.covariance, np.cov(features, rowvar=False))

    batched = FeatureStatistics()
    for start in range(0, 37, 5):
        batched.update(torch.from_numpy(features[start:start + 5]))  # (B, D) tensors too
    shards = [FeatureStatistics().update(part) for part in np.array_split(features, [1, 20])]
    merged = FeatureStatistics().merge(FeatureStatistics())  # merging nothing is a no-op
    for shard in shards:
        merged.merge(shard)
    for other in (batched, merged):
        assert other.count == 37
        assert np.allclose(other.mean, one_pass.mean, rtol=1e-12)
        assert np.allclose(other.covariance, one_pass.covariance, rtol=1e-12)


def test_statistics_stay_exact_with_a_large_offset():
    rng = np.random.default_rng(6)
    features = rng.normal(size=(1000, 3)) + 1e8  # sum-of-squares formulas lose all digits here
    statistics = FeatureStatistics()
    for part in np.array_split(features, 7):
        statistics.update(part)
    assert np.allclose(statistics.covariance, np.cov(features - 1e8, rowvar=False), atol=1e-6)


def test_statistics_refuse_too_few_samples_and_mismatched_dims():
    statistics = FeatureStatistics().update(np.zeros((0, 4)))
    assert statistics.count == 0 and statistics.dim is None
    statistics.update(np.ones((1, 4)))
    with pytest.raises(ValueError, match='at least 2 samples, got 1'):
        statistics.covariance
    with pytest.raises(ValueError, match='at least 2 samples'):
        statistics.mean
    with pytest.raises(ValueError, match='feature dimension 5'):
        statistics.update(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r'\(B, D\)'):
        statistics.update(np.ones(4))
    with pytest.raises(ValueError, match='NaN'):
        statistics.update(np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match='FeatureStatistics'):
        statistics.merge(np.ones((2, 4)))
