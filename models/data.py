"""Offline training data at the models' resolution (28, 28), and the way back to each dataset's own format.

* ``fashion-mnist``: the 60,000 training images (28x28) and labels of Debian's ``dataset-fashion-mnist``
  (idx files under ``/usr/share/datasets/fashion-mnist``); shipped evaluation reference ``fashion-mnist-test``.
* ``digits``: scikit-learn's 1,797 8x8 digits (bundled with scikit-learn, no download), as uint8
  ``round(v * 255 / 16)`` like genmetrics' shipped ``digits`` reference. The models see each digit upsampled
  3x by pixel repetition (24x24) and padded with 2 background (0) pixels on each side (28x28); samples go
  back to 8x8 by cropping the border and averaging each 3x3 block, which inverts that mapping exactly. The
  whole set serves as training data and as the ``digits`` reference.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genmetrics.errors import ConfigError, InputError
import genmetrics.io.idx as idx

FASHION_MNIST_DIR = idx.FASHION_MNIST_DIR  # a module attribute, so tests can point it elsewhere
FASHION_MNIST_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
                         "bag", "ankle boot")
DIGITS_SCALE, DIGITS_PAD = 3, 2  # 8x8 -> 24x24 -> 28x28


@dataclass(frozen=True)
class Dataset:
    """Training images at the models' resolution and their labels."""

    name: str
    images: np.ndarray  # (N, 28, 28, 1) uint8
    labels: np.ndarray  # (N,) int64 in 0..num_classes-1
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``split`` ('train': 60,000, 'test': 10,000) from the idx files in ``FASHION_MNIST_DIR``
    (read by ``genmetrics.io.idx``) -> images (N, 28, 28) uint8, labels (N,) int64."""
    images = idx.fashion_mnist(split, FASHION_MNIST_DIR)
    labels = idx.fashion_mnist_labels(split, FASHION_MNIST_DIR).astype(np.int64)
    if len(images) != len(labels):
        raise InputError(f"Fashion-MNIST {split} files in {str(FASHION_MNIST_DIR)!r} do not match: "
                         f"{images.shape} images, {labels.shape} labels; reinstall dataset-fashion-mnist")
    return images, labels


def digits_to_model(images: np.ndarray) -> np.ndarray:
    """(N, 8, 8) uint8 -> (N, 28, 28, 1): each pixel repeated 3x3, then 2 pixels of 0 around."""
    big = images.repeat(DIGITS_SCALE, axis=1).repeat(DIGITS_SCALE, axis=2)
    return np.pad(big, ((0, 0), (DIGITS_PAD, DIGITS_PAD), (DIGITS_PAD, DIGITS_PAD)))[..., None]


def digits_from_model(samples: np.ndarray) -> np.ndarray:
    """(N, 28, 28, 1) uint8 -> (N, 8, 8, 1): the 2-pixel border cropped, each 3x3 block averaged and rounded."""
    inner = samples[:, DIGITS_PAD:-DIGITS_PAD, DIGITS_PAD:-DIGITS_PAD, 0].astype(np.float64)
    blocks = inner.reshape(len(samples), 8, DIGITS_SCALE, 8, DIGITS_SCALE).mean(axis=(2, 4))
    return np.round(blocks).astype(np.uint8)[..., None]


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits -> images (1797, 8, 8) uint8 ``round(v * 255 / 16)``, labels (1797,) int64."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise InputError("the digits dataset needs scikit-learn: pip install scikit-learn") from None
    data = load_digits()
    return np.round(data.images * (255 / 16)).astype(np.uint8), data.target.astype(np.int64)


REFERENCES = {"fashion-mnist": "fashion-mnist-test", "digits": "digits"}
"""Dataset name -> the shipped genmetrics reference of its images in their own format (the default --eval-ref)."""


def check_dataset(name: str) -> str:
    """``name`` if it is a known dataset; ConfigError listing them otherwise."""
    if name not in REFERENCES:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(REFERENCES)}")
    return name


def native(name: str, samples: np.ndarray) -> np.ndarray:
    """Model samples (N, 28, 28, 1) uint8 -> dataset ``name``'s own format (N, H, W, 1) uint8 (digits: 8x8)."""
    return digits_from_model(samples) if check_dataset(name) == "digits" else samples


def load_dataset(name: str) -> Dataset:
    """The training set ``name`` (a key of REFERENCES) at the models' resolution."""
    if check_dataset(name) == "fashion-mnist":
        images, labels = fashion_mnist("train")
        return Dataset(name, images[..., None], labels, FASHION_MNIST_CLASSES)
    images, labels = digits()
    return Dataset(name, digits_to_model(images), labels, tuple(str(d) for d in range(10)))
