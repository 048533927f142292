"""FID at d=2048: genmetrics' fid_from_stats vs the classic pytorch-fid route (scipy.linalg.sqrtm).

Run from a clone with ``python benchmarks/fid_vs_sqrtm.py`` (about a minute on 2 cores). For a
full-rank pair (4096 samples per side) and a rank-deficient pair (1024 samples, rank 1023) of
covariances from ReLU'd correlated features, it prints both timings (best of --repeat runs), the
speed ratio and the relative difference of the two FID values.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy
import scipy.linalg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from genmetrics.metrics.fid import fid_from_stats  # noqa: E402
from genmetrics.stats import mean_cov  # noqa: E402


def pytorch_fid_route(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """pytorch-fid's calculate_frechet_distance core: real part of sqrtm(S1 S2), then its trace."""
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def make_stats(n: int, d: int, seed: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of n non-negative, correlated, Inception-pool3-like feature vectors."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) * (np.linspace(1.0, 0.02, d) ** 2) / np.sqrt(d)
    feats = np.maximum(rng.standard_normal((n, d)) @ mix.T + shift + 0.1 * rng.standard_normal(d), 0.0)
    return mean_cov(feats)


def best_time(fn: Callable[[], float], repeat: int) -> tuple[float, float]:
    """(value, best wall time in seconds over ``repeat`` calls)."""
    times, value = [], 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return value, min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3, help="timing runs per method (best is reported)")
    args = parser.parse_args()
    print(f"numpy {np.__version__}, scipy {scipy.__version__}, d={args.dim}, best of {args.repeat}")
    print(f"{'case':<26}{'ours s':>9}{'sqrtm s':>10}{'speedup':>9}{'FID ours':>18}{'FID sqrtm':>18}{'rel diff':>10}")
    for label, n in (("full rank (n=4096)", 4096), ("rank-deficient (n=1024)", 1024)):
        stats1 = make_stats(n, args.dim, seed=1, shift=0.2)
        stats2 = make_stats(n, args.dim, seed=2, shift=0.25)
        ours, t_ours = best_time(lambda: fid_from_stats(*stats1, *stats2), args.repeat)
        classic, t_classic = best_time(lambda: pytorch_fid_route(*stats1, *stats2), args.repeat)
        rel = abs(ours - classic) / abs(classic)
        print(f"{label:<26}{t_ours:>9.3f}{t_classic:>10.3f}{t_classic / t_ours:>8.1f}x"
              f"{ours:>18.10g}{classic:>18.10g}{rel:>10.1e}")


if __name__ == "__main__":
    main()
