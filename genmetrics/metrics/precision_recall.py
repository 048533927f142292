"""k-NN manifold metrics: precision/recall (Kynkäänniemi et al. 2019), density/coverage (Naeem et al. 2020).

The ball of a sample has radius = distance to its k-th nearest neighbour in its own set, the
sample itself excluded (equivalently torch-fidelity's ``kthvalue(k + 1)`` over a row that holds the
zero self-distance). A point is inside a ball when its distance is ``<=`` the radius, as in
torch-fidelity's ``metric_prc.py`` (where features_1 = generated, features_2 = real).

Numerics: squared distances ||x||^2 + ||y||^2 - 2 x.y in fp64 (one BLAS matmul per block, clamped
at 0), compared as squared values (no sqrt, so no rounding merges distinct values); self-distances
are set to exactly 0. The fp64 rounding error (~1e-16 relative) is far below torch-fidelity's own
(torch.cdist in the input dtype, float32 for extractor features), so decisions agree except for a
pair sitting within float32 rounding of a ball boundary. Distances are computed in
``block_size`` x ``block_size`` tiles (memory O(block_size^2), never n x m); a pair's distance is
the same expression whichever tile holds it, so results do not depend on ``block_size`` (BLAS
could only change the last bit of a dot product with the tile shape, relevant for exact ties).
Fractions are exact fp64 counts / n; torch-fidelity returns the same fraction rounded to float32.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from genmetrics.errors import MetricError
from genmetrics.stats import as_features, check_same_dim

DEFAULT_BLOCK_SIZE = 2048


def _checked(feats_ref: Any, feats_gen: Any, k: int, block_size: int, gen_needs_radii: bool
             ) -> tuple[np.ndarray, np.ndarray]:
    """Validate both sets and k; the sets whose radii are needed must hold more than k samples."""
    if k < 1:
        raise MetricError(f"k must be >= 1, got {k}")
    if block_size < 1:
        raise MetricError(f"block_size must be >= 1, got {block_size}")
    ref = as_features(feats_ref, "feats_ref")
    gen = as_features(feats_gen, "feats_gen", min_rows=1)
    check_same_dim(ref, gen, "feats_ref", "feats_gen")
    with_radii = [("feats_ref", ref), ("feats_gen", gen)] if gen_needs_radii else [("feats_ref", ref)]
    for name, feats in with_radii:
        if len(feats) <= k:
            raise MetricError(f"{name} has {len(feats)} samples but k={k} needs at least k+1={k + 1}; "
                              "lower k or add samples")
    return ref, gen


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


def _keep_smallest(best: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Per row, the best.shape[1] smallest values of best (b, m) and new (b, c) together (unsorted)."""
    both = np.concatenate([best, new], axis=1)
    m = best.shape[1]
    return np.partition(both, m - 1, axis=1)[:, :m]


def _knn_radii_sq(x: np.ndarray, k: int, block_size: int) -> np.ndarray:
    """Squared distance (n,) from each row of x (n, d) to its k-th nearest other row.

    Keeps the k+1 smallest squared distances per row, self (exactly 0) included, over symmetric
    tiles; the largest of them is the k-th neighbour distance.
    """
    best = np.full((len(x), k + 1), np.inf)
    for rows, cols, d2 in _tiles(x, x, block_size, upper_only=True):
        best[rows] = _keep_smallest(best[rows], d2)
        if rows.start != cols.start:
            best[cols] = _keep_smallest(best[cols], d2.T)
    return best.max(axis=1)


def precision_recall(feats_ref: Any, feats_gen: Any, k: int = 3, *,
                     block_size: int = DEFAULT_BLOCK_SIZE) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of ``feats_gen`` (m, d) vs ``feats_ref`` (n, d).

    precision = fraction of generated samples inside at least one real ball; recall = fraction of
    real samples inside at least one generated ball. Both sets need more than k samples. Equal to
    torch-fidelity's ``prc_features_to_metric(feats_gen, feats_ref, prc_neighborhood=k)`` up to
    its float32 rounding of the fractions.
    """
    ref, gen = _checked(feats_ref, feats_gen, k, block_size, gen_needs_radii=True)
    r_ref = _knn_radii_sq(ref, k, block_size)
    r_gen = _knn_radii_sq(gen, k, block_size)
    gen_covered = np.zeros(len(gen), dtype=bool)
    ref_covered = np.zeros(len(ref), dtype=bool)
    for rows, cols, d2 in _tiles(ref, gen, block_size):
        gen_covered[cols] |= (d2 <= r_ref[rows, None]).any(axis=0)
        ref_covered[rows] |= (d2 <= r_gen[None, cols]).any(axis=1)
    return float(gen_covered.mean()), float(ref_covered.mean())


def density_coverage(feats_ref: Any, feats_gen: Any, k: int = 5, *,
                     block_size: int = DEFAULT_BLOCK_SIZE) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) of ``feats_gen`` Y (m, d) vs ``feats_ref`` X (n, d).

    density = 1/(k m) sum_j sum_i 1[Y_j in B(X_i, NND_k(X_i))] (can exceed 1);
    coverage = 1/n sum_i 1[exists j: Y_j in B(X_i, NND_k(X_i))]. X needs more than k samples.
    """
    ref, gen = _checked(feats_ref, feats_gen, k, block_size, gen_needs_radii=False)
    r_ref = _knn_radii_sq(ref, k, block_size)
    inside = 0
    ref_covered = np.zeros(len(ref), dtype=bool)
    for rows, _, d2 in _tiles(ref, gen, block_size):
        in_ball = d2 <= r_ref[rows, None]
        inside += int(np.count_nonzero(in_ball))
        ref_covered[rows] |= in_ball.any(axis=1)
    return inside / (k * len(gen)), float(ref_covered.mean())
