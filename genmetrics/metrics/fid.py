"""Fréchet Inception Distance in fp64, through symmetric factorizations (no scipy.linalg.sqrtm).

FID = ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr sqrt(S1 S2).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import eigh, lapack

from genmetrics.errors import MetricError
from genmetrics.stats import as_features, as_float64, check_same_dim, is_symmetric, mean_cov


def as_stats(mu: Any, sigma: Any, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate one side's mean (d,) and covariance (d, d) (named ``mu<side>``, ``sigma<side>`` in messages);
    return them as fp64 arrays."""
    mu = as_float64(mu, f"mu{side}")
    sigma = as_float64(sigma, f"sigma{side}")
    if mu.ndim != 1 or mu.size == 0:
        raise MetricError(f"mu{side} must be a 1-D mean vector of shape (d,), got shape {mu.shape}")
    if sigma.shape != (mu.size, mu.size):
        raise MetricError(f"sigma{side} must be a ({mu.size}, {mu.size}) covariance matching mu{side}, "
                          f"got shape {sigma.shape}")
    if not is_symmetric(sigma):
        raise MetricError(f"sigma{side} is not symmetric; pass a covariance matrix (np.cov(feats, rowvar=False))")
    return mu, sigma


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr sqrt(sigma1 @ sigma2) for symmetric PSD fp64 (d, d) matrices.

    sigma1 = A A^T with A = P L from LAPACK's pivoted Cholesky (dpstrf), stopped at the numerical
    rank r (LAPACK's default tolerance d * eps * max diag), so rank-deficient covariances (n <= d)
    need no regularisation. The eigenvalues of sigma1 sigma2 are those of the symmetric PSD
    matrix A^T sigma2 A = L^T (P^T sigma2 P) L, which dsygst (itype=2) forms using symmetry;
    a symmetric eigenvalue solve without eigenvectors then gives Tr sqrt = sum sqrt(max(lambda, 0)).
    Same principle as sqrt(S1) S2 sqrt(S1), at a fraction of the cost of a full eigh of S1.
    """
    factor, piv, rank, _ = lapack.dpstrf(sigma1, lower=1)
    if rank == 0:
        return 0.0
    factor[:, rank:] = 0.0  # columns past the numerical rank hold the unfactored remainder
    perm = piv - 1
    reduced, _ = lapack.dsygst(sigma2[np.ix_(perm, perm)], factor, itype=2, lower=1, overwrite_a=1)
    eigvals = eigh(reduced[:rank, :rank], lower=True, eigvals_only=True, driver="evd", overwrite_a=True,
                   check_finite=False)
    return float(np.sqrt(np.clip(eigvals, 0.0, None)).sum())


def fid_from_stats(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """FID between Gaussians (mu1 (d,), sigma1 (d, d)) and (mu2 (d,), sigma2 (d, d)), in fp64.

    Rounding can make the FID of identical statistics a tiny negative number (~1e-12 * Tr S).
    """
    mu1, sigma1 = as_stats(mu1, sigma1, "1")
    mu2, sigma2 = as_stats(mu2, sigma2, "2")
    if mu1.size != mu2.size:
        raise MetricError(f"statistics differ in dimension: mu1/sigma1 have d={mu1.size}, mu2/sigma2 have "
                          f"d={mu2.size}; both sides must come from the same extractor layer")
    diff = mu1 - mu2
    tr_sqrt = _trace_sqrt_product(sigma1, sigma2)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_sqrt)


def fid_from_features(a: Any, b: Any) -> float:
    """FID between feature sets ``a`` (n_a, d) and ``b`` (n_b, d), n_a, n_b >= 2."""
    a = as_features(a, "a")
    b = as_features(b, "b")
    check_same_dim(a, b, "a", "b")
    return fid_from_stats(*mean_cov(a), *mean_cov(b))
