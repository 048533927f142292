"""Small deterministic test data and a tiny stand-in extractor."""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from genmetrics.config import ExtractorSpec
from genmetrics.features.cache import FeatureCache
from genmetrics.features.extract import extract_features
from genmetrics.features.registry import EXTRACTORS, ExtractorConfig
from genmetrics.io.images import open_source


def random_images(n: int, size: int = 32, seed: int = 0, channels: int = 3) -> np.ndarray:
    """(n, size, size, channels) uint8 smooth-ish random images (blocky noise, so resizes are non-trivial)."""
    rng = np.random.default_rng(seed)
    cells = -(-size // 4)  # ceil: 4x4 blocks, cropped to size
    coarse = rng.integers(0, 256, (n, cells, cells, channels), dtype=np.uint8)
    return np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)[:, :size, :size]


def write_folder(folder, images: np.ndarray, ext: str = "png") -> None:
    """Save each (H, W, 3) uint8 image as folder/img_XXXX.ext."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"img_{i:04d}.{ext}")


class TinyExtractor:
    """A fast, deterministic stand-in for TF-Inception: nearest 8x8 resize, then fixed small-integer linear maps.

    All sums are of integers below 2**24, so outputs are exact in float32 and never depend on the batch.
    ``calls`` counts the images ``forward`` sees (in this process).
    """

    def __init__(self, resize: str = "tf1", has_logits: bool = True) -> None:
        self.spec = ExtractorSpec(name="tiny-test", weights_sha256="0" * 64, resize=resize, image_size=8, dim=16)
        self.has_logits = has_logits
        self.weights_path = "(none)"
        generator = torch.Generator().manual_seed(0)
        self.weight = torch.randint(-3, 4, (3 * 8 * 8, 16), generator=generator).float()
        self.fc = torch.randint(-3, 4, (16, 4), generator=generator).float()
        self.calls = 0

    def to(self, device: torch.device | str) -> TinyExtractor:
        return self

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (3, 8, 8) float32, nearest-neighbour."""
        rows = np.linspace(0, image.shape[0] - 1, 8).round().astype(int)
        cols = np.linspace(0, image.shape[1] - 1, 8).round().astype(int)
        return torch.from_numpy(image[np.ix_(rows, cols)].astype(np.float32)).permute(2, 0, 1).contiguous()

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, 8, 8) -> {"features": (N, 16), "logits": (N, 4) if has_logits}."""
        self.calls += len(batch)
        raw = batch.flatten(1) @ self.weight
        out = {"features": raw / 255}
        if self.has_logits:
            out["logits"] = raw @ self.fc / 255**2
        return out


def extract_to_file(folder: str, cache_root: str, out: str, barrier: Any) -> None:
    """Child process of the concurrency test: extract ``folder`` with TinyExtractor through the cache at
    ``cache_root`` (after all children reach ``barrier``) and save the features to ``out``."""
    extractor = TinyExtractor()
    barrier.wait()
    feats = extract_features(open_source(folder), extractor, batch_size=2, progress=False,
                             cache=FeatureCache(cache_root, extractor.spec))
    np.save(out, feats.features)


def with_zip_extract_version(data: bytes, version: int = 255) -> bytes:
    """A zip file's bytes with every central-directory record asking for extractor ``version`` (zipfile raises
    NotImplementedError on opening such an archive, not BadZipFile)."""
    out = bytearray(data)
    start = out.find(b"PK\x01\x02")
    assert start >= 0, "not a zip file"
    while start >= 0:
        out[start + 6:start + 8] = version.to_bytes(2, "little")
        start = out.find(b"PK\x01\x02", start + 4)
    return bytes(out)


FASHION_MNIST_SUBSET = Path(__file__).resolve().parent / "data" / "fashion-mnist-subset.npz"


@functools.cache
def fashion_mnist_subset(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The Fashion-MNIST images the suite reads without Debian's package: ``split`` 'test' (the first 2,000) or
    'train' (the first 400) -> images (N, 28, 28) uint8 and labels (N,) uint8, read-only
    (tests/data/make_fashion_mnist_subset.py)."""
    with np.load(FASHION_MNIST_SUBSET) as saved:
        images, labels = saved[f"{split}_images"], saved[f"{split}_labels"]
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def stand_in(factory: Callable[[], Any], like: str | None = None) -> type[ExtractorConfig]:
    """An extractor config whose ``build`` returns ``factory()``: registered as ``EXTRACTORS[like]`` it stands in
    for that extractor, taking (and ignoring) its options; without ``like`` it takes none."""

    @dataclass(frozen=True)
    class StandIn(ExtractorConfig):
        name: ClassVar[str] = like or "tiny"
        options: ClassVar[dict[str, str]] = dict(EXTRACTORS[like].options) if like else {}

        @classmethod
        def from_options(cls, **given: Any) -> ExtractorConfig:
            cls.given_options(**given)
            return cls()

        def build(self, device: str = "cpu") -> Any:
            return factory()

    return StandIn
