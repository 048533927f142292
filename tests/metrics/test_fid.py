"""FID: parity with torch-fidelity, closed forms, rank-deficient covariances, input errors."""
import numpy as np
import pytest
import torch
from scipy.stats import ortho_group
from torch_fidelity.metric_fid import (
    fid_features_to_statistics,
    fid_statistics_to_metric,
)

from genmetrics.errors import MetricError
from genmetrics.metrics.fid import fid_from_features, fid_from_stats
from genmetrics.stats import mean_cov


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) * np.linspace(1.0, 0.05, d)
    return np.maximum(rng.standard_normal((n, d)) @ mix + shift, 0.0)  # ReLU: non-negative like pool3 features


def _torch_fidelity_fid(a: np.ndarray, b: np.ndarray) -> float:
    stats = [fid_features_to_statistics(torch.from_numpy(x)) for x in (a, b)]
    return fid_statistics_to_metric(stats[0], stats[1], verbose=False)["frechet_inception_distance"]


@pytest.mark.parametrize("n_a, n_b, d", [(400, 600, 128), (300, 250, 64), (40, 90, 128)])  # last: rank-deficient
def test_parity_with_torch_fidelity(n_a, n_b, d):
    a, b = _features(n_a, d, seed=1), _features(n_b, d, seed=2, shift=0.3)
    ours = fid_from_features(a, b)
    theirs = _torch_fidelity_fid(a, b)
    assert ours > 1.0
    assert abs(ours - theirs) <= 1e-6 * abs(theirs)
    assert ours == fid_from_stats(*mean_cov(a), *mean_cov(b))


def test_accepts_torch_tensors_of_any_float_dtype():
    a, b = _features(200, 32, seed=3), _features(200, 32, seed=4)
    ours = fid_from_features(a, b)
    assert fid_from_features(torch.from_numpy(a), torch.from_numpy(b)) == ours
    mu1, s1 = (torch.from_numpy(v) for v in mean_cov(a))
    mu2, s2 = (torch.from_numpy(v) for v in mean_cov(b))
    assert fid_from_stats(mu1, s1, mu2, s2) == ours


@pytest.mark.parametrize("n", [500, 50])  # full rank and rank-deficient (n < d)
def test_identical_statistics_give_zero(n):
    mu, sigma = mean_cov(_features(n, 100, seed=5))
    assert abs(fid_from_stats(mu, sigma, mu, sigma)) < 1e-8 * np.trace(sigma)


def test_unit_covariances_give_squared_mean_distance():
    d = 50
    m = np.random.default_rng(6).standard_normal(d)
    assert fid_from_stats(np.zeros(d), np.eye(d), m, np.eye(d)) == pytest.approx(m @ m, rel=1e-12)


@pytest.mark.parametrize("zeros", [0, 7])
def test_commuting_covariances_closed_form(zeros):
    """S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T: FID = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2, also singular."""
    d = 40
    rng = np.random.default_rng(7)
    a, b = rng.uniform(0.1, 4.0, d), rng.uniform(0.1, 4.0, d)
    a[:zeros] = 0.0  # rank-deficient S1
    b[zeros:2 * zeros] = 0.0  # and S2, on other directions
    q = ortho_group.rvs(d, random_state=8)
    s1, s2 = ((q * v) @ q.T for v in (a, b))
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    expected = (mu1 - mu2) @ (mu1 - mu2) + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    # At a singular matrix Tr sqrt is only sqrt(eps)-conditioned: the ~1e-16 rounding noise that the
    # rotation leaves in a null direction of S2 contributes ~1e-8 (sqrtm and eigvals do 2-4x worse).
    assert fid_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-7 if zeros else 1e-11)
    diag = fid_from_stats(np.zeros(d), np.diag(a), np.zeros(d), np.diag(b))
    assert diag == pytest.approx(((np.sqrt(a) - np.sqrt(b)) ** 2).sum(), rel=1e-12)


def test_errors_name_the_bad_input():
    mu, sigma = np.zeros(4), np.eye(4)
    bad = sigma.copy()
    bad[1, 2] = np.nan
    with pytest.raises(MetricError, match="sigma2 contains 1 NaN/inf"):
        fid_from_stats(mu, sigma, mu, bad)
    with pytest.raises(MetricError, match="mu1 contains"):
        fid_from_stats(np.array([0, np.inf, 0, 0]), sigma, mu, sigma)
    with pytest.raises(MetricError, match="d=4, mu2/sigma2 have d=3"):
        fid_from_stats(mu, sigma, np.zeros(3), np.eye(3))
    with pytest.raises(MetricError, match=r"sigma1 must be a \(4, 4\)"):
        fid_from_stats(mu, np.eye(3), mu, sigma)
    with pytest.raises(MetricError, match="mu2 must be a 1-D"):
        fid_from_stats(mu, sigma, sigma, sigma)
    asym = np.eye(4)
    asym[0, 3] = 0.5
    with pytest.raises(MetricError, match="sigma1 is not symmetric"):
        fid_from_stats(mu, asym, mu, sigma)
    with pytest.raises(MetricError, match="b has 1 sample"):
        fid_from_features(np.zeros((5, 4)), np.zeros((1, 4)))
    with pytest.raises(MetricError, match="a has d=4, b has d=3"):
        fid_from_features(np.zeros((5, 4)), np.zeros((5, 3)))
    with pytest.raises(MetricError, match="a contains"):
        fid_from_features(np.full((5, 4), np.nan), np.zeros((5, 4)))
