"""FD-infinity: each point equals fid_from_stats on the same subset, the subset sizes and draws, the fitted line,
input errors."""
import numpy as np
import pytest

from genmetrics.errors import MetricError
from genmetrics.metrics.fd_infinity import FDInfinity, fd_infinity, subset_sizes
from genmetrics.metrics.fid import fid_from_stats
from genmetrics.stats import mean_cov


def _features(n: int, d: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(99).standard_normal((d, d)) * np.linspace(1.0, 0.1, d)
    return np.maximum(rng.standard_normal((n, d)) @ (mix * scale) + shift, 0.0)


def _subsets(n: int, sizes: np.ndarray, seed: int) -> list[np.ndarray]:
    """The documented draws: one default_rng(seed), a fresh permutation per size, its first n_i entries."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(n)[:size] for size in sizes]


@pytest.mark.parametrize("n_gen, d, dtype", [(700, 24, np.float64), (450, 40, np.float32)])
def test_points_equal_fid_from_stats_on_the_same_subsets(n_gen, d, dtype):
    mu, sigma = mean_cov(_features(900, d, seed=1))
    gen = _features(n_gen, d, seed=2, scale=1.1, shift=0.2).astype(dtype)
    out = fd_infinity(gen, mu, sigma, seed=5)
    assert isinstance(out, FDInfinity)
    assert np.array_equal(out.sizes, subset_sizes(n_gen))
    # Subsets below and above N / 2 (the latter through their complement), up to the whole set.
    assert out.sizes[0] < n_gen / 2 < out.sizes[-2] and out.sizes[-1] == n_gen
    expected = np.array([fid_from_stats(*mean_cov(gen[idx]), mu, sigma)
                         for idx in _subsets(n_gen, out.sizes, seed=5)])
    np.testing.assert_allclose(out.fds, expected, rtol=1e-9, atol=0)
    assert expected.min() > 1.0
    # The line is the ordinary least-squares fit of FD on 1 / n.
    slope, value = np.polyfit(1.0 / out.sizes, expected, 1)
    assert out.value == pytest.approx(value, rel=1e-9)
    assert out.slope == pytest.approx(slope, rel=1e-9)
    assert out.slope > 0 and out.value < out.fds.min()  # FD_N is biased upward, most at small N


def test_rank_deficient_reference_matches_fid_from_stats():
    """Reference covariance of rank 30 < d = 48: its null directions are dropped, as fid_from_stats' pivoted
    Cholesky does; Tr sqrt at a singular matrix is only sqrt(eps)-conditioned (see test_fid), hence 1e-7."""
    d = 48
    mu, sigma = mean_cov(_features(31, d, seed=3))
    gen = _features(500, d, seed=4, shift=0.1)
    out = fd_infinity(gen, mu, sigma, seed=0, num_points=5)
    expected = [fid_from_stats(*mean_cov(gen[idx]), mu, sigma) for idx in _subsets(500, out.sizes, seed=0)]
    np.testing.assert_allclose(out.fds, expected, rtol=1e-7)


def test_subset_sizes_follow_dgm_eval():
    assert subset_sizes(600).tolist() == np.linspace(60, 600, 15).astype(np.int32).tolist()
    assert subset_sizes(600)[:3].tolist() == [60, 98, 137]
    assert subset_sizes(50_000)[[0, 1, -1]].tolist() == [5000, 8214, 50_000]
    assert subset_sizes(200_000)[0] == 5000  # min(5000, N // 10)
    assert subset_sizes(12)[0] == 2  # max(N // 10, 2)
    assert subset_sizes(1000, 4).tolist() == [100, 400, 700, 1000]


def test_seeded_and_deterministic():
    mu, sigma = mean_cov(_features(500, 16, seed=6))
    gen = _features(400, 16, seed=7, shift=0.1)
    a, b = fd_infinity(gen, mu, sigma, seed=3), fd_infinity(gen, mu, sigma, seed=3)
    assert a.value == b.value and np.array_equal(a.fds, b.fds)
    other = fd_infinity(gen, mu, sigma, seed=4)
    assert other.value != a.value
    assert other.fds[-1] == pytest.approx(a.fds[-1], rel=1e-12)  # the last subset is the whole set either way


def test_few_samples_still_fit_a_line():
    """N = 3: sizes 2 and 3 only (repeated), the least N that has two distinct sizes."""
    mu, sigma = np.zeros(2), np.eye(2)
    gen = np.array([[0.0, 1.0], [2.0, 0.5], [1.0, 3.0]])
    out = fd_infinity(gen, mu, sigma, seed=0)
    assert set(out.sizes.tolist()) == {2, 3}
    expected = [fid_from_stats(*mean_cov(gen[idx]), mu, sigma) for idx in _subsets(3, out.sizes, seed=0)]
    np.testing.assert_allclose(out.fds, expected, rtol=1e-12)


def test_errors_name_the_bad_input():
    mu, sigma = np.zeros(3), np.eye(3)
    with pytest.raises(MetricError, match="feats_gen has 2 sample.*needs at least 3"):
        fd_infinity(np.zeros((2, 3)), mu, sigma)
    with pytest.raises(MetricError, match="num_points must be an integer >= 2"):
        fd_infinity(np.zeros((10, 3)), mu, sigma, num_points=1)
    with pytest.raises(MetricError, match="feats_gen has d=4, mu_ref/sigma_ref have d=3"):
        fd_infinity(np.zeros((10, 4)), mu, sigma)
    with pytest.raises(MetricError, match=r"sigma_ref must be a \(3, 3\)"):
        fd_infinity(np.zeros((10, 3)), mu, np.eye(2))
    asym = np.eye(3)
    asym[0, 2] = 0.5
    with pytest.raises(MetricError, match="sigma_ref is not symmetric"):
        fd_infinity(np.zeros((10, 3)), mu, asym)
    with pytest.raises(MetricError, match="feats_gen contains 10 NaN"):
        fd_infinity(np.array([[0.0, 1.0, np.nan]] * 10), mu, sigma)
