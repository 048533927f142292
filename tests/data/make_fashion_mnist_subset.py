"""Rebuild ``tests/data/fashion-mnist-subset.npz``: the Fashion-MNIST images the test suite reads, so that the
README's test command needs no system dataset.

Keys: ``test_images`` (2000, 28, 28) uint8 and ``test_labels`` (2000,) uint8, the first 2,000 test images;
``train_images`` (400, 28, 28) uint8 and ``train_labels`` (400,) uint8, the first 400 training images. Read from
Debian's ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``); the arrays are a pure function
of that package, checked by ``tests/io/test_idx.py`` where it is installed.

    python tests/data/make_fashion_mnist_subset.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from genmetrics.io.atomic import atomic_write
from genmetrics.io.idx import fashion_mnist, fashion_mnist_labels

SUBSET_PATH = Path(__file__).resolve().parent / "fashion-mnist-subset.npz"
SIZES = {"test": 2000, "train": 400}


def subset_arrays() -> dict[str, np.ndarray]:
    """The subset's arrays, cut from Debian's Fashion-MNIST files."""
    arrays = {}
    for split, n in SIZES.items():
        arrays[f"{split}_images"] = fashion_mnist(split)[:n]
        arrays[f"{split}_labels"] = fashion_mnist_labels(split)[:n]
    return arrays


if __name__ == "__main__":
    with atomic_write(SUBSET_PATH) as handle:
        np.savez_compressed(handle, **subset_arrays())
    print(f"wrote {SUBSET_PATH} ({SUBSET_PATH.stat().st_size:,} bytes)")
