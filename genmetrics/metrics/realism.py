"""Realism score (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing Generative
Models", Eq. 3 and Sec. 5): per generated sample, how far inside the reference manifold it lies.

Definition implemented, with Euclidean (not squared) distances d(x, y) = sqrt(D(x, y)), D the canonical fp64
squared distance of ``genmetrics.metrics.knn`` (sum of squared fp64 differences):
    r_j = d(phi_j, k-th nearest other reference sample) (``knn_radii_sq``, exact);
    kept = the reference samples with r_j <= median(r) (the paper drops "half of the hyperspheres with the largest
           radii": the maximum runs over those "whose associated hypersphere is smaller than the median"; its
           code, like ours, keeps the radii at the median);
    R(x) = max over kept j of r_j / d(x, phi_j).
R(x) >= 1 exactly when x lies within some kept ball (d <= r). Conventions where d = 0: r_j / 0 = +inf for r_j > 0
(x coincides with a kept reference sample); a ball of radius 0 (a reference sample with k or more exact
duplicates) contributes 0 at any distance, 0 included. Each score equals the brute-force maximum over all pairs
of ``sqrt(r_j^2) / sqrt(D)`` (tested): fp64 tiles give bounds on every ratio, and the pairs that may hold a row's
maximum are recomputed exactly.

How the reference codes differ:
- The authors' code (kynkaat/improved-precision-and-recall-metric, ``ManifoldEstimator`` with
  ``clamp_to_percentile=50`` in ``experiments.py``) and guided-diffusion's evaluator (``ManifoldEstimator.evaluate``,
  ``max_realisim_score``; there ``clamp_to_percentile`` defaults to None, so no ball is dropped) work on squared
  distances: max_j r_j^2 / (D(x, phi_j) + 1e-5), radii above the 50th percentile set to 0 (same kept set as ours),
  in float32 (guided-diffusion: float16 distances when finite). That score is ~R(x)^2 (the maximum of squares is
  the square of the maximum), capped at r^2 / 1e-5 instead of inf at d = 0.
- dgm-eval (``compute_prdc(..., realism=True)``, Euclidean, no epsilon) keeps the radii strictly below the median
  (``<``): for an odd number of distinct radii it also drops the median ball, and ties at the median drop all of
  them. Otherwise it equals ours, up to its float32/sklearn distance rounding. Its command line uses k = 5
  (``--nearest_k``, shared with PRDC) on at most 10,000 random reference samples (``--reduced_n``); the paper, the
  authors' code and our default use k = 3.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from genmetrics.errors import MetricError
from genmetrics.metrics.knn import knn_radii_sq
from genmetrics.stats import as_features, check_same_dim

DEFAULT_K = 3
_BLOCK_ROWS = 1024  # generated rows per tile
_BLOCK_COLS = 4096  # reference columns per tile


def realism_scores(feats_ref: Any, feats_gen: Any, k: int = DEFAULT_K) -> np.ndarray:
    """Realism score (N_gen,) fp64 of each generated sample ``feats_gen`` (N_gen, d) against the reference samples
    ``feats_ref`` (N_ref, d), N_ref > k, with k-NN radii of neighbourhood size ``k`` (see the module docstring)."""
    if int(k) != k or k < 1:
        raise MetricError(f"realism k must be an integer >= 1, got {k}")
    k = int(k)
    ref = as_features(feats_ref, "feats_ref", min_rows=1, keep_float32=True)
    gen = as_features(feats_gen, "feats_gen", min_rows=1, keep_float32=True)
    check_same_dim(ref, gen, "feats_ref", "feats_gen")
    if len(ref) <= k:
        raise MetricError(f"feats_ref has {len(ref)} samples but k={k} needs at least k+1={k + 1}; "
                          "lower k or add reference samples")
    radii = np.sqrt(knn_radii_sq(ref, [k])[k])
    kept = radii <= np.median(radii)
    kept &= radii > 0  # a ball of radius 0 contributes 0 wherever x is
    if not kept.any():
        return np.zeros(len(gen))
    return _max_ratios(ref[kept], radii[kept], gen)


def _max_ratios(ref: np.ndarray, radii: np.ndarray, gen: np.ndarray) -> np.ndarray:
    """max_j radii_j / d(gen_i, ref_j) (N_gen,) for radii > 0, +inf at d = 0, exact for the canonical distances.

    Tiles hold D~ = |x~|^2 + |y~|^2 - 2 x~ . y~ on features centred on a common point (fp64);
    ``sq_distance_error_bound`` bounds |D~ - D| by e, hence each ratio r^2 / D lies between r^2 / (D~ + e) and
    r^2 / max(D~ - e, 0). A row's best lower bound L only grows from tile to tile, so a pair whose upper bound falls
    below the current L can never hold the maximum; the others are kept, filtered once more by the final L and
    recomputed exactly.
    """
    centre = (ref.mean(axis=0, dtype=np.float64) + gen.mean(axis=0, dtype=np.float64)) / 2
    ref_c = np.subtract(ref, centre, dtype=np.float64)
    ref_norm = np.einsum("ij,ij->i", ref_c, ref_c)
    radii_sq = radii * radii  # the ranking bound only; the exact scores use radii itself
    slack = sq_distance_error_bound(ref.shape[1])
    out = np.empty(len(gen))
    for start in range(0, len(gen), _BLOCK_ROWS):
        rows = slice(start, min(start + _BLOCK_ROWS, len(gen)))
        gen_c = np.subtract(gen[rows], centre, dtype=np.float64)
        gen_norm = np.einsum("ij,ij->i", gen_c, gen_c)
        best = np.zeros(len(gen_c))  # L: the largest lower bound of r^2 / D so far
        cand_rows, cand_cols, cand_den = [], [], []
        for col in range(0, len(ref), _BLOCK_COLS):
            cols = slice(col, min(col + _BLOCK_COLS, len(ref)))
            tile = gen_c @ ref_c[cols].T
            tile *= -2.0
            tile += gen_norm[:, None]
            tile += ref_norm[None, cols]
            err = slack * (gen_norm[:, None] + ref_norm[None, cols]) + 1e-300
            lower_ratio = radii_sq[None, cols] / (tile + err)
            np.maximum(best, lower_ratio.max(axis=1), out=best)
            # upper bound r^2 / max(D~ - e, 0) >= L  <=>  r^2 >= L max(D~ - e, 0) (no division by 0)
            tile -= err
            np.maximum(tile, 0.0, out=tile)
            r, c = np.nonzero(radii_sq[None, cols] >= best[:, None] * tile)
            cand_rows.append(r)
            cand_cols.append(c + col)
            cand_den.append(tile[r, c])
        # The same test with the final L, then exact distances for the pairs that pass.
        r, c, den = np.concatenate(cand_rows), np.concatenate(cand_cols), np.concatenate(cand_den)
        keep = radii_sq[c] >= best[r] * den
        r, c = r[keep], c[keep]
        dist = np.sqrt(exact_sq_distances(gen[rows], ref, r, c))
        with np.errstate(divide="ignore"):
            ratio = radii[c] / dist  # r > 0: d = 0 gives +inf
        block = np.full(len(gen_c), -np.inf)
        np.maximum.at(block, r, ratio)
        out[rows] = block
    return out


def sq_distance_error_bound(dim: int) -> float:
    """c with |D~ - D| <= c (|x~|^2 + |y~|^2) for fp64 tiles D~ of ``dim``-dimensional features centred on a common
    point (norms |x~|^2, |y~|^2), D the canonical squared distance of the uncentred inputs (also used by
    ``memorisation``).

    With N = |x~|^2 + |y~|^2 and u the unit roundoff: the dot product and the norms (any summation order)
    2 gamma_dim N; the two additions 4 u N; the centring roundings 4 u N; the canonical D's own rounding (fp64
    differences, squares, pairwise sum; D <= 2 N) 2 (dim + 3) u N. The sum is doubled for safety.
    """
    u = np.finfo(np.float64).eps / 2
    gamma = dim * u / (1 - dim * u)
    return 2.0 * (2 * gamma + 8 * u + 2 * (dim + 3) * u)


def exact_sq_distances(x: np.ndarray, y: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Canonical squared distances (p,) between x[rows] and y[cols] (index arrays (p,)): fp64 differences, squares,
    numpy's pairwise sum, as ``((x[i] - y[j]) ** 2).sum()`` in fp64 (and ``genmetrics.metrics.knn``)."""
    out = np.empty(len(rows))
    for start in range(0, len(rows), 4096):
        part = slice(start, start + 4096)
        diff = np.subtract(x[rows[part]], y[cols[part]], dtype=np.float64)
        np.square(diff, out=diff)
        diff.sum(axis=1, out=out[part])
    return out
