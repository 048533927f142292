"""Precision/recall at scale: genmetrics vs torch-fidelity on Inception-pool3-shaped features.

Default: N = 10,000 per side, d = 2048; times torch-fidelity's ``calculate_precision_recall_part`` (its
memory-saving path) and ``calculate_precision_recall_full`` (its default ``prc_features_to_metric`` path)
and ours one after the other in this process (each ``--repeat`` times, fastest kept: the machine is
shared), prints the times, the ratios and whether precision and recall are equal. ``--scale N``: ours only on N x N, with the values and the process's peak memory
(ru_maxrss, features included). Run each size in its own process so that ru_maxrss is that size's peak.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch_fidelity.metric_prc import calculate_precision_recall_full, calculate_precision_recall_part

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing
from genmetrics.metrics.precision_recall import precision_recall  # noqa: E402

DIM = 2048
LATENT = 64


def pool3_like(n: int, seed: int, spread: float, chunk: int = 4096) -> np.ndarray:
    """(n, DIM) float32 features: ReLU of correlated Gaussians (rank-LATENT signal plus noise), like pool3."""
    mixing = np.random.default_rng(0).standard_normal((LATENT, DIM), dtype=np.float32) / np.sqrt(LATENT)
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        latent = spread * rng.standard_normal((rows.stop - start, LATENT), dtype=np.float32)
        out[rows] = latent @ mixing + 0.5 * rng.standard_normal((rows.stop - start, DIM), dtype=np.float32)
        np.maximum(out[rows] + 0.2, 0.0, out=out[rows])
    return out


def timed(repeat: int, fn, *args, **kwargs) -> tuple[float, tuple[float, float]]:
    """(fastest seconds, result) of ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best, result


def counts(pr: tuple[float, float], n_gen: int, n_ref: int) -> tuple[int, int]:
    """Covered-sample counts behind (precision, recall)."""
    return round(pr[0] * n_gen), round(pr[1] * n_ref)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="samples per side for the comparison (default 10000)")
    parser.add_argument("--scale", type=int, default=None, help="instead: time ours alone on SCALE x SCALE")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1, help="calls per method, the fastest is reported (default 1)")
    args = parser.parse_args()
    n = args.scale or args.n
    ref, gen = pool3_like(n, seed=1, spread=1.0), pool3_like(n, seed=2, spread=1.1)
    print(f"features: ref {ref.shape} gen {gen.shape} float32, k={args.k}, torch threads={torch.get_num_threads()}, "
          f"fastest of {args.repeat}")
    if args.scale:
        seconds, ours = timed(args.repeat, precision_recall, ref, gen, k=args.k)
        print(f"genmetrics precision_recall N={n}: {seconds:.1f} s")
        print(f"precision={ours[0]!r} recall={ours[1]!r}")
        print(f"peak memory (ru_maxrss): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
        return
    gen_t, ref_t = torch.from_numpy(gen), torch.from_numpy(ref)
    t_part, theirs_part = timed(args.repeat, calculate_precision_recall_part, gen_t, ref_t, args.k, 10_000)
    print(f"torch-fidelity calculate_precision_recall_part: {t_part:.1f} s  precision={theirs_part[0]:.6f} "
          f"recall={theirs_part[1]:.6f}")
    t_full, theirs_full = timed(args.repeat, calculate_precision_recall_full, gen_t, ref_t, args.k, 10_000)
    print(f"torch-fidelity calculate_precision_recall_full: {t_full:.1f} s  precision={theirs_full[0]:.6f} "
          f"recall={theirs_full[1]:.6f}")
    t_ours, ours = timed(args.repeat, precision_recall, ref, gen, k=args.k)
    print(f"genmetrics precision_recall:                    {t_ours:.1f} s  precision={ours[0]:.6f} recall={ours[1]:.6f}")
    print(f"speed-up vs part: {t_part / t_ours:.2f}x   vs full: {t_full / t_ours:.2f}x   (goal >= 2x)")
    equal = counts(ours, n, n) == counts(theirs_part, n, n) == counts(theirs_full, n, n)
    print(f"precision/recall equal (covered counts {counts(ours, n, n)}): {equal}")


if __name__ == "__main__":
    main()
