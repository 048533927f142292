"""CMMD (Jayasumana et al. 2024): MMD with a Gaussian RBF kernel on CLIP image embeddings, in fp64.

k(x, y) = exp(-||x - y||^2 / (2 sigma^2)), sigma = 10, and the result is scaled by 1000, as in the
reference implementation (google-research/cmmd, ``distance.py``), which also L2-normalises the CLIP
embeddings (genmetrics' ``clip`` extractor does). The default estimator is the unbiased one (U-statistic:
the within-set means leave out the diagonal); ``unbiased=False`` gives the reference code's biased
estimator, whose within-set means include the k(x, x) = 1 diagonal. The two differ by
scale * ((1 - mean_xx) / n + (1 - mean_yy) / m), where mean_xx is the off-diagonal mean of K_xx.

The unbiased value is ~0 for two samples of one distribution and can be slightly negative; for a set
with itself it is scale * 2 (mean_xx - 1) / n, a small negative number (the biased value is exactly 0).
Kernel sums run over bounded-memory tiles of squared distances.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from genmetrics.errors import MetricError
from genmetrics.metrics.precision_recall import DEFAULT_BLOCK_SIZE
from genmetrics.stats import as_features, check_same_dim

DEFAULT_SIGMA = 10.0
DEFAULT_SCALE = 1000.0


def _tiles(x: np.ndarray, y: np.ndarray, block_size: int, upper_only: bool = False
           ) -> Iterator[tuple[slice, slice, np.ndarray]]:
    """Yield (rows of x, rows of y, squared distances (bx, by)) tile by tile.

    With ``upper_only`` (x is y) only tiles with column start >= row start are produced, and the
    diagonal of diagonal tiles (the self-distances) is exactly 0.
    """
    x_sq = np.einsum("ij,ij->i", x, x)
    y_sq = x_sq if upper_only else np.einsum("ij,ij->i", y, y)
    for i0 in range(0, len(x), block_size):
        rows = slice(i0, i0 + block_size)
        for j0 in range(i0 if upper_only else 0, len(y), block_size):
            cols = slice(j0, j0 + block_size)
            d2 = x[rows] @ y[cols].T
            d2 *= -2.0
            d2 += x_sq[rows, None]
            d2 += y_sq[None, cols]
            np.maximum(d2, 0.0, out=d2)
            if upper_only and i0 == j0:
                np.fill_diagonal(d2, 0.0)
            yield rows, cols, d2


def _kernel_sum(x: np.ndarray, y: np.ndarray | None, gamma: float, block_size: int) -> float:
    """Sum of exp(-gamma ||x_i - y_j||^2) over all pairs; y None means y = x (diagonal included)."""
    total = 0.0
    for rows, cols, d2 in _tiles(x, x if y is None else y, block_size, upper_only=y is None):
        tile = float(np.exp(-gamma * d2).sum())
        total += tile if y is not None or rows.start == cols.start else 2.0 * tile
    return total


def cmmd(a: Any, b: Any, sigma: float = DEFAULT_SIGMA, scale: float = DEFAULT_SCALE, *, unbiased: bool = True,
         block_size: int = DEFAULT_BLOCK_SIZE) -> float:
    """CMMD between embeddings ``a`` (n, d) and ``b`` (m, d), n, m >= 2: scale * MMD^2 with the RBF kernel."""
    if not sigma > 0:
        raise MetricError(f"CMMD sigma must be > 0, got {sigma}")
    if block_size < 1:
        raise MetricError(f"block_size must be >= 1, got {block_size}")
    x = as_features(a, "a")
    y = as_features(b, "b")
    check_same_dim(x, y, "a", "b")
    gamma = 1.0 / (2.0 * sigma * sigma)
    n, m = len(x), len(y)
    k_xx, k_yy = _kernel_sum(x, None, gamma, block_size), _kernel_sum(y, None, gamma, block_size)
    k_xy = _kernel_sum(x, y, gamma, block_size) / (n * m)
    if unbiased:  # the diagonal distances are exactly 0 (see _tiles), so it contributes exactly n and m
        within = (k_xx - n) / (n * (n - 1)) + (k_yy - m) / (m * (m - 1))
    else:
        within = k_xx / (n * n) + k_yy / (m * m)
    return float(scale * (within - 2.0 * k_xy))
