"""FD-infinity (Chong & Forsyth 2020): the Fréchet distance extrapolated to infinitely many generated samples.

Definition, as dgm-eval's ``compute_FD_infinity`` (layer6ai-labs/dgm-eval, ``dgm_eval/metrics/fd.py``):
1. sizes n_1 .. n_P: ``np.linspace(min(5000, max(N // 10, 2)), N, P)`` truncated to integers (P = ``num_points``,
   default 15; N generated samples);
2. FD_i = the FD of a subset of n_i generated samples (mean, covariance with ddof=1) against the full reference
   statistics (mu_ref, sigma_ref);
3. the ordinary least-squares line FD_i = value + slope / n_i; FD-infinity is the intercept ``value``.

Subsets. One ``numpy.random.default_rng(seed)``; for each size, in increasing order, ``rng.permutation(N)`` is
drawn and its first n_i entries are the subset (a fresh, independent permutation per size; the last size is the
whole set). dgm-eval draws ``rng.choice(reps2, n_i, replace=False)`` from an unseeded ``default_rng()`` (Chong &
Forsyth's own code: ``np.random.shuffle`` per size): the same kind of subsets, other draws.

Cost. The reference covariance is factorised once, sigma_ref = A A^T with A = P L (d, r) from LAPACK's pivoted
Cholesky stopped at the numerical rank r, the factorisation ``fid_from_stats`` uses. The eigenvalues of
sigma_ref S_gen are those of the symmetric PSD A^T S_gen A, which is the covariance of the projected features
Y = (X - c) A: Y is computed once (N d r), and each subset's r x r covariance comes from Gram matrices of Y rows,
taken over the subset or, when that is smaller, its complement (Gram of all rows minus the complement's).
Tr sqrt(sigma_ref S_gen) = sum sqrt(lambda) over the eigenvalues of that covariance (``eigvalsh``; negatives from
rounding clipped to 0). Each FD equals ``fid_from_stats`` on the subset's ``mean_cov`` to ~1e-12 relative
(tested at 1e-9). At N = 50,000, d = 2048 the 15 eigenvalue solves (d x d) and the Gram matrices dominate.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import eigh, lapack

from genmetrics.errors import MetricError
from genmetrics.metrics.fid import as_stats
from genmetrics.stats import as_features

DEFAULT_NUM_POINTS = 15
MAX_FIRST_SIZE = 5000  # the smallest subset: min(5000, max(N // 10, 2)), as dgm-eval and Chong & Forsyth
_CHUNK_ROWS = 4096  # rows gathered at a time for projections and Gram matrices


@dataclass(frozen=True)
class FDInfinity:
    """FD-infinity and the points it is extrapolated from.

    ``value``: the intercept of the least-squares line FD = value + slope / n (FD-infinity); ``slope``: its slope;
    ``sizes`` (P,) int64: the subset sizes n_i; ``fds`` (P,) fp64: the FD of the subset of each size.
    """

    value: float
    slope: float
    sizes: np.ndarray
    fds: np.ndarray


def subset_sizes(n: int, num_points: int = DEFAULT_NUM_POINTS) -> np.ndarray:
    """The P = ``num_points`` subset sizes (P,) int64 for ``n`` generated samples: ``np.linspace(min(5000,
    max(n // 10, 2)), n, P)`` truncated to integers, as dgm-eval (sizes may repeat for small n)."""
    return np.linspace(min(MAX_FIRST_SIZE, max(n // 10, 2)), n, num_points).astype(np.int64)


def fd_infinity(feats_gen: Any, mu_ref: Any, sigma_ref: Any, seed: int = 0,
                num_points: int = DEFAULT_NUM_POINTS) -> FDInfinity:
    """FD-infinity of generated features ``feats_gen`` (N, d) against reference statistics ``mu_ref`` (d,),
    ``sigma_ref`` (d, d); subsets drawn from ``numpy.random.default_rng(seed)`` (see the module docstring; a
    ``numpy.random.Generator`` passed as ``seed`` is used as is).

    Needs N >= 3, so that there are at least two distinct subset sizes of at least 2 samples each.
    """
    if int(num_points) != num_points or num_points < 2:
        raise MetricError("FD-infinity num_points must be an integer >= 2 (points of the fitted line), "
                          f"got {num_points}")
    mu_ref, sigma_ref = as_stats(mu_ref, sigma_ref, "_ref")
    x = as_features(feats_gen, "feats_gen", min_rows=1, keep_float32=True)
    n, d = x.shape
    if d != mu_ref.size:
        raise MetricError(f"feature dimensions differ: feats_gen has d={d}, mu_ref/sigma_ref have d={mu_ref.size}; "
                          "both sides must come from the same extractor layer")
    sizes = subset_sizes(n, int(num_points))
    if len(np.unique(sizes)) < 2:
        raise MetricError(f"feats_gen has {n} sample(s), FD-infinity needs at least 3 (subsets of >= 2 samples at "
                          "two or more sizes; Chong & Forsyth use 50,000); provide more generated samples")
    projected = _ProjectedSet(x, _reference_factor(sigma_ref))
    trace_ref = float(np.trace(sigma_ref))
    rng = np.random.default_rng(seed)
    fds = np.empty(len(sizes))
    for i, size in enumerate(sizes):
        perm = rng.permutation(n)
        mean, trace_gen, tr_sqrt = projected.subset_moments(perm, int(size))
        diff = mean - mu_ref
        fds[i] = diff @ diff + trace_ref + trace_gen - 2.0 * tr_sqrt
    value, slope = _least_squares_line(1.0 / sizes, fds)
    return FDInfinity(value=value, slope=slope, sizes=sizes, fds=fds)


def _reference_factor(sigma_ref: np.ndarray) -> np.ndarray:
    """A (d, r) with A A^T = sigma_ref: A = P L from LAPACK's pivoted Cholesky (dpstrf), stopped at the numerical
    rank r (LAPACK's default tolerance d * eps * max diagonal), as ``fid_from_stats`` factorises its sigma1."""
    factor, piv, rank, _ = lapack.dpstrf(sigma_ref, lower=1)
    out = np.zeros((sigma_ref.shape[0], rank))
    out[piv - 1] = np.tril(factor[:, :rank])  # the strict upper triangle of ``factor`` holds sigma_ref's entries
    return out


def _slices(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering range(n)."""
    return (slice(i, min(i + size, n)) for i in range(0, n, size))


class _ProjectedSet:
    """The generated features x (N, d), centred on their mean c, and their projection Y = (x - c) A (N, r) onto
    the reference factor A, with the sums over all rows that subset complements are taken from."""

    def __init__(self, x: np.ndarray, factor: np.ndarray) -> None:
        n = len(x)
        self.x = x
        self.centre = x.mean(axis=0, dtype=np.float64)
        self.y = np.empty((n, factor.shape[1]))
        self.row_norm_sq = np.empty(n)  # |x_i - c|^2
        for rows in _slices(n, _CHUNK_ROWS):
            centred = np.subtract(x[rows], self.centre, dtype=np.float64)
            self.row_norm_sq[rows] = np.einsum("ij,ij->i", centred, centred)
            np.matmul(centred, factor, out=self.y[rows])
        self.total = self._sums(np.arange(n))

    def _sums(self, rows: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
        """Sums over ``rows``: of x_i - c (d,), of |x_i - c|^2, of y_i (r,), of y_i y_i^T (r, r)."""
        d, r = self.x.shape[1], self.y.shape[1]
        sum_x, sum_y, gram = np.zeros(d), np.zeros(r), np.zeros((r, r))
        for part in _slices(len(rows), _CHUNK_ROWS):
            chunk = rows[part]
            sum_x += np.subtract(self.x[chunk], self.centre, dtype=np.float64).sum(axis=0)
            y = self.y[chunk]
            sum_y += y.sum(axis=0)
            gram += y.T @ y
        return sum_x, float(self.row_norm_sq[rows].sum()), sum_y, gram

    def subset_moments(self, perm: np.ndarray, size: int) -> tuple[np.ndarray, float, float]:
        """For the subset perm[:size]: its mean (d,), the trace of its covariance, and Tr sqrt(sigma_ref S_sub)."""
        if size <= len(perm) - size:
            sum_x, sum_sq, sum_y, gram = self._sums(perm[:size])
        else:  # the complement is smaller: subtract its sums from the totals
            rest = self._sums(perm[size:])
            sum_x, sum_sq, sum_y, gram = (total - part for total, part in zip(self.total, rest))
        mean_x, mean_y = sum_x / size, sum_y / size
        trace = (sum_sq - size * (mean_x @ mean_x)) / (size - 1)
        cov_y = (gram - size * np.outer(mean_y, mean_y)) / (size - 1)  # = A^T S_sub A
        if cov_y.size == 0:
            return self.centre + mean_x, trace, 0.0
        eigvals = eigh(cov_y, eigvals_only=True, driver="evd", overwrite_a=True, check_finite=False)
        return self.centre + mean_x, trace, float(np.sqrt(np.clip(eigvals, 0.0, None)).sum())


def _least_squares_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of the ordinary least-squares line y = intercept + slope x (x not all equal)."""
    x_mean, y_mean = x.mean(), y.mean()
    dx = x - x_mean
    slope = float(dx @ (y - y_mean) / (dx @ dx))
    return float(y_mean - slope * x_mean), slope
