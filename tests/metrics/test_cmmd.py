"""CMMD: Gaussian-RBF MMD (sigma 10, x1000) against a direct pairwise formula, and its behaviour."""
from __future__ import annotations

import numpy as np
import pytest

from genmetrics.errors import MetricError
from genmetrics.metrics.cmmd import cmmd


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _direct(x: np.ndarray, y: np.ndarray, unbiased: bool, sigma: float = 10.0) -> float:
    """1000 * MMD^2 by explicit double loops."""
    k = lambda u, v: np.exp(-((u - v) ** 2).sum() / (2 * sigma**2))
    def within(z):
        pairs = [k(z[i], z[j]) for i in range(len(z)) for j in range(len(z)) if i != j or not unbiased]
        return sum(pairs) / len(pairs)
    cross = np.mean([k(u, v) for u in x for v in y])
    return 1000.0 * (within(x) + within(y) - 2 * cross)


def test_matches_the_pairwise_formula_biased_and_unbiased():
    rng = np.random.default_rng(0)
    x, y = _unit(rng.normal(size=(9, 5))), _unit(rng.normal(size=(7, 5)) + 0.5)
    assert cmmd(x, y) == pytest.approx(_direct(x, y, unbiased=True), rel=1e-10)
    assert cmmd(x, y, unbiased=False) == pytest.approx(_direct(x, y, unbiased=False), rel=1e-10)
    assert cmmd(x, y, sigma=1.0) == pytest.approx(_direct(x, y, unbiased=True, sigma=1.0), rel=1e-10)
    assert cmmd(x, y, scale=1.0) == pytest.approx(cmmd(x, y) / 1000, rel=1e-12)
    assert cmmd(x, y, block_size=2) == pytest.approx(cmmd(x, y), rel=1e-12, abs=1e-12)  # tiles do not matter
    assert cmmd(x, y) == pytest.approx(cmmd(y, x), rel=1e-12)


def test_a_set_with_itself_is_about_zero_and_grows_with_a_shift():
    rng = np.random.default_rng(1)
    x = _unit(rng.normal(size=(200, 16)))
    assert abs(cmmd(x, x, unbiased=False)) < 1e-9  # biased: exactly 0 up to rounding
    # unbiased: scale * 2 (mean off-diagonal k - 1) / n, tiny next to any real shift
    assert -0.2 < cmmd(x, x) < 0
    direction = _unit(rng.normal(size=(1, 16)))
    y = rng.normal(size=(200, 16))  # an independent sample, shifted by t along one direction
    values = [cmmd(x, _unit(y + t * direction)) for t in (0.0, 0.3, 0.6, 1.0, 2.0)]
    assert values == sorted(values)
    assert abs(values[0]) < 0.2 and values[2] > 3 * abs(values[0]) and values[-1] > 20 * abs(values[0])


def test_bad_inputs_are_metric_errors():
    a = np.ones((3, 4))
    with pytest.raises(MetricError, match="feature dimensions differ"):
        cmmd(a, np.ones((3, 5)))
    with pytest.raises(MetricError, match="at least 2"):
        cmmd(a, np.ones((1, 4)))
    with pytest.raises(MetricError, match="sigma must be > 0"):
        cmmd(a, a, sigma=0)
