"""IDX image and label files (MNIST / Fashion-MNIST format, optionally gzipped): the one reader of genmetrics and
of the reference generators' training data (``genmetrics_models.data``)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from genmetrics.errors import InputError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's dataset-fashion-mnist installs its idx files."""
_FIX = "reinstall dataset-fashion-mnist"


def read_idx(path: str | Path) -> np.ndarray:
    """An idx file (``.gz`` or not) of unsigned bytes -> its array, read-only (idx1: (N,), idx3: (N, rows, cols));
    InputError naming the file (and Debian's package when it is missing) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{str(path)!r} is missing: install Debian's Fashion-MNIST package "
                         "(apt-get install dataset-fashion-mnist)")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputError(f"{str(path)!r} is not a valid gzip file ({exc}); {_FIX}") from None
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or not 1 <= raw[3] <= 3:
        raise InputError(f"{str(path)!r} is not an idx file of unsigned bytes; {_FIX}")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise InputError(f"{str(path)!r} is truncated: its header is incomplete; {_FIX}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != 4 + 4 * ndim + int(np.prod(shape)):
        raise InputError(f"{str(path)!r} is truncated: its header says shape {shape}; {_FIX}")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _read_ndim(path: str | Path, ndim: int, what: str) -> np.ndarray:
    array = read_idx(path)
    if array.ndim != ndim:
        raise InputError(f"{str(path)!r} is not an {what} file: it holds an array of shape {array.shape}")
    return array


def read_idx_images(path: str | Path) -> np.ndarray:
    """An idx3-ubyte(.gz) file -> (N, rows, cols) uint8."""
    return _read_ndim(path, 3, "idx3-ubyte image")


def read_idx_labels(path: str | Path) -> np.ndarray:
    """An idx1-ubyte(.gz) file -> (N,) uint8."""
    return _read_ndim(path, 1, "idx1-ubyte label")


def _split_file(folder: Path, split: str, kind: str) -> Path:
    prefix = {"train": "train", "test": "t10k"}[split]
    return Path(folder) / f"{prefix}-{kind}-ubyte.gz"


def fashion_mnist(split: str, folder: str | Path = FASHION_MNIST_DIR) -> np.ndarray:
    """Fashion-MNIST images of ``split`` ('train': 60,000 or 'test': 10,000), (N, 28, 28) uint8, from Debian's
    package (or the idx files in ``folder``)."""
    return read_idx_images(_split_file(folder, split, "images-idx3"))


def fashion_mnist_labels(split: str, folder: str | Path = FASHION_MNIST_DIR) -> np.ndarray:
    """Fashion-MNIST class labels 0..9 of ``split`` ('train' or 'test'), in the order of :func:`fashion_mnist`."""
    return read_idx_labels(_split_file(folder, split, "labels-idx1"))
