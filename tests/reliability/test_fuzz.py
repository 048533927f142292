"""Fuzzing the decoding layer: random and mutated bytes, and random small arrays, may only raise GenMetricsError.

Inputs: file bytes through ``io.images._decode`` (what every folder and zip item goes through); ``.npy`` files of
random small arrays through ``open_source`` and every item's ``load``; mutated ``.npy``/``.npz``/``.zip``/stats files
through ``open_source`` and ``load_stats``. Corrupt images make PIL emit UserWarnings, which are not errors.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from genmetrics.errors import GenMetricsError
from genmetrics.io.images import _decode, open_source
from genmetrics.io.statsfile import load_stats
from tests.helpers import random_images
from tests.reliability.harness import encoded

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

_SAMPLE = Image.fromarray(random_images(1, size=12, seed=40)[0])
_IMAGE_FILES = [
    encoded(_SAMPLE, "PNG"), encoded(_SAMPLE.convert("P"), "PNG", transparency=0), encoded(_SAMPLE, "JPEG"),
    encoded(_SAMPLE.convert("CMYK"), "JPEG"), encoded(_SAMPLE, "BMP"), encoded(_SAMPLE, "GIF"),
    encoded(_SAMPLE, "WEBP"), encoded(_SAMPLE, "WEBP", lossless=True), encoded(_SAMPLE, "TIFF"),
    encoded(_SAMPLE, "TIFF", compression="tiff_lzw"), encoded(_SAMPLE.convert("I;16"), "PNG"),
]


@st.composite
def _mutated(draw: st.DrawFn, originals: list[bytes]) -> bytes:
    """One of ``originals`` with a few bytes overwritten, inserted or deleted, and possibly truncated."""
    data = bytearray(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        op = draw(st.sampled_from(["set", "insert", "delete"]))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if op == "set":
            data[at:at + len(chunk)] = chunk
        elif op == "insert":
            data[at:at] = chunk
        else:
            del data[at:at + len(chunk)]
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


def _only_genmetrics_errors(action) -> None:
    try:
        action()
    except GenMetricsError:
        pass


@settings(max_examples=200, deadline=None, database=None)
@given(st.one_of(st.binary(max_size=512), _mutated(_IMAGE_FILES)))
def test_decoding_bytes_raises_only_genmetrics_errors(data):
    def decode() -> None:
        image = _decode(data, "fuzz.png")
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3

    _only_genmetrics_errors(decode)


_DTYPES = st.sampled_from([np.uint8, np.int8, np.uint16, np.int32, np.float32, np.float64, np.bool_, np.complex64,
                           np.dtype(">u2"), np.dtype("U2"), np.dtype("S2"), np.dtype([("r", "u1"), ("g", "u1")])])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=100, deadline=None, database=None)
@given(hnp.arrays(_DTYPES, hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5)), st.booleans())
def test_random_arrays_as_npy_files_raise_only_genmetrics_errors(scratch, array, as_npz):
    path = scratch / ("images.npz" if as_npz else "images.npy")
    if as_npz:
        np.savez(path, images=array)
    else:
        np.save(path, array)

    def read_all() -> None:
        for source in (open_source(str(path)), open_source(array)):
            for index in range(len(source)):
                image = source.load(index)
                assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
            source.content_hash()

    _only_genmetrics_errors(read_all)


def _container_files() -> list[tuple[str, bytes]]:
    arrays = io.BytesIO()
    np.save(arrays, random_images(2, size=4))
    archive = io.BytesIO()
    np.savez(archive, images=random_images(2, size=4))
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("a/b.png", _IMAGE_FILES[0])
    stats = io.BytesIO()
    np.savez(stats, mu=np.zeros(4), sigma=np.eye(4), meta=np.array('{"n": 3, "extractor": {"name": "x", '
                                                                     '"weights_sha256": "0", "resize": "tf1", '
                                                                     '"image_size": 8, "dim": 4}}'))
    return [("images.npy", arrays.getvalue()), ("images.npz", archive.getvalue()), ("images.zip", zipped.getvalue()),
            ("stats.npz", stats.getvalue())]


_CONTAINERS = _container_files()


@settings(max_examples=200, deadline=None, database=None)
@given(st.sampled_from(range(len(_CONTAINERS))), st.data())
def test_mutated_array_zip_and_stats_files_raise_only_genmetrics_errors(scratch, which, data):
    name, original = _CONTAINERS[which]
    path = scratch / name
    path.write_bytes(data.draw(_mutated([original])))

    def read() -> None:
        if name == "stats.npz":
            load_stats(path)
        source = open_source(str(path))
        for index in range(len(source)):
            source.load(index)
        source.content_hash()

    _only_genmetrics_errors(read)
