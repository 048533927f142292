"""Reference generators by name (``genmetrics train MODEL``, checkpoints' ``model`` field)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from genmetrics.errors import ConfigError
from genmetrics_models.base import Generator
from genmetrics_models.diffusion import DDPM
from genmetrics_models.gan import CGAN, DCGAN, WGAN, WGANGP
from genmetrics_models.pixelcnn import PixelCNN
from genmetrics_models.t2i import T2I
from genmetrics_models.vae import AE, VAE
from genmetrics_models.vqvae import VQVAE

MODELS: dict[str, type[Generator]] = {cls.name: cls for cls in (DCGAN, CGAN, WGAN, WGANGP, AE, VAE, PixelCNN, VQVAE,
                                                                DDPM, T2I)}


def model_class(name: str) -> type[Generator]:
    """The Generator subclass registered as ``name``; ConfigError listing the names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None


def build_model(name: str, hparams: Mapping[str, Any] | None = None, *, num_classes: int = 10,
                generator: torch.Generator | None = None) -> Generator:
    """A new model ``name`` with ``hparams`` over its defaults, weights drawn from ``generator``."""
    return model_class(name)(hparams, num_classes=num_classes, generator=generator)
