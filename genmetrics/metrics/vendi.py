"""Vendi score (Friedman & Dieng 2023): the exponential of the entropy of the eigenvalues of K / n, with the cosine
kernel, as dgm-eval's default ``compute_vendi_score(X, q=1, normalize=True, kernel='linear')``.

Rows are L2-normalised, x_i / |x_i|, so K_ij = x_i . x_j has a unit diagonal and the eigenvalues lambda of K / n
are >= 0 and sum to 1. VS_q = exp(H_q(lambda)): H_1 = -sum lambda log lambda (Shannon, 0 log 0 = 0), H_q =
log(sum lambda^q) / (1 - q) for q != 1, H_inf = -log max lambda (so VS_inf = 1 / max lambda). VS is 1 when all
rows point the same way and n when they are orthogonal.

Exact and fast: with X (n, d) the normalised rows, K / n = X X^T / n and X^T X / n (d, d) have the same non-zero
eigenvalues, so the smaller of the two Gram matrices is formed (in fp64, over row chunks) and solved with
``eigvalsh``: 50,000 x 1,024 costs one d x d Gram and one 1,024 x 1,024 eigenvalue solve. Eigenvalues at or
below min(n, d) * eps * max lambda (rounding noise around the exact zeros; negatives among them) count as 0: the
n x n matrix of dgm-eval has n - rank such zeros, which it keeps when rounding makes them positive. For q = 1
they change the entropy by less than 1e-12; for small q (q = 0 counts the non-zero eigenvalues, the rank) they
would dominate, so the threshold makes every q well defined.

Deviations from dgm-eval: all-zero rows (whose cosine similarity is undefined; sklearn's ``normalize`` leaves them
zero, so K's diagonal is no longer 1) are refused; ``q=float('inf')`` stands for dgm-eval's ``q="inf"``; the
per-class scores are keyed by the actual labels (dgm-eval loops over ``range(number of distinct labels)``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import eigh

from genmetrics.errors import MetricError
from genmetrics.stats import as_features

_CHUNK_ROWS = 8192  # rows normalised and accumulated into the Gram matrix at a time


def vendi_score(feats: Any, q: float = 1.0) -> float:
    """Vendi score of ``feats`` (n, d) with the cosine kernel (rows L2-normalised), of order ``q`` >= 0
    (1: Shannon, the default; ``float('inf')``: 1 / max eigenvalue). Between 1 and min(n, d)."""
    q = _check_order(q)
    x = as_features(feats, "feats", min_rows=1, keep_float32=True)
    return _score_from_eigenvalues(_kernel_eigenvalues(x, "feats"), q)


def per_class_vendi(feats: Any, labels: Any, q: float = 1.0) -> dict[int, float]:
    """Vendi score of the rows of ``feats`` (n, d) of each class: {label: score} for every distinct integer label
    in ``labels`` (n,), in increasing order (dgm-eval's ``compute_per_class_vendi_scores``; their mean is its
    ``mean vendi per class``)."""
    q = _check_order(q)
    x = as_features(feats, "feats", min_rows=1, keep_float32=True)
    labels = np.asarray(labels)
    if labels.shape != (len(x),):
        raise MetricError(f"labels must have shape ({len(x)},), one per row of feats, got shape {labels.shape}")
    if labels.dtype.kind not in "iub":
        if labels.dtype.kind != "f" or not np.array_equal(labels, np.round(labels)):
            raise MetricError(f"labels must be integer class indices, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    return {int(label): _score_from_eigenvalues(_kernel_eigenvalues(x[labels == label], f"feats of class {label}"), q)
            for label in np.unique(labels)}


def _check_order(q: Any) -> float:
    """The order q as a float >= 0 (inf allowed; dgm-eval's string "inf" too)."""
    if isinstance(q, str) and q == "inf":
        return float("inf")
    try:
        q = float(q)
    except (TypeError, ValueError):
        raise MetricError(f"Vendi order q must be a number >= 0 (1: Shannon, float('inf')), got {q!r}") from None
    if not q >= 0:
        raise MetricError(f"Vendi order q must be >= 0 (1: Shannon, float('inf')), got {q}")
    return q


def _kernel_eigenvalues(x: np.ndarray, name: str) -> np.ndarray:
    """The eigenvalues of K / n for the rows of ``x`` (n, d) L2-normalised, from the smaller Gram matrix, with
    those at or below the rounding threshold set to 0 (ascending, fp64)."""
    n, d = x.shape
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    zero = np.flatnonzero(norms == 0)
    if len(zero):
        raise MetricError(f"{name} has {len(zero)} all-zero row(s), first at index {zero[0]}: cosine similarity is "
                          "undefined for them; drop them before computing the Vendi score")
    if d <= n:  # X^T X / n over row chunks
        gram = np.zeros((d, d))
        for start in range(0, n, _CHUNK_ROWS):
            rows = slice(start, start + _CHUNK_ROWS)
            chunk = np.divide(x[rows], norms[rows, None], dtype=np.float64)
            gram += chunk.T @ chunk
    else:  # X X^T / n: the n x n kernel itself is the smaller one
        unit = np.divide(x, norms[:, None], dtype=np.float64)
        gram = unit @ unit.T
    gram /= n
    eigvals = eigh(gram, eigvals_only=True, driver="evd", overwrite_a=True, check_finite=False)
    eigvals[eigvals <= min(n, d) * np.finfo(np.float64).eps * max(float(eigvals[-1]), 0.0)] = 0.0
    return eigvals


def _score_from_eigenvalues(eigvals: np.ndarray, q: float) -> float:
    """exp(H_q) of the eigenvalues (>= 0, summing to 1 up to rounding), 0 log 0 = 0."""
    p = eigvals[eigvals > 0]
    if q == 1:
        return float(np.exp(-(p * np.log(p)).sum()))
    if np.isinf(q):
        return float(1.0 / p.max())
    return float(np.exp(np.log((p ** q).sum()) / (1.0 - q)))
