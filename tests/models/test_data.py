"""Offline datasets: Debian's Fashion-MNIST, scikit-learn's digits and their mapping to 28x28."""
from __future__ import annotations

import numpy as np
import pytest

from genmetrics.errors import ConfigError, InputError
from genmetrics.io.idx import fashion_mnist as genmetrics_fashion_mnist
from genmetrics_models import data


@pytest.mark.fashion_mnist_full
def test_fashion_mnist_train_split_with_labels():
    dataset = data.load_dataset("fashion-mnist")
    assert dataset.images.shape == (60_000, 28, 28, 1) and dataset.images.dtype == np.uint8
    assert np.bincount(dataset.labels).tolist() == [6000] * 10  # balanced classes
    assert dataset.labels[:5].tolist() == [9, 0, 0, 3, 0] and dataset.classes[9] == "ankle boot"
    assert np.array_equal(dataset.images[:100, ..., 0], genmetrics_fashion_mnist("train")[:100])
    assert data.REFERENCES["fashion-mnist"] == "fashion-mnist-test"


def test_digits_are_upsampled_and_padded_and_map_back_exactly():
    dataset = data.load_dataset("digits")
    original, labels = data.digits()
    assert original.shape == (1797, 8, 8) and original.max() == 255 and labels.tolist()[:3] == [0, 1, 2]
    assert dataset.images.shape == (1797, 28, 28, 1) and dataset.num_classes == 10
    first = dataset.images[0, ..., 0]
    assert (first[:2] == 0).all() and (first[:, -2:] == 0).all()  # the 2-pixel border
    assert (first[2:5, 2:5] == original[0, 0, 0]).all() and (first[5:8, 8:11] == original[0, 1, 2]).all()
    assert np.array_equal(data.native("digits", dataset.images), original[..., None])
    samples = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    block = samples[0, 2:5, 5:8, 0].astype(float).mean()
    assert data.native("digits", samples)[0, 0, 1, 0] == np.round(block)
    assert data.native("fashion-mnist", samples) is samples


def test_missing_fashion_mnist_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path)
    with pytest.raises(InputError, match=r"train-images-idx3-ubyte.gz' is missing: install Debian's Fashion-MNIST "
                                         r"package \(apt-get install dataset-fashion-mnist\)"):
        data.load_dataset("fashion-mnist")


def test_unknown_dataset():
    with pytest.raises(ConfigError, match="unknown dataset 'mnist'; choose one of fashion-mnist, digits"):
        data.load_dataset("mnist")
