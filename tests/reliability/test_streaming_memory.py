"""Extraction streams: memory does not grow with the number of images (no list of decoded images is kept)."""
from __future__ import annotations

import hashlib
import tracemalloc

import numpy as np

from genmetrics.features.extract import extract_features
from genmetrics.io.images import ImageSource
from tests.helpers import TinyExtractor

SIDE = 28


class _Synthetic(ImageSource):
    """``n`` distinct 28x28 RGB images made on each load, as a decoder makes them: 2,352 bytes each."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.description = f"synthetic {n}"

    def __len__(self) -> int:
        return self.n

    def name(self, index: int) -> str:
        return f"{index}.png"

    def load(self, index: int) -> np.ndarray:
        return np.random.default_rng(index).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)

    def content_hash(self) -> str:
        return hashlib.sha256(str(self.n).encode()).hexdigest()

    def raw_bytes_hash(self, index: int) -> str:
        return hashlib.sha256(str(index).encode()).hexdigest()


def _peak_bytes(n: int) -> int:
    """Peak Python/numpy heap above the starting point while extracting ``n`` images for an FID-only run."""
    source, extractor = _Synthetic(n), TinyExtractor()
    tracemalloc.start()
    try:
        feats = extract_features(source, extractor, batch_size=32, keep_features=False, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert feats.stats.n == n and feats.features is None
    return peak


def test_extraction_memory_is_flat_from_2000_to_8000_images():
    small, large = _peak_bytes(2000), _peak_bytes(8000)
    per_image = (large - small) / 6000  # measured ~70 bytes: the row-index list; a kept image would be 2,352
    assert per_image < 200, (small, large)
