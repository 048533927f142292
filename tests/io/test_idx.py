"""IDX files: Fashion-MNIST images and labels from Debian's package; malformed files."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from genmetrics.errors import InputError
from genmetrics.io.idx import fashion_mnist, fashion_mnist_labels, read_idx, read_idx_labels
from tests.data.make_fashion_mnist_subset import subset_arrays
from tests.helpers import fashion_mnist_subset


@pytest.mark.fashion_mnist_full
def test_shipped_subset_is_the_start_of_debians_files():
    arrays = subset_arrays()
    for split in ("test", "train"):
        images, labels = fashion_mnist_subset(split)
        np.testing.assert_array_equal(images, arrays[f"{split}_images"])
        np.testing.assert_array_equal(labels, arrays[f"{split}_labels"])
    assert len(fashion_mnist_subset("test")[0]) == 2000 and len(fashion_mnist_subset("train")[0]) == 400


@pytest.mark.fashion_mnist_full
def test_fashion_mnist_labels_match_the_images():
    labels = fashion_mnist_labels("test")
    assert labels.shape == (len(fashion_mnist("test")),) and labels.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels), [1000] * 10)


def test_label_files_round_trip_and_malformed_ones_are_refused(tmp_path):
    good = tmp_path / "labels-idx1-ubyte.gz"
    good.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + bytes([7, 0, 9])))
    np.testing.assert_array_equal(read_idx_labels(good), [7, 0, 9])
    truncated = tmp_path / "truncated-idx1-ubyte"
    truncated.write_bytes(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + bytes([1, 2]))
    with pytest.raises(InputError, match=r"truncated: its header says shape \(5,\)"):
        read_idx_labels(truncated)
    images = tmp_path / "images-idx3-ubyte"
    images.write_bytes(b"\x00\x00\x08\x03" + bytes(12))
    with pytest.raises(InputError, match="not an idx1-ubyte label file"):
        read_idx_labels(images)
    with pytest.raises(InputError, match="dataset-fashion-mnist"):
        read_idx_labels(tmp_path / "missing.gz")


def test_broken_idx_files_are_errors(tmp_path):
    truncated = tmp_path / "t.gz"
    truncated.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") + (2).to_bytes(4, "big") * 2
                                        + bytes(7)))
    with pytest.raises(InputError, match=r"is truncated: its header says shape \(5, 2, 2\)"):
        read_idx(truncated)
    other = tmp_path / "x"
    other.write_bytes(b"\x00\x00\x0d\x01" + bytes(8))  # float idx
    with pytest.raises(InputError, match="is not an idx file of unsigned bytes"):
        read_idx(other)
    short = tmp_path / "short"
    short.write_bytes(b"\x00\x00\x08\x03" + bytes(4))
    with pytest.raises(InputError, match="is truncated: its header is incomplete"):
        read_idx(short)
    not_gzip = tmp_path / "bad.gz"
    not_gzip.write_bytes(b"\x00\x00\x08\x01")
    with pytest.raises(InputError, match="is not a valid gzip file"):
        read_idx(not_gzip)
    labels = tmp_path / "labels"
    labels.write_bytes(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + bytes([4, 0, 9]))
    assert read_idx(labels).tolist() == [4, 0, 9]
