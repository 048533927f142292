"""Feature statistics in fp64: two-pass ``mean_cov`` and the streaming, mergeable ``RunningStats``.

Also home of ``as_features``, the one validator every metric runs its inputs through.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from genmetrics.errors import MetricError


def as_float64(x: Any, name: str) -> np.ndarray:
    """``x`` (numpy array, torch tensor of any dtype/device, or nested sequence) as a finite fp64 array.

    Raises MetricError, naming ``name``, for non-numeric input or NaN/inf values.
    """
    return _as_finite(x, name, np.float64)


def _as_finite(x: Any, name: str, dtype: type[np.floating]) -> np.ndarray:
    """``x`` as a finite numpy array of ``dtype`` (no copy when it already is one); see ``as_float64``."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        x = (x.float() if dtype is np.float32 else x.double()).numpy()
    try:
        arr = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise MetricError(f"{name} must be a numeric array, got {type(x).__name__}: {exc}") from None
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))
        raise MetricError(f"{name} contains {len(bad)} NaN/inf value(s), first at index {tuple(bad[0].tolist())}; "
                          "fix or drop those samples before computing metrics")
    return arr


def as_features(feats: Any, name: str, min_rows: int = 2, *, keep_float32: bool = False) -> np.ndarray:
    """Validate ``feats`` (n, d) and return it as a finite fp64 numpy array.

    With ``keep_float32``, float32 input (numpy or torch) stays float32 (a numpy array is not copied):
    its values are exactly those of the fp64 widening, at half the memory.
    Raises MetricError, naming ``name``, for non-numeric input, ndim != 2, d == 0, fewer than
    ``min_rows`` rows, or NaN/inf values.
    """
    is_float32 = str(getattr(feats, "dtype", "")).removeprefix("torch.") == "float32"
    arr = _as_finite(feats, name, np.float32 if keep_float32 and is_float32 else np.float64)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise MetricError(f"{name} must be a 2-D array of shape (n, d) with d >= 1, got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise MetricError(f"{name} has {arr.shape[0]} sample(s), need at least {min_rows}; provide more samples")
    return arr


def check_same_dim(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise MetricError unless the (n, d) arrays ``a`` and ``b`` share the feature dimension d."""
    if a.shape[1] != b.shape[1]:
        raise MetricError(f"feature dimensions differ: {name_a} has d={a.shape[1]}, {name_b} has d={b.shape[1]}; "
                          "both sides must come from the same extractor layer")


SYMMETRY_RTOL = 1e-5
"""Largest tolerated max|S - S^T| relative to max|S| for a covariance S: covariances saved in float32 pass, a
swapped or corrupted matrix does not."""


def is_symmetric(sigma: np.ndarray) -> bool:
    """Whether the (d, d) ``sigma`` is symmetric within SYMMETRY_RTOL (np.cov and RunningStats give exact symmetry,
    checked first)."""
    return np.array_equal(sigma, sigma.T) or np.abs(sigma - sigma.T).max() <= SYMMETRY_RTOL * np.abs(sigma).max()


def mean_cov(feats: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two-pass fp64 mean (d,) and covariance (d, d) (ddof=1) of ``feats`` (n, d), n >= 2.

    Identical to ``np.mean(feats, axis=0)`` and ``np.cov(feats, rowvar=False)`` on the fp64 array.
    """
    x = as_features(feats, "feats")
    return x.mean(axis=0), np.cov(x, rowvar=False)


class RunningStats:
    """Streaming fp64 mean and covariance of d-dimensional features, mergeable across processes.

    State is (n, mean (d,), m2 (d, d)), m2 being the sum of outer products of deviations from the
    mean. Each batch is centred on its own mean (two-pass within the batch) and combined with the
    pairwise formula of Chan, Golub & LeVeque, which avoids the cancellation of the
    sum-of-outer-products form ``X^T X - n mu mu^T`` when |mean| >> std.
    """

    def __init__(self, dim: int) -> None:
        if int(dim) < 1:
            raise MetricError(f"RunningStats dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self._n = 0
        self._mean = np.zeros(self.dim)
        self._m2 = np.zeros((self.dim, self.dim))

    @property
    def n(self) -> int:
        """Number of samples seen."""
        return self._n

    @property
    def mean(self) -> np.ndarray:
        """Mean (d,) of the samples seen (a copy)."""
        if self._n < 1:
            raise MetricError("RunningStats.mean needs at least 1 sample; call update() with features first")
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        """Covariance (d, d) with ddof=1, as ``np.cov(feats, rowvar=False)``."""
        if self._n < 2:
            raise MetricError(f"RunningStats.cov needs at least 2 samples, has {self._n}; update() with more features")
        return self._m2 / (self._n - 1)

    def update(self, feats: Any) -> None:
        """Add a batch ``feats`` (n, d); an empty batch (0, d) is a no-op."""
        x = as_features(feats, "feats", min_rows=0)
        if x.shape[1] != self.dim:
            raise MetricError(f"feats has d={x.shape[1]} but this RunningStats was created with dim={self.dim}")
        if len(x) == 0:
            return
        batch_mean = x.mean(axis=0)
        centred = x - batch_mean
        self._combine(len(x), batch_mean, centred.T @ centred)

    def merge(self, other: RunningStats) -> RunningStats:
        """A new accumulator holding the samples of ``self`` and ``other`` (both left unchanged)."""
        if not isinstance(other, RunningStats) or other.dim != self.dim:
            raise MetricError(f"can only merge a RunningStats of the same dim ({self.dim}), got {other!r}")
        out = RunningStats.from_arrays(**self.to_arrays())
        out._combine(other._n, other._mean, other._m2)
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        """State as plain numpy arrays {'n': int64 scalar, 'mean': (d,), 'm2': (d, d)} (copies)."""
        return {"n": np.asarray(self._n, dtype=np.int64), "mean": self._mean.copy(), "m2": self._m2.copy()}

    @classmethod
    def from_arrays(cls, n: Any, mean: Any, m2: Any) -> RunningStats:
        """Rebuild an accumulator from ``to_arrays()`` output, e.g. ``RunningStats.from_arrays(**state)``."""
        mean = np.array(mean, dtype=np.float64)
        m2 = np.array(m2, dtype=np.float64)
        n = int(n)
        if mean.ndim != 1 or m2.shape != (mean.size, mean.size) or n < 0:
            raise MetricError(f"inconsistent RunningStats state: n={n}, mean shape {mean.shape}, m2 shape {m2.shape}")
        out = cls(mean.size)
        out._n, out._mean, out._m2 = n, mean, m2
        return out

    def _combine(self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        """Fold in a part with n_b samples, mean mean_b and deviation outer-product sum m2_b (Chan et al.)."""
        if n_b == 0:
            return
        n_a, n = self._n, self._n + n_b
        delta = mean_b - self._mean
        self._mean += delta * (n_b / n)
        correction = np.outer(delta, delta)  # exactly symmetric, so cov stays exactly symmetric
        correction *= n_a * n_b / n
        self._m2 += m2_b
        self._m2 += correction
        self._n = n

    def __repr__(self) -> str:
        return f"RunningStats(dim={self.dim}, n={self._n})"
