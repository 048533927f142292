"""open_clip image and text encoders, offline.

Model (``--clip-model``): a built-in open_clip architecture name (``open_clip.list_models()``, e.g.
``ViT-B-32``), or a path to a JSON model config: either an open_clip model config
(``{"embed_dim", "vision_cfg", "text_cfg", ...}``) or the ``open_clip_config.json`` found beside Hugging
Face open_clip checkpoints (``{"model_cfg": {...}, "preprocess_cfg": {...}}``). The network is built
from the config directly (never through open_clip's pretrained-tag machinery) and loaded with a local
checkpoint. Models whose text side needs a Hugging Face model or tokenizer (``hf_model_name`` /
``hf_tokenizer_name`` in ``text_cfg``, e.g. SigLIP) are refused: those would be downloaded. The others use
open_clip's ``SimpleTokenizer``, whose BPE vocabulary ships inside the open_clip package.

Weights (``--clip-weights PATH``, else ``$GENMETRICS_CLIP_WEIGHTS``; there is no default: no package ships
CLIP weights): an open_clip checkpoint read by ``open_clip.load_checkpoint`` with
``torch.load(weights_only=True)`` -- a state dict, or a dict with a ``"state_dict"`` entry, keys
optionally prefixed ``module.`` -- or a ``.safetensors`` file. A value that is not an existing file (a
pretrained tag such as ``laion2b_s34b_b79k``, ``hf-hub:...``) is refused at once.

Preprocessing is the model's own: open_clip's eval transform (resize the shortest side with bicubic
interpolation, centre crop, normalise with the OpenAI mean/std) at the model's image size, with the
``preprocess_cfg`` of a JSON config overriding those defaults. Images are decoded to RGB uint8 first, as
for every extractor.

Features: image embeddings are L2-normalised (as clean-fid's CLIP features and the CMMD reference
implementation), so FID/KID/precision-recall/CMMD on ``--extractor clip`` all see unit vectors; text
embeddings from ``encode_text`` are L2-normalised too. The ExtractorSpec records the architecture in its
name (``clip-ViT-B-32``, or ``clip-<config stem>-<config sha256[:8]>`` for a JSON config), the weights'
sha256, and the preprocessing in ``resize`` (``clip-preprocess``, with the sha256[:8] of the
preprocessing config appended when it differs from open_clip's defaults).

``fashion-clip`` (``--clip-model fashion-clip``) is the shipped domain CLIP: the open_clip config
``fashion_clip.json`` beside this module (a ViT with 4x4 patches on 28x28 inputs, a 3-layer text transformer,
24-token context) with the weights ``fashion_clip.safetensors`` (float16, trained by
``data_stats/train_fashion_clip.py`` on Fashion-MNIST captions), whose sha256 is checked on every load. It needs no
``--clip-weights`` (``$GENMETRICS_CLIP_WEIGHTS`` is not used for it; an explicit ``--clip-weights`` file of the same
architecture, e.g. a retrained one, is used instead and recorded by its sha256).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict
from open_clip.transformer import text_global_pool
from PIL import Image

from genmetrics.config import ExtractorSpec
from genmetrics.errors import ConfigError, WeightsError, spell
from genmetrics.features.extract import check_batch_size
from genmetrics.features.weights import WeightsFile, not_a_weights_file, sha256_file

CLIP_WEIGHTS_ENV = "GENMETRICS_CLIP_WEIGHTS"
DEFAULT_CLIP_MODEL = "ViT-B-32"
CLIP_PREPROCESS = "clip-preprocess"
_SCHEMAS = ("hf-hub:", "local-dir:")
_HF_TEXT_KEYS = ("hf_model_name", "hf_tokenizer_name")
FASHION_CLIP = "fashion-clip"
FASHION_CLIP_CONFIG = Path(__file__).with_name("fashion_clip.json")
FASHION_CLIP_WEIGHTS = Path(__file__).with_name("fashion_clip.safetensors")
FASHION_CLIP_SHA256 = "70b9ccd3540550808962d33ad555024cf3887a14493fbb1803998faa61ffd9ca"


@dataclass(frozen=True)
class ClipModelConfig:
    """A resolved ``clip_model``: what to build and how to preprocess for it."""

    arch: str  # the spec's architecture name: a built-in name or "<stem>-<sha8>"
    source: str  # the built-in name or the JSON file, for messages and provenance
    model_cfg: dict[str, Any]
    preprocess_cfg: dict[str, Any]  # overrides of open_clip's PreprocessCfg defaults (may be empty)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:8]


def resolve_clip_model(model: str) -> ClipModelConfig:
    """``clip_model`` (``--clip-model``): an open_clip architecture name or a JSON config file (see the module
    docstring)."""
    if model.startswith(_SCHEMAS):
        raise ConfigError(f"{spell('clip_model', repr(model))}: open_clip's hub/folder schemas are not used; pass "
                          f"{spell('clip_model', 'PATH/open_clip_config.json')} and "
                          f"{spell('clip_weights', 'PATH/<checkpoint file>')}")
    if model == FASHION_CLIP:
        loaded = json.loads(FASHION_CLIP_CONFIG.read_text(encoding="utf-8"))
        return ClipModelConfig(FASHION_CLIP, FASHION_CLIP, loaded["model_cfg"], loaded["preprocess_cfg"])
    path = Path(model).expanduser()
    if path.suffix.lower() == ".json" or path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{spell('clip_model', repr(model))}: cannot read the JSON model config "
                              f"({exc})") from None
        if isinstance(loaded, dict) and isinstance(loaded.get("model_cfg"), dict):
            model_cfg, preprocess_cfg = loaded["model_cfg"], loaded.get("preprocess_cfg") or {}
        else:
            model_cfg, preprocess_cfg = loaded, {}
        if not isinstance(model_cfg, dict):
            raise ConfigError(f"{spell('clip_model', repr(model))}: the JSON file holds no model config object")
        preprocess_cfg = model_cfg.pop("preprocess_cfg", preprocess_cfg)
        config = ClipModelConfig(f"{path.stem}-{_digest(model_cfg)}", str(path), model_cfg, preprocess_cfg)
    else:
        model_cfg = open_clip.get_model_config(model.replace("/", "-"))
        if model_cfg is None:
            raise ConfigError(f"{spell('clip_model', repr(model))} is neither an open_clip architecture nor a JSON "
                              "model config file; `python -c 'import open_clip; print(open_clip.list_models())'` "
                              "lists the names")
        config = ClipModelConfig(model.replace("/", "-"), model, model_cfg, {})
    missing = [key for key in ("embed_dim", "vision_cfg", "text_cfg") if key not in config.model_cfg]
    if missing:
        raise ConfigError(f"{spell('clip_model', repr(model))}: the model config lacks {', '.join(missing)}; give an "
                          "open_clip model config (embed_dim, vision_cfg, text_cfg)")
    hf = [key for key in _HF_TEXT_KEYS if key in config.model_cfg["text_cfg"]]
    if hf:
        raise ConfigError(f"{spell('clip_model', repr(model))} needs a Hugging Face text model/tokenizer (text_cfg "
                          f"{hf[0]}), which would be downloaded; choose an open_clip model with the built-in CLIP "
                          "tokenizer (e.g. ViT-B-32, ViT-L-14)")
    return config


def shipped_fashion_clip_weights() -> WeightsFile:
    """The shipped fashion-clip weights, their sha256 checked (WeightsError naming the file otherwise)."""
    how = "reinstall genmetrics to restore it, or retrain it with data_stats/train_fashion_clip.py and pass it as " \
        f"{spell('clip_weights', 'PATH')}"
    problem = not_a_weights_file(FASHION_CLIP_WEIGHTS)
    if problem:
        raise WeightsError(f"the shipped fashion-clip weights {str(FASHION_CLIP_WEIGHTS)!r} {problem}; {how}")
    sha = sha256_file(FASHION_CLIP_WEIGHTS)
    if sha != FASHION_CLIP_SHA256:
        raise WeightsError(f"the shipped fashion-clip weights {str(FASHION_CLIP_WEIGHTS)!r} have sha256 {sha}, "
                           f"expected {FASHION_CLIP_SHA256}; {how}")
    return WeightsFile(path=FASHION_CLIP_WEIGHTS, sha256=sha, kind="safetensors", verified=True)


def resolve_clip_weights(path: str | os.PathLike | None = None, model: str | None = None) -> WeightsFile:
    """``clip_weights`` (``--clip-weights``) or ``$GENMETRICS_CLIP_WEIGHTS``: an existing local checkpoint file,
    never a download. For ``model`` fashion-clip without a path: the shipped weights."""
    if path is None and model == FASHION_CLIP:
        return shipped_fashion_clip_weights()
    origin = spell("clip_weights", "...")
    if path is None:
        path, origin = os.environ.get(CLIP_WEIGHTS_ENV) or None, f"${CLIP_WEIGHTS_ENV}"
    how = (f"pass {spell('clip_weights', 'PATH')} (or set {CLIP_WEIGHTS_ENV}) to a local open_clip checkpoint file "
           f"(a state dict .pt/.bin/.pth or .safetensors) for {spell('clip_model', '...')}")
    if path is None:
        raise WeightsError(f"no CLIP weights given: {how}; genmetrics never downloads and no package ships "
                           "CLIP weights")
    resolved = Path(path).expanduser()
    problem = not_a_weights_file(resolved)
    if problem:
        tags = {tag for _, tag in open_clip.list_pretrained()}
        if str(path) in tags or str(path).startswith(("hf-hub:", "http://", "https://")):
            raise WeightsError(f"CLIP weights {str(path)!r} (from {origin}) name an open_clip pretrained download, and "
                               f"genmetrics never downloads: fetch that checkpoint elsewhere once, then {how}")
        raise WeightsError(f"CLIP weights {str(resolved)!r} (from {origin}) {problem}; {how}")
    suffix = resolved.suffix.lower()
    if suffix in (".npz", ".npy"):
        raise WeightsError(f"CLIP weights {str(resolved)!r}: big_vision .npz/.npy checkpoints are not supported; {how}")
    kind = "safetensors" if suffix == ".safetensors" else "state_dict"
    return WeightsFile(path=resolved, sha256=sha256_file(resolved), kind=kind, verified=False)


def build_clip_model(config: ClipModelConfig) -> torch.nn.Module:
    """The open_clip model class create_model would pick for ``config``, randomly initialised."""
    cfg = copy.deepcopy(config.model_cfg)
    custom_text = cfg.pop("custom_text", False)
    model_class = (open_clip.CoCa if "multimodal_cfg" in cfg else open_clip.CustomTextCLIP) if custom_text \
        else open_clip.CLIP
    try:
        return model_class(**cfg)
    except Exception as exc:  # unknown keys, inconsistent sizes, missing timm models ...
        raise ConfigError(f"{spell('clip_model', repr(config.source))} is not a valid open_clip model config "
                          f"({type(exc).__name__}: {exc})") from None


def _one_line(exc: Exception) -> str:
    """The most telling line of a (multi-line) torch loading error."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    return next((line for line in lines if "size mismatch" in line or "Missing key" in line), lines[0])[:300]


def load_clip_weights(model: torch.nn.Module, weights: WeightsFile, config: ClipModelConfig) -> None:
    """Load ``weights`` into ``model`` strictly; a file of another architecture or format is a WeightsError."""
    try:
        open_clip.load_checkpoint(model, str(weights.path), strict=True, weights_only=True)
    except Exception as exc:  # torch/safetensors raise many error types on foreign or broken files
        raise WeightsError(f"cannot load CLIP weights {str(weights.path)!r} into "
                           f"{spell('clip_model', repr(config.source))}: {_one_line(exc)}; pass the checkpoint of "
                           f"that architecture, or the {spell('clip_model', '...')} it was trained with") from None


def _square_size(size: Any, source: str) -> int:
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height != width:
        raise ConfigError(f"{spell('clip_model', repr(source))} has a non-square input size {height}x{width}, which "
                          "is not supported")
    return int(height)


class ClipExtractor:
    """open_clip image features (L2-normalised embeddings) and text embeddings for CLIPScore."""

    has_logits = False

    def __init__(self, model: str = DEFAULT_CLIP_MODEL, weights: str | None = None, *,
                 device: torch.device | str = "cpu") -> None:
        self.config = resolve_clip_model(model)
        self.weights = resolve_clip_weights(weights, model)
        self.weights_path = str(self.weights.path)
        self.net = build_clip_model(self.config)
        load_clip_weights(self.net, self.weights, self.config)
        self.net.eval()
        image_size = _square_size(getattr(self.net.visual, "image_size", None)
                                  or self.config.model_cfg["vision_cfg"].get("image_size", 224), self.config.source)
        merged = merge_preprocess_dict(PreprocessCfg(), {**self.config.preprocess_cfg, "size": image_size})
        self.preprocess_cfg = json.loads(json.dumps(merged))  # JSON form (lists), as recorded and compared
        self.transform = image_transform_v2(PreprocessCfg(**self.preprocess_cfg), is_train=False)
        text_cfg = self.config.model_cfg["text_cfg"]
        self.context_length = int(text_cfg.get("context_length", 77))
        self.tokenizer = open_clip.SimpleTokenizer(context_length=self.context_length,
                                                   **text_cfg.get("tokenizer_kwargs", {}))
        defaults = json.loads(json.dumps({**asdict(PreprocessCfg()), "size": image_size}))
        resize = CLIP_PREPROCESS if self.preprocess_cfg == defaults else \
            f"{CLIP_PREPROCESS}-{_digest(self.preprocess_cfg)}"
        self.spec = ExtractorSpec(name=f"clip-{self.config.arch}", weights_sha256=self.weights.sha256, resize=resize,
                                  image_size=image_size, dim=int(self.config.model_cfg["embed_dim"]))
        self.to(device)

    def __getstate__(self) -> dict:
        # DataLoader workers need only preprocess(): do not copy the network into them.
        return {"transform": self.transform}

    def __setstate__(self, state: dict) -> None:
        self.transform = state["transform"]

    def to(self, device: torch.device | str) -> "ClipExtractor":
        self.device = torch.device(device)
        self.net.to(self.device)
        return self

    def provenance(self) -> dict[str, Any]:
        """What a Result records about the CLIP model besides the ExtractorSpec."""
        return {"model": self.config.source, "weights_file": self.weights_path, "weights_sha256": self.weights.sha256,
                "preprocess": self.preprocess_cfg, "context_length": self.context_length,
                "embeddings": "L2-normalised", "open_clip": open_clip.__version__}

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (3, S, S) float32: open_clip's eval transform (resize, crop, normalise)."""
        return self.transform(Image.fromarray(image))

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, S, S) preprocessed -> {"features": (N, embed_dim) L2-normalised image embeddings}."""
        features = self.net.encode_image(batch.to(self.device, torch.float32))
        return {"features": F.normalize(features.float(), dim=-1)}

    def is_truncated(self, caption: str) -> bool:
        """Whether ``caption`` has more tokens than fit the text context (with start and end tokens)."""
        return len(self.tokenizer.encode(caption)) + 2 > self.context_length

    @torch.inference_mode()
    def encode_text_tokens(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Captions (truncated to the context) -> the text transformer's final-norm token states (N, L, width),
        the mask of real tokens (N, L) bool (start, words, end) and the L2-normalised text embeddings (N, E)
        that ``encode_text`` returns; L is the context length. For conditioning a generator on text."""
        net, tokens = self.net, self.tokenizer(captions).to(self.device)
        states = net.token_embedding(tokens) + net.positional_embedding
        states = net.ln_final(net.transformer(states, attn_mask=net.attn_mask))
        pooled = text_global_pool(states, tokens, net.text_pool_type)
        pooled = net.text_projection(pooled) if isinstance(net.text_projection, torch.nn.Linear) else \
            pooled @ net.text_projection
        return states, tokens != 0, F.normalize(pooled.float(), dim=-1)

    @torch.inference_mode()
    def encode_text(self, captions: list[str], batch_size: int = 32) -> np.ndarray:
        """Captions -> (N, embed_dim) float32 L2-normalised text embeddings; long captions are truncated."""
        check_batch_size(batch_size)
        out = [np.zeros((0, self.spec.dim), np.float32)]
        for start in range(0, len(captions), batch_size):
            tokens = self.tokenizer(captions[start:start + batch_size]).to(self.device)
            out.append(F.normalize(self.net.encode_text(tokens).float(), dim=-1).cpu().numpy())
        return np.concatenate(out)
