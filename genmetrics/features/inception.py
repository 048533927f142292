"""TF-Inception (2015-12-05) features: 2048-d pool3, and 1008 logits when the weights have them.

The network is torch-fidelity's ``FeatureExtractorInceptionV3`` (a port of the TF graph), loaded with
verified local weights; the TF1-compatible bilinear resize is torch-fidelity's too. Resizing happens per
image in ``preprocess`` (the resize is independent per image, so this equals torch-fidelity's batched
resize), which lets DataLoader workers do it and lets images of different sizes share a batch.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image
from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d, FeatureExtractorInceptionV3
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from genmetrics.config import PRECISIONS, RESIZE_MODES, ExtractorSpec
from genmetrics.errors import ConfigError, WeightsError
from genmetrics.features.weights import WeightsFile, resolve_inception_weights

INCEPTION_NAME = "inception-v3-tf"
INPUT_SIZE = 299
FEATURE_DIM = 2048
# Layers of torch-fidelity's module from the input to pool3, in order.
_TRUNK = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
    "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
    "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool",
)  # fmt: skip


class TorchFidelityInceptionV3(FeatureExtractorInceptionV3):
    """torch-fidelity's InceptionV3, built empty: its constructor's own loading is skipped (it would
    download when given no path), and verified weights are loaded afterwards with ``load_weights``."""

    def __init__(self, features_list: tuple[str, ...] = ("2048", "logits_unbiased")) -> None:
        placeholder = io.BytesIO()
        torch.save({}, placeholder)
        placeholder.seek(0)
        super().__init__("inception-v3-compat", list(features_list), feature_extractor_weights_path=placeholder)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # noqa: D102
        if not state_dict:  # the constructor's placeholder
            return None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def map_fid_helper_state(net: TorchFidelityInceptionV3, tf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map fid-helper's TorchScript tensors onto torch-fidelity's names.

    Both enumerate the 94 conv+batch-norm units in the same order (stem, then each Mixed block's branches);
    TF batch norm has no scale, so gamma = 1. The fc layer is absent there and is left at zero.
    """
    units = [name for name, module in net.named_modules() if isinstance(module, BasicConv2d)]
    prefixes = [key[: -len(".weight")] for key in tf_state if key.endswith(".weight")]
    if len(units) != len(prefixes):
        raise WeightsError(f"TorchScript weights have {len(prefixes)} conv layers, expected {len(units)}")
    state = {key: value.clone() for key, value in net.state_dict().items()}
    for unit, prefix in zip(units, prefixes):
        weight = tf_state[f"{prefix}.weight"]
        if state[f"{unit}.conv.weight"].shape != weight.shape:
            raise WeightsError(f"TorchScript layer {prefix} has shape {tuple(weight.shape)}, expected for {unit} "
                               f"{tuple(state[f'{unit}.conv.weight'].shape)}")
        state[f"{unit}.conv.weight"] = weight
        state[f"{unit}.bn.weight"] = torch.ones_like(tf_state[f"{prefix}.beta"])
        state[f"{unit}.bn.bias"] = tf_state[f"{prefix}.beta"]
        state[f"{unit}.bn.running_mean"] = tf_state[f"{prefix}.mean"]
        state[f"{unit}.bn.running_var"] = tf_state[f"{prefix}.var"]
    state["fc.weight"].zero_()
    state["fc.bias"].zero_()
    return state


def torch_fidelity_state_dict(weights: WeightsFile) -> tuple[dict[str, torch.Tensor], bool]:
    """``weights`` as a state dict in torch-fidelity's names, and whether it has the logits layer."""
    try:
        if weights.kind == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
                tf_state = torch.jit.load(str(weights.path), map_location="cpu").state_dict()
            tf_state = {key.removeprefix("net.layers."): value for key, value in tf_state.items()}
            return map_fid_helper_state(TorchFidelityInceptionV3(), tf_state), False
        return torch.load(weights.path, map_location="cpu", weights_only=True), True
    except WeightsError:
        raise
    except Exception as exc:  # malformed files surface as many different torch errors
        raise WeightsError(f"cannot load inception weights {str(weights.path)!r}: {exc}") from None


def load_torch_fidelity_inception(weights: WeightsFile) -> tuple[TorchFidelityInceptionV3, bool]:
    """torch-fidelity's module with ``weights`` loaded; returns (module, has_logits)."""
    state, has_logits = torch_fidelity_state_dict(weights)
    net = TorchFidelityInceptionV3()
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"inception weights {str(weights.path)!r} do not fit TF-Inception: {exc}") from None
    return net.eval(), has_logits


def fold_batch_norm(net: torch.nn.Module) -> None:
    """Fold every inference-mode batch norm into its conv (in place): w' = w * s, b' = beta - mean * s with
    s = gamma / sqrt(var + eps). Same function, one op less; changes features by ~1e-5 (float rounding)."""
    for unit in net.modules():
        if isinstance(unit, BasicConv2d) and isinstance(unit.bn, torch.nn.BatchNorm2d):
            bn = unit.bn
            scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
            unit.conv.weight = torch.nn.Parameter(unit.conv.weight * scale[:, None, None, None], requires_grad=False)
            unit.conv.bias = torch.nn.Parameter(bn.bias - bn.running_mean * scale, requires_grad=False)
            unit.bn = torch.nn.Identity()


def resize_clean(image: np.ndarray, size: int) -> np.ndarray:
    """clean-fid's resize: PIL bicubic (antialiased) per channel on float32, clipped to [0, 255].

    (H, W, 3) uint8 -> (size, size, 3) float32.
    """
    channels = [
        np.asarray(Image.fromarray(image[:, :, c].astype(np.float32), mode="F").resize((size, size), Image.BICUBIC))
        for c in range(image.shape[2])
    ]
    return np.stack(channels, axis=2).clip(0, 255)


class InceptionExtractor:
    """TF-Inception pool3 features (and logits with torch-fidelity's weights file)."""

    def __init__(
        self,
        weights: str | None = None,
        *,
        resize: str = "tf1",
        trust_weights: bool = False,
        precision: str = "fp32",
        device: torch.device | str = "cpu",
    ) -> None:
        if resize not in RESIZE_MODES:
            raise ConfigError(f"unknown resize mode {resize!r}; choose one of {', '.join(RESIZE_MODES)}")
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if precision == "fp16" and torch.device(device).type != "cuda":
            raise ConfigError("--precision fp16 needs a CUDA device (--device cuda); on a CPU use bf16")
        self.weights = resolve_inception_weights(weights, trust_weights=trust_weights)
        self.weights_path = str(self.weights.path)
        self.net, self.has_logits = load_torch_fidelity_inception(self.weights)
        fold_batch_norm(self.net)
        self.dtype = getattr(torch, PRECISIONS[precision])
        self.net.to(self.dtype).to(memory_format=torch.channels_last)
        self.net.fc.float()  # logits are computed from fp32 features
        self.resize = resize
        self.spec = ExtractorSpec(
            name=INCEPTION_NAME,
            weights_sha256=self.weights.sha256,
            resize=resize,
            image_size=INPUT_SIZE,
            dim=FEATURE_DIM,
            precision=PRECISIONS[precision],
        )
        self.to(device)

    def __getstate__(self) -> dict:
        # DataLoader workers need only preprocess(): do not copy the network into them.
        return {"resize": self.resize}

    def __setstate__(self, state: dict) -> None:
        self.resize = state["resize"]

    def to(self, device: torch.device | str) -> "InceptionExtractor":
        self.device = torch.device(device)
        self.net.to(self.device)
        return self

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (3, 299, 299) float32 in [0, 255]."""
        if self.resize == "clean":
            return torch.from_numpy(resize_clean(image, INPUT_SIZE)).permute(2, 0, 1).contiguous()
        chw = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0).to(torch.float32)
        resized = interpolate_bilinear_2d_like_tensorflow1x(chw, size=(INPUT_SIZE, INPUT_SIZE), align_corners=False)
        return resized[0]

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, 299, 299) float in [0, 255] -> {"features": (N, 2048), "logits": (N, 1008)}, float32.

        Channels-last memory layout with batch norm folded into the convs (see fold_batch_norm).
        """
        x = ((batch.to(self.device, torch.float32) - 128) / 128).to(self.dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        for layer in _TRUNK:
            x = getattr(self.net, layer)(x)
        features = torch.flatten(x, 1).float()
        out = {"features": features}
        if self.has_logits:
            out["logits"] = features.mm(self.net.fc.weight.T)  # torch-fidelity's "logits_unbiased", used for IS
        return out
