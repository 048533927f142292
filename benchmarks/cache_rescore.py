"""Re-scoring with the feature cache: extraction of a folder of small PNGs with an empty cache, then again.

Run from a clone with ``python benchmarks/cache_rescore.py`` (about 2-3 minutes on 2 CPU cores for the
default 1,000 images, nearly all of it the cold run; ``--n 100`` for a quick check). It writes the first N
Fashion-MNIST test images (28x28, from Debian's dataset-fashion-mnist; seeded random 32x32 images where that
is not installed) as PNG files to a temp folder, loads TF-Inception once, then times
``extract_features`` on the folder twice through a ``FeatureCache`` in an empty temp folder: cold (every
image decoded, resized, run through the network and stored) and warm (every image hashed and read from the
cache). It prints both wall times, the speed-up (goal >= 20x; also with the model load, which a re-run of
``genmetrics score`` pays too) and whether the features are identical.
"""
from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from genmetrics.features.cache import FeatureCache  # noqa: E402
from genmetrics.features.extract import FeatureSet, extract_features  # noqa: E402
from genmetrics.features.inception import InceptionExtractor  # noqa: E402
from genmetrics.io.images import open_source  # noqa: E402

FASHION_MNIST_TEST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def small_images(n: int) -> tuple[np.ndarray, str]:
    """(n, H, W) uint8 images and where they come from."""
    if FASHION_MNIST_TEST.is_file():
        raw = gzip.decompress(FASHION_MNIST_TEST.read_bytes())
        count, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
        images = np.frombuffer(raw, np.uint8, offset=16).reshape(count, rows, cols)
        if n <= count:
            return images[:n], f"Fashion-MNIST test images 0..{n - 1}"
    return np.random.default_rng(0).integers(0, 256, (n, 32, 32), dtype=np.uint8), "seeded random 32x32 images"


def timed_extraction(folder: Path, extractor: InceptionExtractor, cache: FeatureCache,
                     args: argparse.Namespace) -> tuple[FeatureSet, float]:
    start = time.perf_counter()
    feats = extract_features(open_source(str(folder)), extractor, batch_size=args.batch_size, workers=args.workers,
                             progress=args.progress, cache=cache)
    return feats, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="number of images (default 1000)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--progress", action="store_true", help="show progress bars on stderr")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="genmetrics-cache-bench-") as tmp:
        folder, cache_root = Path(tmp) / "images", Path(tmp) / "cache"
        folder.mkdir()
        images, origin = small_images(args.n)
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / f"{i:05d}.png")
        start = time.perf_counter()
        extractor = InceptionExtractor(device=args.device)
        t_load = time.perf_counter() - start
        print(f"{args.n} PNG files ({origin}); TF-Inception loaded in {t_load:.1f} s (not counted in the "
              f"extraction times); batch {args.batch_size}, {args.workers} workers, {args.device}")
        cache = FeatureCache(cache_root, extractor.spec)
        cold, t_cold = timed_extraction(folder, extractor, cache, args)
        warm, t_warm = timed_extraction(folder, extractor, cache, args)
        size = sum(p.stat().st_size for p in cache_root.rglob("*.npz"))
        print(f"cold (empty cache): {t_cold:8.2f} s  ({args.n / t_cold:8.1f} img/s)")
        print(f"warm (all cached):  {t_warm:8.2f} s  ({args.n / t_warm:8.1f} img/s)")
        print(f"speed-up: {t_cold / t_warm:.1f}x (goal >= 20x); with the model load added to both: "
              f"{(t_load + t_cold) / (t_load + t_warm):.1f}x; cache: {size / 1e6:.1f} MB")
        identical = np.array_equal(cold.features, warm.features)
        print(f"features identical: {identical} ({cold.features.shape[0]} x {cold.features.shape[1]})")
        if not identical:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
