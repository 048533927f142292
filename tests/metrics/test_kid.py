"""KID: identical subsets and values as torch-fidelity for the same seed, sanity, input errors."""
import numpy as np
import pytest
import torch
from torch_fidelity.metric_kid import kid_features_to_metric

from genmetrics.errors import MetricError
from genmetrics.metrics.kid import kid


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.standard_normal((n, d)) + shift, 0.0)


def _torch_fidelity_kid(a, b, subsets, subset_size, seed):
    out = kid_features_to_metric(torch.from_numpy(a), torch.from_numpy(b), kid_subsets=subsets,
                                 kid_subset_size=subset_size, rng_seed=seed, verbose=False)
    return out["kernel_inception_distance_mean"], out["kernel_inception_distance_std"]


@pytest.mark.parametrize("seed", [0, 2020])
def test_parity_with_torch_fidelity(seed):
    a, b = _features(300, 96, seed=1), _features(260, 96, seed=2, shift=0.2)
    ours = kid(a, b, subsets=25, subset_size=200, seed=seed)
    theirs = _torch_fidelity_kid(a, b, 25, 200, seed)
    assert ours[0] > 0 and ours[1] > 0
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_subset_size_is_clipped_to_the_smaller_set():
    a, b = _features(150, 32, seed=3), _features(120, 32, seed=4, shift=0.3)
    assert kid(a, b, subsets=10, seed=5) == pytest.approx(_torch_fidelity_kid(a, b, 10, 120, 5), rel=1e-6)


def test_same_distribution_near_zero_and_grows_with_shift():
    a = _features(400, 64, seed=6)
    same = kid(a, _features(400, 64, seed=7), subsets=20, subset_size=300)[0]
    small = kid(a, _features(400, 64, seed=7, shift=0.2), subsets=20, subset_size=300)[0]
    large = kid(a, _features(400, 64, seed=7, shift=0.5), subsets=20, subset_size=300)[0]
    itself = kid(a, a, subsets=20, subset_size=300)[0]
    assert abs(same) < 0.05 * small
    # Subsets drawn from one set overlap; shared rows put k(x, x) into K_XY, so the estimate dips below 0.
    assert -0.25 * small < itself < 0
    assert 0 < small < large


def test_seed_determines_the_subsets():
    a, b = _features(200, 16, seed=8), _features(200, 16, seed=9, shift=0.1)
    assert kid(a, b, subsets=5, subset_size=50, seed=1) == kid(a, b, subsets=5, subset_size=50, seed=1)
    assert kid(a, b, subsets=5, subset_size=50, seed=1) != kid(a, b, subsets=5, subset_size=50, seed=2)


def test_errors():
    a = _features(20, 8, seed=10)
    with pytest.raises(MetricError, match="b contains 1 NaN/inf"):
        kid(a, np.where(np.arange(160).reshape(20, 8) == 7, np.nan, a))
    with pytest.raises(MetricError, match="a has d=8, b has d=7"):
        kid(a, a[:, :7])
    with pytest.raises(MetricError, match="b has 1 sample"):
        kid(a, a[:1])
    with pytest.raises(MetricError, match="subsets must be >= 1"):
        kid(a, a, subsets=0)
    with pytest.raises(MetricError, match="subset_size must be >= 2"):
        kid(a, a, subset_size=1)
