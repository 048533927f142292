"""Shared fixtures: the real TF-Inception extractor (session-wide) and small deterministic images."""
from __future__ import annotations

import pytest
import torch

from genmetrics.features.inception import InceptionExtractor, TorchFidelityInceptionV3, map_fid_helper_state


@pytest.fixture(scope="session")
def inception() -> InceptionExtractor:
    """TF-Inception with the installed fid-helper weights (pool3 only)."""
    return InceptionExtractor()


@pytest.fixture(scope="session")
def logits_weights(tmp_path_factory, inception) -> str:
    """A torch-fidelity-format state dict: default_1's tensors plus a seeded random 1008-way fc layer.

    Its sha256 is not a known release, so it loads only with trust_weights=True.
    """
    net = TorchFidelityInceptionV3()
    tf_state = torch.jit.load(str(inception.weights.path), map_location="cpu").state_dict()
    state = map_fid_helper_state(net, {k.removeprefix("net.layers."): v for k, v in tf_state.items()})
    generator = torch.Generator().manual_seed(0)
    state["fc.weight"] = torch.randn(state["fc.weight"].shape, generator=generator) * 0.05
    state["fc.bias"] = torch.randn(state["fc.bias"].shape, generator=generator) * 0.05
    path = tmp_path_factory.mktemp("weights") / "inception-with-logits.pth"
    torch.save(state, path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> tuple[str, str]:
    """(JSON model config, weights file) of a tiny random-weight open_clip model (image size 32)."""
    from tests.clip_model import save_tiny_clip

    config, weights = save_tiny_clip(tmp_path_factory.mktemp("clip"))
    return str(config), str(weights)
