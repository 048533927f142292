"""The cost of sFID: ``genmetrics.score(..., "fid,sfid")`` vs ``"fid"`` alone, measured side by side in one run.

Run from a clone with ``python benchmarks/sfid_overhead.py`` (about 4 minutes on 2 CPU cores for the default 400
generated images). The generated side is the first N Fashion-MNIST test images (seeded random 28x28 images where
Debian's dataset-fashion-mnist is not installed), the reference a stats file with sFID's statistics of the next
N images, written once. Each repeat scores the generated side twice without the feature cache, ``fid`` then
``fid,sfid``, alternating the order, and times the extraction alone too (the same network with and without its
spatial output). It prints the median wall times, the extra cost of ``fid,sfid`` (goal <= 10%), its two parts
(the spatial features in the network pass, and the 2,023-d Frechet distance, a fixed cost independent of N) and
what the extra would be at N = 10,000 and 50,000 at the measured rates.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

import genmetrics  # noqa: E402
from genmetrics.errors import InputError  # noqa: E402
from genmetrics.features.extract import extract_features  # noqa: E402
from genmetrics.features.inception import InceptionExtractor  # noqa: E402
from genmetrics.io.idx import fashion_mnist  # noqa: E402
from genmetrics.io.images import open_source  # noqa: E402
from genmetrics.metrics.fid import fid_from_stats  # noqa: E402


def images(n: int) -> tuple[np.ndarray, str]:
    """(2n, 28, 28) uint8 images and where they come from."""
    try:
        test = fashion_mnist("test")
        if 2 * n <= len(test):
            return test[:2 * n], f"Fashion-MNIST test images 0..{2 * n - 1}"
    except InputError:
        pass
    return np.random.default_rng(0).integers(0, 256, (2 * n, 28, 28), dtype=np.uint8), "seeded random images"


def timed(function) -> tuple[object, float]:
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def extraction_seconds(network: InceptionExtractor, gen: np.ndarray, spatial: bool, batch_size: int) -> float:
    network.spatial = spatial
    try:
        return timed(lambda: extract_features(open_source(gen), network, batch_size=batch_size, progress=False))[1]
    finally:
        network.spatial = False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="generated images (default 400)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    pool, origin = images(args.n)
    gen, ref = pool[:args.n], pool[args.n:]
    print(f"{args.n} generated images ({origin}), reference stats of {len(ref)} others, batch {args.batch_size}")
    network = InceptionExtractor()
    times: dict[str, list[float]] = {"fid": [], "fid,sfid": [], "extract": [], "extract+spatial": []}
    with tempfile.TemporaryDirectory() as folder:
        stats = genmetrics.compute_stats(ref, Path(folder) / "ref.npz", sfid=True, cache=False, progress=False)
        for repeat in range(args.repeats):
            for metrics in (("fid", "fid,sfid") if repeat % 2 == 0 else ("fid,sfid", "fid")):
                times[metrics].append(timed(lambda: genmetrics.score(
                    gen, Path(folder) / "ref.npz", metrics, batch_size=args.batch_size, cache=False,
                    progress=False))[1])
            for spatial in ((False, True) if repeat % 2 == 0 else (True, False)):
                key = "extract+spatial" if spatial else "extract"
                times[key].append(extraction_seconds(network, gen, spatial, args.batch_size))
    frechet = timed(lambda: fid_from_stats(stats.mu_s, stats.sigma_s, stats.mu_s + 1e-3, stats.sigma_s))[1]
    median = {key: statistics.median(values) for key, values in times.items()}
    extra = median["fid,sfid"] / median["fid"] - 1
    per_image = (median["extract+spatial"] - median["extract"]) / args.n
    print(f"score fid:       {median['fid']:.1f} s ({args.n / median['fid']:.1f} img/s)")
    print(f"score fid,sfid:  {median['fid,sfid']:.1f} s: {100 * extra:+.1f}% (goal <= +10%)")
    print(f"  extraction without / with the spatial output: {median['extract']:.1f} s / "
          f"{median['extract+spatial']:.1f} s ({100 * (median['extract+spatial'] / median['extract'] - 1):+.1f}%)")
    print(f"  sFID's 2,023-d Frechet distance: {frechet:.2f} s (once per score, independent of N)")
    for n in (10_000, 50_000):
        base = median["extract"] / args.n * n
        print(f"  at N = {n:,}: about {100 * (per_image * n + frechet) / base:+.1f}% at these rates")


if __name__ == "__main__":
    main()
