"""Kernel Inception Distance: unbiased MMD^2 with the cubic polynomial kernel, over random subsets."""
from __future__ import annotations

from typing import Any

import numpy as np

from genmetrics.errors import MetricError
from genmetrics.stats import as_features, check_same_dim


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x . y / d + 1)^3 for x (m, d), y (n, d) -> (m, n), fp64."""
    k = x @ y.T
    k /= x.shape[1]
    k += 1.0
    return k * k * k


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 estimate between equal-size samples x (m, d) and y (m, d)."""
    m = len(x)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)
    return float(within / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kid(a: Any, b: Any, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID (mean, std) between features ``a`` (n_a, d) and ``b`` (n_b, d).

    For each of ``subsets`` subsets, m = min(subset_size, n_a, n_b) rows are drawn without
    replacement from each side and the unbiased MMD^2 with kernel (x . y / d + 1)^3 is computed in
    fp64; the result is the mean and the population std (ddof=0) over subsets.

    Seed semantics: one ``np.random.RandomState(seed)``; per subset it draws
    ``rng.choice(n_a, m, replace=False)`` for ``a`` and then ``rng.choice(n_b, m, replace=False)``
    for ``b``. This is exactly torch-fidelity's ``kid_features_to_metric(a, b, rng_seed=seed,
    kid_subsets=subsets, kid_subset_size=m)`` with a = its features_1 (input1), so equal seeds
    draw equal subsets. torch-fidelity's default ``rng_seed`` is 2020; ours is 0.
    """
    a = as_features(a, "a")
    b = as_features(b, "b")
    check_same_dim(a, b, "a", "b")
    if subsets < 1:
        raise MetricError(f"KID subsets must be >= 1, got {subsets}")
    if subset_size < 2:
        raise MetricError(f"KID subset_size must be >= 2 (the unbiased estimator needs pairs), got {subset_size}")
    m = min(subset_size, len(a), len(b))
    rng = np.random.RandomState(seed)
    mmds = np.empty(subsets)
    for i in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        mmds[i] = _mmd2_unbiased(x, y)
    return float(mmds.mean()), float(mmds.std())
