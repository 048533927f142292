"""The shipped reference statistics and captions: files match index.json, and rebuilding digits (and, with Debian's
Fashion-MNIST, the test captions) reproduces its file."""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json

import numpy as np
import pytest

from genmetrics.features.fashion_cnn import FASHION_CNN_NAME, WEIGHTS_SHA256
from genmetrics.features.inception import INCEPTION_NAME
from genmetrics.features.weights import FID_HELPER_SHA256
from genmetrics.io.captions import read_captions
from genmetrics.io.statsfile import load_stats
from genmetrics.references import data_stats_dir, list_references, resolve_reference
from tests.helpers import fashion_mnist_subset

REQUIRED = {"digits": 1797, "fashion-mnist-test": 10000, "fashion-mnist-train": 60000}
# ExtractorSpec name -> (weights sha256, resize, image size, precision, feature dimension)
SETUPS = {INCEPTION_NAME: (FID_HELPER_SHA256, "tf1", 299, "float32", 2048),
          FASHION_CNN_NAME: (WEIGHTS_SHA256, "luma601-bicubic", 28, "float64", 128)}


def _build_module():
    spec = importlib.util.spec_from_file_location("data_stats_build", data_stats_dir() / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_index_lists_the_required_references():
    for extractor in SETUPS:
        entries = {e["name"]: e for e in list_references() if e["extractor"] == extractor}
        for name, n in REQUIRED.items():
            if extractor == FASHION_CNN_NAME and name == "digits":
                continue
            assert entries[name]["n"] == n
            assert resolve_reference(name, extractor) == data_stats_dir() / entries[name]["file"]


@pytest.mark.parametrize("entry", list_references(), ids=lambda e: e["name"])
def test_each_file_matches_its_index_entry(entry):
    path = data_stats_dir() / entry["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    stats = load_stats(path)
    assert stats.n == entry["n"]
    sha, resize, size, precision, dim = SETUPS[entry["extractor"]]
    assert stats.extractor.name == entry["extractor"]
    assert stats.extractor.weights_sha256 == entry["weights_sha256"] == sha
    assert stats.extractor.resize == entry["resize"] == resize
    assert stats.extractor.precision == entry["precision"] == precision and stats.extractor.image_size == size
    assert stats.features.shape == (entry["features"], dim) == (min(entry["n"], 10_000), dim)
    with np.load(path) as raw:
        assert raw["features"].dtype == np.float16 and raw["sigma"].dtype == np.float64
    assert stats.meta["features_subset"]["n"] == entry["features"]
    assert stats.meta["source"] == entry["source"]
    assert np.allclose(stats.sigma, stats.sigma.T) and np.all(np.diag(stats.sigma) >= 0)


def test_rebuilding_digits_reproduces_the_shipped_file(tmp_path):
    """Same images, weights and batch size: statistics equal to fp32 rounding (BLAS threading may reorder sums),
    features equal to their float16 rounding, metadata equal apart from library versions."""
    shipped_entry = next(e for e in list_references() if e["name"] == "digits")
    entry = _build_module().build_digits(tmp_path)
    assert {k: v for k, v in entry.items()} == {k: v for k, v in shipped_entry.items() if k != "sha256"}
    rebuilt, shipped = load_stats(tmp_path / "digits.npz"), load_stats(data_stats_dir() / "digits.npz")
    np.testing.assert_allclose(rebuilt.mu, shipped.mu, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(rebuilt.sigma, shipped.sigma, rtol=1e-4, atol=1e-6 * np.abs(shipped.sigma).max())
    np.testing.assert_allclose(rebuilt.features, shipped.features, rtol=2e-3, atol=1e-4)
    drop = ("versions", "content_hash")
    assert {k: v for k, v in rebuilt.meta.items() if k not in drop} == \
        {k: v for k, v in shipped.meta.items() if k not in drop}
    assert rebuilt.meta["content_hash"] == shipped.meta["content_hash"]  # the same 1,797 images


def _captions_entry() -> dict:
    index = json.loads((data_stats_dir() / "index.json").read_text())
    return next(e for e in index["captions"] if e["file"] == "fashion-mnist-test.captions.csv")


def test_the_test_captions_match_their_index_entry_and_read_as_captions():
    entry = _captions_entry()
    path = data_stats_dir() / entry["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    assert rows[0] == ["file", "caption"] and entry["n"] == len(rows) - 1 == 10_000
    assert [row[0] for row in rows[1:]] == [str(i) for i in range(10_000)]
    assert list(read_captions(path).captions) == [str(i) for i in range(10_000)]


def test_the_test_captions_start_with_those_of_the_shipped_subset():
    """The subset holds the first 2,000 test images, and an image's caption depends only on the images before it
    being captioned in the same call (the seeded template draws), so its captions are the file's first rows."""
    images, labels = fashion_mnist_subset("test")
    expected = _build_module().captions_csv(images, labels, "test")
    shipped = (data_stats_dir() / _captions_entry()["file"]).read_bytes()
    assert shipped.startswith(expected)


@pytest.mark.fashion_mnist_full
def test_rebuilding_the_test_captions_reproduces_the_shipped_file(tmp_path):
    entry = _build_module().build_test_captions(tmp_path)
    shipped = _captions_entry()
    assert entry == {k: v for k, v in shipped.items() if k != "sha256"}
    assert (tmp_path / entry["file"]).read_bytes() == (data_stats_dir() / entry["file"]).read_bytes()
