"""The interface every reference generator implements: sampling, one training step, and its configuration.

Images are uint8 NHWC ``(N, 28, 28, 1)`` at the boundary and float NCHW in ``[-1, 1]`` inside the networks.
All randomness (weight initialisation, noise, labels) comes from explicit ``torch.Generator`` objects; noise is
drawn on the CPU, so samples do not depend on the device.
"""
from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from genmetrics.errors import ConfigError, phrase, spell

IMAGE_SHAPE = (28, 28, 1)
"""(H, W, C) of every model's images."""

PRECISIONS = ("bf16", "fp32")
"""Values of the ``precision`` hyper-parameter: the training step under bfloat16 autocast, or float32 throughout."""


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float in [-1, 1] -> (N, H, W, C) uint8 on the CPU: ``round((x + 1) * 127.5)``, clipped."""
    return ((images.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W, C) uint8 -> (N, C, H, W) float32 in [-1, 1]: ``x / 127.5 - 1``."""
    return images.permute(0, 3, 1, 2).float() / 127.5 - 1


_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _to_bool(value: Any) -> bool:
    """True/False, 1/0 or the strings true/false, yes/no, 1/0 -> bool; ValueError otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _BOOLEANS:
        return _BOOLEANS[value.strip().lower()]
    raise ValueError(value)


def spell_hparam(key: str, value: str) -> str:
    """Hyper-parameter ``key`` set to ``value`` as the caller passes it: ``hparams={'lr': 1e-4}`` to Python callers
    (``genmetrics_models.train.train``), ``-p lr=1e-4`` to CLI users (``genmetrics train``)."""
    return phrase(f"hparams={{{key!r}: {value}}}", spell("hparams", f"{key}={value}"))


def resolve_hparams(model: str, defaults: Mapping[str, Any], choices: Mapping[str, Sequence[str]],
                    overrides: Mapping[str, Any], nonnegative: Sequence[str] = ()) -> dict[str, Any]:
    """``defaults`` updated with ``overrides``, each converted to its default's type (bool, int, float, str).

    ConfigError for an unknown name, a value of the wrong type, an int below 1 (below 0 for the names in
    ``nonnegative``), a negative or infinite float, or a value outside ``choices``.
    """
    resolved = dict(defaults)
    for key, value in overrides.items():
        if key not in defaults:
            raise ConfigError(f"unknown hyper-parameter {key!r} for model {model!r}; it has "
                              f"{', '.join(f'{k}={v}' for k, v in defaults.items())}")
        kind = type(defaults[key])
        try:
            if kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            converted = _to_bool(value) if kind is bool else kind(value)
        except (TypeError, ValueError):
            what = {bool: "true or false", int: "an integer", float: "a number"}.get(kind, kind.__name__)
            raise ConfigError(f"hyper-parameter {key}={value!r} of model {model!r} must be {what}") from None
        least = 0 if key in nonnegative else 1
        if (kind is int and converted < least) or (kind is float and not 0 <= converted < math.inf):
            what = ("an integer >= 0" if least == 0 else "a positive integer") if kind is int else "a finite number >= 0"
            raise ConfigError(f"hyper-parameter {key}={value!r} of model {model!r} must be {what}")
        if key in choices and converted not in choices[key]:
            raise ConfigError(f"hyper-parameter {key}={value!r} of model {model!r}: choose one of "
                              f"{', '.join(choices[key])}")
        resolved[key] = converted
    return resolved


def init_weights(module: nn.Module, generator: torch.Generator, std: float | None = None) -> None:
    """Redraw every conv, linear, attention, embedding and batch-norm parameter of ``module`` from ``generator``.

    ``std`` given: weights and embeddings ~ N(0, std) and batch-norm scales ~ N(1, std), biases 0 (the DCGAN
    recipe); ``std=None``: PyTorch's default (Kaiming-uniform weights, uniform biases, N(0, 1) embeddings, Xavier-uniform
    attention input projections), seeded.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if std is not None:
                nn.init.normal_(layer.weight, 0.0, std, generator=generator)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
            else:
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                if layer.bias is not None:
                    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(layer.weight)
                    bound = 1 / math.sqrt(fan_in)
                    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        elif isinstance(layer, nn.MultiheadAttention):  # its input projections are bare parameters
            for weight in (layer.in_proj_weight, layer.q_proj_weight, layer.k_proj_weight, layer.v_proj_weight):
                if weight is not None:
                    nn.init.xavier_uniform_(weight, generator=generator)
            if layer.in_proj_bias is not None:
                nn.init.zeros_(layer.in_proj_bias)
        elif isinstance(layer, nn.Embedding):
            nn.init.normal_(layer.weight, 0.0, 1.0 if std is None else std, generator=generator)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if std is not None:
                nn.init.normal_(layer.weight, 1.0, std, generator=generator)
            else:
                nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


class Generator(nn.Module, abc.ABC):
    """A trainable image generator for ``(28, 28, 1)`` images.

    Subclasses set ``name``, ``defaults`` (hyper-parameters: every model has ``batch_size`` and ``lr``),
    optionally ``choices``, ``nonnegative`` (int hyper-parameters that may be 0), ``conditional`` (a model whose
    ``conditional`` hyper-parameter decides sets it in ``build``) and ``sample_options``, and implement ``build``,
    ``make_optimizers``, ``generate`` and ``train_step``. The constructor builds the networks, draws their weights
    from ``generator`` and creates the optimizers (``self.optimizers``, saved in checkpoints with the weights).
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]]
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    nonnegative: ClassVar[tuple[str, ...]] = ()
    conditional: bool = False
    sample_options: ClassVar[dict[str, type]] = {}
    """Keyword options of ``sample`` (and ``generate``) by name, with their types; none by default."""
    init_std: ClassVar[float | None] = None  # see init_weights
    datasets: ClassVar[tuple[str, ...] | None] = None
    """The training datasets the model supports (None: every dataset)."""
    legacy_hparams: ClassVar[dict[str, Any]] = {"precision": "fp32"}
    """Values of hyper-parameters added after checkpoints were written without them: what those checkpoints'
    runs used (:meth:`stored_hparams`)."""

    def __init__(self, hparams: Mapping[str, Any] | None = None, *, num_classes: int = 10,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.hparams = resolve_hparams(self.name, self.defaults, self.choices, hparams or {}, self.nonnegative)
        self.num_classes = num_classes
        self.build()
        init_weights(self, generator if generator is not None else torch.Generator().manual_seed(0), self.init_std)
        self.optimizers: dict[str, torch.optim.Optimizer] = self.make_optimizers()

    @classmethod
    def stored_hparams(cls, hparams: Mapping[str, Any]) -> dict[str, Any]:
        """A checkpoint's recorded ``hparams`` with the ``legacy_hparams`` this model has filled in where missing,
        so that an older run keeps training (and resuming) as it did."""
        legacy = {key: value for key, value in cls.legacy_hparams.items() if key in cls.defaults}
        return {**legacy, **hparams}

    def precision_context(self) -> contextlib.AbstractContextManager[Any]:
        """Where ``train_step`` runs: bfloat16 autocast on the model's device for ``precision=bf16`` (convolutions
        and matrix products in bfloat16, weights, optimizer state and reductions in float32), else nothing. Its
        weight-cast cache is off: with it, every forward of a step after an in-place optimizer update would reuse the
        bfloat16 copy of the weights from before it (a WGAN critic stuck at its first of n_critic updates)."""
        if self.hparams.get("precision") == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()

    def warm_start(self, source: Generator) -> None:
        """Copy ``source``'s weights, EMA and buffers into this model of the same architecture (hyper-parameters
        that only steer training may differ); RuntimeError where they do not fit."""
        self.load_state_dict(source.state_dict())

    def config(self) -> dict[str, Any]:
        """What rebuilds this model: name, hyper-parameters, number of classes, image shape (JSON-ready)."""
        return {"model": self.name, "hparams": dict(self.hparams), "num_classes": self.num_classes,
                "image_shape": list(IMAGE_SHAPE)}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def batches_per_step(self) -> int:
        """Batches of ``batch_size`` images one ``train_step`` consumes (WGAN critics take several)."""
        return 1

    @abc.abstractmethod
    def build(self) -> None:
        """Create the networks from ``self.hparams`` and ``self.num_classes``."""

    @abc.abstractmethod
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers ``train_step`` uses, by name."""

    @abc.abstractmethod
    def generate(self, n: int, generator: torch.Generator, labels: torch.Tensor | None,
                 **options: Any) -> torch.Tensor:
        """(n, 1, 28, 28) float images in [-1, 1]; ``labels`` (n,) long for conditional models, else None;
        ``options``: what ``check_sample_options`` returned (empty for a model without ``sample_options``)."""

    @abc.abstractmethod
    def train_step(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        """One update of every network on ``images`` (batches_per_step * batch_size, 1, 28, 28) float in
        [-1, 1] with their ``labels`` (B,) long; returns the losses by name."""

    def noise(self, n: int, generator: torch.Generator, dim: int) -> torch.Tensor:
        """(n, dim) standard normal, drawn on the CPU from ``generator`` and moved to the model's device."""
        return torch.randn(n, dim, generator=generator).to(self.device)

    def check_labels(self, n: int, labels: Any, generator: torch.Generator) -> torch.Tensor | None:
        """``labels`` as a (n,) long tensor on the model's device; for a conditional model without labels,
        uniform random labels from ``generator``; None for an unconditional model (which refuses labels)."""
        if not self.conditional:
            if labels is not None:
                raise ConfigError(f"model {self.name!r} is unconditional and takes no labels (train cgan for "
                                  "class-conditional samples)")
            return None
        if labels is None:
            return torch.randint(self.num_classes, (n,), generator=generator).to(self.device)
        labels = torch.as_tensor(labels)
        if labels.shape != (n,) or labels.is_floating_point() or labels.is_complex():
            raise ConfigError(f"labels must be {n} integers (one per sample), got shape {tuple(labels.shape)} "
                              f"of dtype {labels.dtype}")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ConfigError(f"labels must lie in 0..{self.num_classes - 1}, got {labels.min()}..{labels.max()}")
        return labels.long().to(self.device)

    def check_sample_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` of ``sample`` without the None values, each converted to its type in ``sample_options``;
        ConfigError naming any option this model does not take. Models with options override this to check their
        values and fill in their defaults."""
        given = {key: value for key, value in options.items() if value is not None}
        unknown = [key for key in given if key not in self.sample_options]
        if unknown:
            takes = (f"its options are {', '.join(spell(key, '...') for key in self.sample_options)}"
                     if self.sample_options else "it takes none")
            raise ConfigError(f"model {self.name!r} has no sampling option "
                              f"{', '.join(spell(key, '...') for key in unknown)}; {takes}")
        converted = {}
        for key, value in given.items():
            kind = self.sample_options[key]
            if kind is int and isinstance(value, float) and not value.is_integer():
                raise ConfigError(f"sampling option {key}={value!r} of model {self.name!r} must be an integer")
            try:
                converted[key] = kind(value)
            except (TypeError, ValueError):
                raise ConfigError(f"sampling option {key}={value!r} of model {self.name!r} must be "
                                  f"{'an integer' if kind is int else 'a number'}") from None
        return converted

    def sample(self, n: int, generator: torch.Generator | None = None, labels: Any = None,
               **options: Any) -> torch.Tensor:
        """``n`` images (n, 28, 28, 1) uint8 on the CPU, drawn in eval mode from ``generator`` (default: a
        torch.Generator seeded 0). ``labels``: (n,) ints in 0..num_classes-1 for conditional models (default:
        uniform random labels from ``generator``). ``options``: the model's ``sample_options`` (None: its default),
        e.g. ddpm's ``guidance``, ``classifier_scale`` and ``sampling_steps``."""
        options = self.check_sample_options(options)
        if n < 1:
            raise ConfigError(f"the number of samples must be at least 1, got {n}")
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        labels = self.check_labels(n, labels, generator)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return to_uint8(self.generate(n, generator, labels, **options))
        finally:
            self.train(was_training)
