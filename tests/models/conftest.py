"""Small, fast model settings and data shared by the models tests."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genmetrics_models.base import to_float
from genmetrics_models.data import load_dataset

# Narrow networks and small batches: a training step takes milliseconds.
TINY = {
    "dcgan": {"width": 8, "z_dim": 8, "batch_size": 8},
    "cgan": {"width": 8, "z_dim": 8, "batch_size": 8},
    "wgan": {"width": 8, "z_dim": 8, "batch_size": 8, "n_critic": 2},
    "wgan-gp": {"width": 8, "z_dim": 8, "batch_size": 8, "n_critic": 2},
    "ae": {"width": 8, "z_dim": 4, "batch_size": 8},
    "vae": {"width": 8, "z_dim": 4, "batch_size": 8},
    "pixelcnn": {"channels": 8, "layers": 2, "batch_size": 8},
    "vqvae": {"width": 8, "codes": 16, "code_dim": 4, "prior_channels": 8, "prior_layers": 2, "batch_size": 8},
    "ddpm": {"channels": 8, "timesteps": 10, "sampling_steps": 0, "classifier_width": 8, "batch_size": 8},
    "t2i": {"channels": 8, "timesteps": 10, "sampling_steps": 0, "batch_size": 8},
}


@pytest.fixture(scope="session")
def digit_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 64 scikit-learn digits at the models' resolution: (64, 1, 28, 28) float in [-1, 1], labels (64,)."""
    data = load_dataset("digits")
    return to_float(torch.from_numpy(data.images[:64])), torch.from_numpy(data.labels[:64])


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_uint8_images(images: torch.Tensor | np.ndarray, n: int, size: int = 28) -> None:
    assert tuple(images.shape) == (n, size, size, 1)
    assert images.dtype in (torch.uint8, np.uint8)


@pytest.fixture
def tiny_extractor(monkeypatch) -> str:
    """Register genmetrics' fast stand-in extractor (tests.helpers.TinyExtractor) as ``tiny``; returns the name."""
    from genmetrics.features.registry import EXTRACTORS
    from tests.helpers import TinyExtractor, stand_in

    monkeypatch.setitem(EXTRACTORS, "tiny", stand_in(TinyExtractor))
    return "tiny"


@pytest.fixture(scope="session")
def digits_reference(tmp_path_factory) -> str:
    """A small evaluation reference: the last 40 digits, 8x8, as a .npy file."""
    from genmetrics_models.data import digits

    path = tmp_path_factory.mktemp("reference") / "digits-40.npy"
    np.save(path, digits()[0][-40:, :, :, None])
    return str(path)
