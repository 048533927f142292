"""Small deterministic test data."""
from __future__ import annotations

import numpy as np
from PIL import Image


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
