"""Bootstrap replicates equal the metrics recomputed on explicitly resampled features."""
from __future__ import annotations

import numpy as np
import pytest

from genmetrics.errors import MetricError
from genmetrics.metrics import bootstrap as bs
from genmetrics.metrics.cmmd import cmmd
from genmetrics.metrics.fid import fid_from_stats
from genmetrics.metrics.inception_score import inception_score
from genmetrics.metrics.kid import polynomial_kernel
from genmetrics.metrics.precision_recall import manifold_incidence, manifold_metrics
from genmetrics.stats import mean_cov


def _sets(m: int, n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, d)) + 0.3, 1.2 * rng.standard_normal((n, d))


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray, kernel) -> float:
    """Textbook U-statistic on explicit (possibly duplicated) rows."""
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    m, n = len(x), len(y)
    return (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean()


@pytest.mark.parametrize("m,n,d", [(300, 200, 40), (30, 200, 40), (60, 20, 64)])  # d x d, Gram, rank-deficient ref
def test_fid_replicates_equal_fid_of_resampled_features(m, n, d):
    gen, ref = _sets(m, n, d)
    indices = bs.resample_indices(m, 6, np.random.default_rng(1))
    mu, sigma = mean_cov(ref)
    fast = bs.fid_replicates(gen, mu, sigma, bs.counts_of(indices, m))
    direct = [fid_from_stats(*mean_cov(gen[rows]), mu, sigma) for rows in indices]
    np.testing.assert_allclose(fast, direct, rtol=1e-8)


@pytest.mark.parametrize("kernel", [polynomial_kernel, bs.rbf_kernel(4.0)])
def test_mmd2_replicates_equal_u_statistic_of_resampled_features(kernel):
    gen, ref = _sets(70, 50, 16, seed=2)
    indices = bs.resample_indices(70, 5, np.random.default_rng(3))
    ref_term = bs.mmd2_reference_term(ref, kernel, block_size=16)
    fast = bs.mmd2_replicates(gen, ref, bs.counts_of(indices, 70), kernel, ref_term, block_size=32)
    direct = [_unbiased_mmd2(gen[rows], ref, kernel) for rows in indices]
    np.testing.assert_allclose(fast, direct, rtol=1e-10, atol=1e-12)


def test_mmd2_of_the_full_sets_is_cmmd():
    gen, ref = _sets(40, 30, 8, seed=4)
    kernel = bs.rbf_kernel(3.0)
    full = bs.mmd2_replicates(gen, ref, np.ones((1, 40)), kernel, bs.mmd2_reference_term(ref, kernel))
    assert 1000 * full[0] == pytest.approx(cmmd(gen, ref, sigma=3.0), rel=1e-10)


def test_manifold_replicates_keep_the_full_set_radii():
    gen, ref = _sets(60, 50, 6, seed=5)
    incidence = manifold_incidence(ref, gen, k_pr=3, k_dc=5)
    assert incidence.metrics() == manifold_metrics(ref, gen, k_pr=3, k_dc=5)
    ones = bs.manifold_replicates(incidence, np.ones((1, 60)))
    full = incidence.metrics()
    assert {k: v[0] for k, v in ones.items()} == pytest.approx(full.__dict__, abs=1e-15)

    def radii(x: np.ndarray, k: int) -> np.ndarray:
        d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
        return np.sort(d2, axis=1)[:, k]  # column 0 is the zero self-distance

    d2 = ((gen[:, None] - ref[None]) ** 2).sum(-1)  # (m, n)
    inside_ref_pr, inside_ref_dc = d2 <= radii(ref, 3)[None], d2 <= radii(ref, 5)[None]
    inside_gen = d2 <= radii(gen, 3)[:, None]
    indices = bs.resample_indices(60, 4, np.random.default_rng(6))
    found = bs.manifold_replicates(incidence, bs.counts_of(indices, 60))
    for b, rows in enumerate(indices):
        present = np.unique(rows)
        assert found["precision"][b] == pytest.approx(inside_ref_pr[rows].any(axis=1).mean())
        assert found["recall"][b] == pytest.approx(inside_gen[present].any(axis=0).mean())
        assert found["density"][b] == pytest.approx(inside_ref_dc[rows].sum() / (5 * 60))
        assert found["coverage"][b] == pytest.approx(inside_ref_dc[present].any(axis=0).mean())


def test_is_replicates_and_seeded_resampling():
    logits = np.random.default_rng(7).standard_normal((50, 10)) * 3
    first = bs.resample_indices(50, 3, np.random.default_rng(8))
    assert np.array_equal(first, bs.resample_indices(50, 3, np.random.default_rng(8)))
    found = bs.is_replicates(logits, first, splits=5)
    assert found.tolist() == [inception_score(logits[rows], splits=5)[0] for rows in first]
    with pytest.raises(MetricError, match="replicates"):
        bs.resample_indices(50, 0, np.random.default_rng(0))


def test_interval_is_shifted_by_the_bootstrap_bias():
    values = np.arange(1001, dtype=float)  # mean 500, 2.5/97.5 percentiles 25 and 975
    assert bs.interval(values, 500.0) == pytest.approx((25.0, 975.0))
    assert bs.interval(values, 400.0) == pytest.approx((-75.0, 875.0))
