"""Bootstrap replicates of the distribution metrics: the generated features are resampled with replacement,
the reference is held fixed.

A replicate is given by the resampled row indices (B, m) of the generated set; ``counts`` (B, m) are how often
each row was drawn. Every function returns the B values of one metric, in fp64, computed without
materialising the resampled feature matrices:

- FID: with sigma_ref = A A^T (pivoted Cholesky, A (d, r) at the numerical rank r, as ``fid_from_stats``),
  Tr sqrt(S_b sigma_ref) = Tr sqrt(A^T S_b A), and A^T S_b A is Z^T Z / (m - 1) for
  Z = diag(sqrt(c)) (Y - 1 delta^T), Y = (X - mean) A; its eigenvalues come from the smaller of Z Z^T and
  Z^T Z. Equal to ``fid_from_features(X[indices_b], ...)`` up to fp64 rounding.
- KID / CMMD: the unbiased (U-statistic) MMD^2 of the whole resampled set against the whole reference, copies
  of a row counted as distinct samples: (c^T K c - sum_i c_i k_ii) / (m (m - 1)) + mean' K_rr
  - 2 c^T K_gr 1 / (m n). Kernel tiles are computed once and shared by all replicates.
- IS: the metric on the resampled logits, splits over the resampled order.
- precision / recall / density / coverage: from the ball memberships of the full sets
  (``ManifoldIncidence``): the k-NN radii are those of the full sets (a resample's duplicates would shrink
  its radii to 0), and a replicate re-weights which generated samples are present.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import sparse
from scipy.linalg import lapack

from genmetrics.errors import MetricError
from genmetrics.metrics.inception_score import inception_score
from genmetrics.metrics.precision_recall import DEFAULT_BLOCK_SIZE, ManifoldIncidence

Kernel = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (a (p, d), b (q, d)) -> (p, q) fp64


def resample_indices(n: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """(replicates, n) row indices drawn uniformly with replacement."""
    if replicates < 1:
        raise MetricError(f"the number of bootstrap replicates must be >= 1, got {replicates}")
    return rng.integers(0, n, size=(replicates, n))


def counts_of(indices: np.ndarray, n: int) -> np.ndarray:
    """(B, n) fp64 multiplicities of each row in each replicate of ``indices`` (B, m)."""
    return np.stack([np.bincount(row, minlength=n) for row in indices]).astype(np.float64)


def interval(values: np.ndarray, estimate: float, level: float = 0.95) -> tuple[float, float]:
    """Bias-corrected percentile interval: the central ``level`` percentiles of replicate ``values`` (B,), shifted
    by the bootstrap bias estimate mean(values) - ``estimate``. Resampling with replacement duplicates samples,
    which moves some metrics systematically (FID up, recall down); the shift removes that first-order bias."""
    tail = 50 * (1 - level)
    low, high = np.percentile(values, [tail, 100 - tail]) - (values.mean() - estimate)
    return float(low), float(high)


def _psd_factor(sigma: np.ndarray) -> np.ndarray:
    """A (d, r) with A A^T = ``sigma`` (d, d) PSD, r its numerical rank (LAPACK dpstrf's default tolerance)."""
    factor, piv, rank, _ = lapack.dpstrf(sigma, lower=1)
    root = np.zeros((len(sigma), rank))
    root[piv - 1] = np.tril(factor)[:, :rank]
    return root


def fid_replicates(feats_gen: np.ndarray, mu_ref: np.ndarray, sigma_ref: np.ndarray, counts: np.ndarray,
                   device: str = "cpu", done: Callable[[], None] = lambda: None) -> np.ndarray:
    """FID (B,) of each replicate of ``feats_gen`` (m, d) given by ``counts`` (B, m) against (mu_ref (d,),
    sigma_ref (d, d)); fp64 on ``device``. ``done()`` is called after each replicate (a progress bar's tick)."""
    def as_tensor(array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=torch.float64, device=device)

    x, mu_r = as_tensor(feats_gen), as_tensor(mu_ref)
    sigma_ref = np.asarray(sigma_ref, np.float64)
    root = as_tensor(_psd_factor(sigma_ref))
    m = len(x)
    centre = x.mean(dim=0)
    xc = x - centre
    y = xc @ root
    sq_norms = (xc * xc).sum(dim=1)
    offset = centre - mu_r
    trace_ref = float(np.trace(sigma_ref))
    out = np.empty(len(counts))
    for b, row in enumerate(counts):
        c = as_tensor(row)
        delta_x = xc.T @ c / m
        diff = offset + delta_x
        trace_gen = (c @ sq_norms - m * delta_x @ delta_x) / (m - 1)
        present = c > 0
        z = (y[present] - delta_x @ root) * c[present].sqrt()[:, None]
        gram = z @ z.T if len(z) < z.shape[1] else z.T @ z
        tr_sqrt = torch.linalg.eigvalsh(gram / (m - 1)).clamp(min=0).sqrt().sum()
        out[b] = float(diff @ diff + trace_gen + trace_ref - 2 * tr_sqrt)
        done()
    return out


def rbf_kernel(sigma: float) -> Kernel:
    """CMMD's kernel exp(-|a - b|^2 / (2 sigma^2))."""
    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * (a @ b.T)
        return np.exp(-np.maximum(d2, 0.0) / (2 * sigma * sigma))
    return kernel


def _blocks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _pair_blocks(n: int, size: int) -> list[tuple[slice, slice]]:
    """Tiles (rows, cols) of range(n) x range(n) with cols at or after rows: each unordered pair of blocks once."""
    blocks = _blocks(n, size)
    return [(rows, cols) for i, rows in enumerate(blocks) for cols in blocks[i:]]


def mmd2_reference_term(feats_ref: np.ndarray, kernel: Kernel, block_size: int = DEFAULT_BLOCK_SIZE) -> float:
    """The within-reference term of the unbiased MMD^2: mean of k(r_i, r_j) over i != j."""
    ref = np.asarray(feats_ref, np.float64)
    n = len(ref)
    total = 0.0
    for rows, cols in _pair_blocks(n, block_size):
        tile = kernel(ref[rows], ref[cols])
        if rows == cols:
            np.fill_diagonal(tile, 0.0)
        total += float(tile.sum()) * (1 if rows == cols else 2)  # an off-diagonal tile stands for its mirror too
    return total / (n * (n - 1))


def mmd2_replicates(feats_gen: np.ndarray, feats_ref: np.ndarray, counts: np.ndarray, kernel: Kernel,
                    ref_term: float, block_size: int = DEFAULT_BLOCK_SIZE) -> np.ndarray:
    """Unbiased MMD^2 (B,) of each replicate of ``feats_gen`` (m, d) given by ``counts`` (B, m) against the
    whole ``feats_ref`` (n, d), whose within-set term ``ref_term`` is precomputed; fp64, tiles of
    ``block_size`` rows, never m x m."""
    gen, ref = np.asarray(feats_gen, np.float64), np.asarray(feats_ref, np.float64)
    m, n = len(gen), len(ref)
    weights = np.ascontiguousarray(counts.T)  # (m, B)
    within = np.zeros(len(counts))
    self_k = np.empty(m)  # k(g_i, g_i)
    for rows, cols in _pair_blocks(m, block_size):
        tile = kernel(gen[rows], gen[cols])
        if rows == cols:
            self_k[rows] = np.diag(tile)
            np.fill_diagonal(tile, 0.0)  # a row with itself; its copies with each other are added below
        pairs = np.einsum("ib,ib->b", weights[rows], tile @ weights[cols])
        within += pairs if rows == cols else 2 * pairs  # an off-diagonal tile stands for its mirror too
    cross = np.zeros(m)  # sum over the reference of k(g_i, r_j)
    for rows in _blocks(m, block_size):
        for cols in _blocks(n, block_size):
            cross[rows] += kernel(gen[rows], ref[cols]).sum(axis=1)
    within += (counts * (counts - 1)) @ self_k  # ordered pairs of distinct copies of one row
    return within / (m * (m - 1)) + ref_term - 2 * (counts @ cross) / (m * n)


def is_replicates(logits: np.ndarray, indices: np.ndarray, splits: int,
                  done: Callable[[], None] = lambda: None) -> np.ndarray:
    """Inception Score means (B,) of the resampled ``logits`` (m, C) rows ``indices`` (B, m); ``done()`` is called
    after each replicate."""
    out = np.empty(len(indices))
    for b, rows in enumerate(indices):
        out[b] = inception_score(logits[rows], splits=splits)[0]
        done()
    return out


def manifold_replicates(incidence: ManifoldIncidence, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, density and coverage (each (B,)) of each replicate given by ``counts`` (B, m)."""
    m, n = incidence.n_gen, incidence.n_ref
    present = (counts > 0).astype(np.float64).T  # (m, B)

    def covered(ref_idx: np.ndarray, gen_idx: np.ndarray) -> np.ndarray:
        """(B,) fraction of reference samples paired with at least one present generated sample."""
        pairs = sparse.csr_matrix((np.ones(len(ref_idx)), (ref_idx, gen_idx)), shape=(n, m))
        return (np.asarray(pairs @ present) > 0).mean(axis=0)

    dc_counts = np.bincount(incidence.ref_balls[1], minlength=m)
    return {
        "precision": counts @ incidence.gen_in_ref.astype(np.float64) / m,
        "recall": covered(incidence.gen_balls[1], incidence.gen_balls[0]),
        "density": counts @ dc_counts / (incidence.k_dc * m),
        "coverage": covered(*incidence.ref_balls),
    }
