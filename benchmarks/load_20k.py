"""Peak memory of `genmetrics score` on a folder of many small PNGs: streaming keeps it bounded.

Run from a clone: ``python benchmarks/load_20k.py --stand-in`` (about a minute on 2 CPU cores). It writes N seeded
random 28x28 PNGs (default 20,000) to a temp folder and runs ``genmetrics score FOLDER FOLDER --metrics fid
--no-cache`` (both sides extracted) in a child process, then the same on the first ``--n-small`` of them (default
1,000), and prints each child's peak RSS (``ru_maxrss`` of its own rusage, from ``os.wait4``), wall time and FID. With
``--stand-in`` the network is the tests' TinyExtractor (nearest 8x8 resize, a 192x16 linear map) through the real
engine, decoding and statistics, so memory behaviour is checked in seconds; without it, TF-Inception (about
10 img/s per side on 2 cores: hours for 20,000, so try ``--n 500`` first). ``--metrics fid,kid`` keeps the feature
matrices that KID needs (N x 2048 float32 per side for TF-Inception).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def write_pngs(folder: Path, n: int, side: int) -> None:
    """``n`` seeded random ``side`` x ``side`` RGB PNGs named 00000.png, ..."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"{i:05d}.png")


def score_in_child(folder: Path, args: argparse.Namespace) -> tuple[float, float, str]:
    """Run the score in a fresh child process: (its peak RSS in MiB, wall seconds, its stdout)."""
    module = "tests.reliability.tiny_cli" if args.stand_in else "genmetrics_cli"
    extractor = ["--extractor", "tiny"] if args.stand_in else []
    command = [sys.executable, "-m", module, "score", str(folder), str(folder), "--metrics", args.metrics,
               "--no-cache", "--no-progress", "--batch-size", str(args.batch_size), "--workers", str(args.workers),
               *extractor]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage (RUSAGE_CHILDREN keeps the maximum)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"child failed ({child.returncode}): {err.read().strip()}")
        return usage.ru_maxrss / 1024, wall, out.read()  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="number of images (default 20000)")
    parser.add_argument("--n-small", type=int, default=1000, help="the comparison run's number of images (1000)")
    parser.add_argument("--side", type=int, default=28, help="image side in pixels (default 28)")
    parser.add_argument("--stand-in", action="store_true", help="the tests' tiny extractor instead of TF-Inception")
    parser.add_argument("--metrics", default="fid", help="metrics to score (default fid)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    if args.n_small > args.n:
        parser.error("--n-small must not exceed --n")
    network = "stand-in TinyExtractor" if args.stand_in else "TF-Inception"
    with tempfile.TemporaryDirectory(prefix="genmetrics-load-") as tmp:
        folder, small = Path(tmp) / "images", Path(tmp) / "small"
        start = time.perf_counter()
        write_pngs(folder, args.n, args.side)
        small.mkdir()
        for i in range(args.n_small):
            os.link(folder / f"{i:05d}.png", small / f"{i:05d}.png")
        print(f"wrote {args.n} random {args.side}x{args.side} PNGs in {time.perf_counter() - start:.1f} s; "
              f"`genmetrics score DIR DIR --metrics {args.metrics} --no-cache`, {network}, batch {args.batch_size}, "
              f"{args.workers} workers")
        for n, path in ((args.n_small, small), (args.n, folder)):
            peak, wall, out = score_in_child(path, args)
            first = out.splitlines()[0] if out else ""
            print(f"N={n:>6}: peak RSS {peak:8.1f} MiB, {wall:7.1f} s, {first}")


if __name__ == "__main__":
    main()
