"""Extractors by name: ``--extractor NAME`` selects one; each factory takes the device and its own options."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genmetrics.errors import ConfigError
from genmetrics.features.base import FeatureExtractor


def _inception(device: str, inception_weights: str | None = None, trust_weights: bool = False,
               resize: str = "tf1", precision: str = "fp32", **_: Any) -> FeatureExtractor:
    from genmetrics.features.inception import InceptionExtractor

    return InceptionExtractor(inception_weights, resize=resize, trust_weights=trust_weights, precision=precision,
                              device=device)


def _clip(device: str, clip_model: str | None = None, clip_weights: str | None = None, **_: Any) -> FeatureExtractor:
    from genmetrics.features.clip import DEFAULT_CLIP_MODEL, ClipExtractor

    return ClipExtractor(clip_model or DEFAULT_CLIP_MODEL, clip_weights, device=device)


def _fashion_cnn(device: str, trust_weights: bool = False, **_: Any) -> FeatureExtractor:
    from genmetrics.features.fashion_cnn import FashionCNNExtractor

    return FashionCNNExtractor(trust_weights=trust_weights, device=device)


EXTRACTORS: dict[str, Callable[..., FeatureExtractor]] = {"inception": _inception, "clip": _clip,
                                                          "fashion-cnn": _fashion_cnn}


def build_extractor(name: str, device: str = "cpu", **options: Any) -> FeatureExtractor:
    """The extractor called ``name`` on ``device``; ``options`` not used by that extractor are ignored."""
    try:
        factory = EXTRACTORS[name]
    except KeyError:
        raise ConfigError(f"unknown extractor {name!r}; choose one of {', '.join(EXTRACTORS)}") from None
    return factory(device, **options)
