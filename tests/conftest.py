"""Shared fixtures: the real TF-Inception extractor (session-wide) and small deterministic images."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from genmetrics.features.inception import InceptionExtractor, torch_fidelity_state_dict


@pytest.fixture(scope="session")
def inception() -> InceptionExtractor:
    """TF-Inception with the installed fid-helper weights (pool3 only)."""
    return InceptionExtractor()


@pytest.fixture(scope="session")
def logits_weights(tmp_path_factory, inception) -> str:
    """A torch-fidelity-format state dict: default_1's tensors plus a seeded random 1008-way fc layer.

    Its sha256 is not a known release, so it loads only with trust_weights=True.
    """
    state, _ = torch_fidelity_state_dict(inception.weights)
    generator = torch.Generator().manual_seed(0)
    state["fc.weight"] = torch.randn(state["fc.weight"].shape, generator=generator) * 0.05
    state["fc.bias"] = torch.randn(state["fc.bias"].shape, generator=generator) * 0.05
    path = tmp_path_factory.mktemp("weights") / "inception-with-logits.pth"
    torch.save(state, path)
    return str(path)



@pytest.fixture(scope="session", autouse=True)
def feature_cache_dir(tmp_path_factory) -> Iterator[str]:
    """The suite's feature cache: a session temp folder, never the user's ~/.cache/genmetrics (tests that
    count cache hits set their own folder)."""
    path = str(tmp_path_factory.mktemp("feature-cache"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENMETRICS_CACHE_DIR", path)
        yield path


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> tuple[str, str]:
    """(JSON model config, weights file) of a tiny random-weight open_clip model (image size 32)."""
    from tests.clip_model import save_tiny_clip

    config, weights = save_tiny_clip(tmp_path_factory.mktemp("clip"))
    return str(config), str(weights)
