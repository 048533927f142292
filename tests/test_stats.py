"""RunningStats (streaming, mergeable fp64 mean/cov) and mean_cov against numpy's two-pass results."""
import numpy as np
import pytest
import torch

from genmetrics.errors import MetricError
from genmetrics.stats import RunningStats, mean_cov


def _feats(n: int = 500, d: int = 24, offset: float = 50.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) * np.linspace(3.0, 0.1, d)
    return rng.standard_normal((n, d)) @ mix + offset + rng.standard_normal(d)


def _rel(x: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(x - ref).max() / np.abs(ref).max())


def _stream(x: np.ndarray, sizes: list[int]) -> RunningStats:
    assert sum(sizes) == len(x)
    acc = RunningStats(x.shape[1])
    for start, size in zip(np.cumsum([0] + sizes[:-1]), sizes):
        acc.update(x[start:start + size])
    return acc


def test_streaming_uneven_batches_equals_two_pass():
    x = _feats()
    acc = _stream(x, [1, 7, 0, 100, 33, 259, 100])
    assert acc.n == 500
    assert _rel(acc.mean, x.mean(axis=0)) < 1e-10
    assert _rel(acc.cov, np.cov(x, rowvar=False)) < 1e-10
    assert np.array_equal(acc.cov, acc.cov.T)


def test_streaming_is_stable_when_mean_dwarfs_spread():
    x = _feats(offset=1e6, seed=1)
    acc = _stream(x, [3, 97, 200, 200])
    ref = np.cov(x, rowvar=False)
    assert _rel(acc.cov, ref) < 1e-10
    naive = (x.T @ x - len(x) * np.outer(x.mean(0), x.mean(0))) / (len(x) - 1)
    assert _rel(naive, ref) > 1e-6  # the sum-of-outer-products form this class avoids


def test_merge_of_split_halves_equals_whole_and_leaves_inputs_alone():
    x = _feats(seed=2)
    first, second = _stream(x[:123], [100, 23]), _stream(x[123:], [377])
    before = first.to_arrays()
    merged = first.merge(second)
    assert merged.n == 500
    assert _rel(merged.mean, x.mean(axis=0)) < 1e-10
    assert _rel(merged.cov, np.cov(x, rowvar=False)) < 1e-10
    assert first.n == 123 and np.array_equal(first.to_arrays()["m2"], before["m2"])
    assert np.array_equal(RunningStats(x.shape[1]).merge(merged).cov, merged.cov)


def test_state_round_trips_through_plain_arrays():
    x = _feats(seed=3)
    state = {k: np.array(v) for k, v in _stream(x[:250], [250]).to_arrays().items()}  # as if sent by another process
    assert all(isinstance(v, np.ndarray) for v in state.values())
    merged = RunningStats.from_arrays(**state).merge(_stream(x[250:], [250]))
    assert _rel(merged.cov, np.cov(x, rowvar=False)) < 1e-10


def test_accepts_torch_tensors():
    x = _feats(seed=4).astype(np.float32)
    acc = RunningStats(x.shape[1])
    acc.update(torch.from_numpy(x))
    assert _rel(acc.cov, np.cov(x.astype(np.float64), rowvar=False)) < 1e-10


def test_mean_cov_is_numpy_two_pass():
    x = _feats(seed=5)
    mu, sigma = mean_cov(x)
    assert np.array_equal(mu, np.mean(x, axis=0))
    assert np.array_equal(sigma, np.cov(x, rowvar=False))
    mu32, _ = mean_cov(torch.from_numpy(x.astype(np.float32)))
    assert mu32.dtype == np.float64


def test_errors():
    acc = RunningStats(4)
    with pytest.raises(MetricError, match="at least 1 sample"):
        _ = acc.mean
    acc.update(np.ones((1, 4)))
    with pytest.raises(MetricError, match="at least 2 samples, has 1"):
        _ = acc.cov
    with pytest.raises(MetricError, match="NaN/inf"):
        acc.update(np.array([[0.0, np.nan, 0.0, 0.0]]))
    with pytest.raises(MetricError, match="d=3 but .* dim=4"):
        acc.update(np.ones((2, 3)))
    with pytest.raises(MetricError, match=r"2-D array .* got shape \(4,\)"):
        acc.update(np.ones(4))
    with pytest.raises(MetricError, match="same dim"):
        acc.merge(RunningStats(5))
    with pytest.raises(MetricError, match="has 1 sample"):
        mean_cov(np.ones((1, 4)))
    with pytest.raises(MetricError, match="inconsistent"):
        RunningStats.from_arrays(n=3, mean=np.zeros(4), m2=np.zeros((3, 3)))
