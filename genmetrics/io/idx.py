"""IDX image and label files (MNIST / Fashion-MNIST format, optionally gzipped)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from genmetrics.errors import InputError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def _read_idx(path: str | Path) -> tuple[Path, bytes]:
    """(path, the file's bytes, gunzipped when it ends in .gz); InputError naming the package if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{str(path)!r} is missing; for Fashion-MNIST install Debian's dataset-fashion-mnist "
                         "(apt-get install dataset-fashion-mnist)")
    raw = path.read_bytes()
    return path, gzip.decompress(raw) if path.suffix == ".gz" else raw


def read_idx_images(path: str | Path) -> np.ndarray:
    """An idx3-ubyte(.gz) file -> (N, rows, cols) uint8."""
    path, raw = _read_idx(path)
    if len(raw) < 16 or raw[:4] != b"\x00\x00\x08\x03":
        raise InputError(f"{str(path)!r} is not an idx3-ubyte image file")
    count, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    if len(raw) != 16 + count * rows * cols:
        raise InputError(f"{str(path)!r} is truncated: header says {count}x{rows}x{cols}")
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, rows, cols)


def fashion_mnist(split: str) -> np.ndarray:
    """Fashion-MNIST images of ``split`` ('train': 60,000 or 'test': 10,000) from Debian's package."""
    prefix = {"train": "train", "test": "t10k"}[split]
    return read_idx_images(FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz")


def read_idx_labels(path: str | Path) -> np.ndarray:
    """An idx1-ubyte(.gz) file -> (N,) uint8."""
    path, raw = _read_idx(path)
    if len(raw) < 8 or raw[:4] != b"\x00\x00\x08\x01":
        raise InputError(f"{str(path)!r} is not an idx1-ubyte label file")
    count = int.from_bytes(raw[4:8], "big")
    if len(raw) != 8 + count:
        raise InputError(f"{str(path)!r} is truncated: header says {count} labels")
    return np.frombuffer(raw, np.uint8, offset=8)


def fashion_mnist_labels(split: str) -> np.ndarray:
    """Fashion-MNIST class labels 0..9 of ``split`` ('train' or 'test'), in the order of :func:`fashion_mnist`."""
    prefix = {"train": "train", "test": "t10k"}[split]
    return read_idx_labels(FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz")
