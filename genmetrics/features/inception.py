"""TF-Inception (2015-12-05) features: 2048-d pool3, and 1008 logits when the weights have them.

The network is torch-fidelity's ``FeatureExtractorInceptionV3`` (a port of the TF graph), loaded with
verified local weights and run by ``FusedInceptionTrunk``. The TF1-compatible bilinear resize computes
torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x`` bit for bit, 2x faster. Resizing happens per
image in ``preprocess`` (the resize is independent per image, so this equals torch-fidelity's batched
resize), which lets DataLoader workers do it and lets images of different sizes share a batch.
"""
from __future__ import annotations

import contextlib
import functools
import io
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from PIL import Image
from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d, FeatureExtractorInceptionV3

from genmetrics.config import PRECISIONS, RESIZE_MODES, ExtractorSpec
from genmetrics.errors import ConfigError, WeightsError, spell
from genmetrics.features.inception_fused import FusedInceptionTrunk, run_on_cpu
from genmetrics.features.weights import WeightsFile, resolve_inception_weights

INCEPTION_NAME = "inception-v3-tf"
INPUT_SIZE = 299
FEATURE_DIM = 2048
CPU_CHUNK = 4
"""Images per chunk on the CPU (see ``run_on_cpu``): on a 2-core AVX2 CPU, chunks of 4 on two single-threaded
workers ran 10% faster than chunks of 8 run one after the other on both threads, which ran 12-16% faster than
whole batches of 32."""


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


def native_cpu_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); elsewhere oneDNN emulates it, slowly."""
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def trunk_input(batch: torch.Tensor) -> torch.Tensor:
    """(N, 3, 299, 299) in [0, 255] -> the trunk's input: float32 in [-1, 1], channels-last."""
    return ((batch.to(torch.float32) - 128) / 128).contiguous(memory_format=torch.channels_last)


@contextlib.contextmanager
def ieee_fp32_convs() -> Iterator[None]:
    """cuDNN runs fp32 convs as TF32 by default on Ampere and newer GPUs (10-bit mantissa, ~1e-3 relative error);
    within this context they run in full fp32, as on the CPU and in torch-fidelity's CPU reference."""
    allowed = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = allowed


@functools.lru_cache(maxsize=32)
def _tf1_grid(in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TF1 bilinear sampling (align_corners=False) along one axis: (lower index, upper index, fraction), each
    (out_size,), computed as torch-fidelity computes them."""
    position = torch.arange(0, out_size, 1, dtype=torch.float32) * torch.tensor(in_size / out_size)
    lower = position.long()
    return lower, (lower + 1).clamp_max(in_size - 1), position - lower.float()


def resize_tf1(image: torch.Tensor, size: int) -> torch.Tensor:
    """TF1 ``resize_bilinear`` (align_corners=False), (C, H, W) uint8 or float32 -> (C, size, size) float32.

    The arithmetic of torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x`` (method "slow"), in the same
    order, so bit-identical (tested). The four corners are gathered along the longer axis first, then the
    shorter, in the input's dtype (gathering is exact) and only then made float32, so the memory beyond the
    input is at most 2 C size min(H, W) input elements: a 1 x 1,000,000 image costs megabytes, not the
    gigabytes of a (C, size, W) float32 intermediate. At H = W = size every fraction is 0 and each output is its
    input exactly, so the image is returned as float32 as it is.
    """
    if image.shape[1] == image.shape[2] == size:
        return image.to(torch.float32)
    y_low, y_high, dy = _tf1_grid(image.shape[1], size)
    x_low, x_high, dx = _tf1_grid(image.shape[2], size)
    if image.shape[1] >= image.shape[2]:  # rows first
        low, high = image.index_select(1, y_low), image.index_select(1, y_high)
        corners = (low.index_select(2, x_low), low.index_select(2, x_high),
                   high.index_select(2, x_low), high.index_select(2, x_high))
    else:  # columns first
        left, right = image.index_select(2, x_low), image.index_select(2, x_high)
        corners = (left.index_select(1, y_low), right.index_select(1, y_low),
                   left.index_select(1, y_high), right.index_select(1, y_high))
    top_left, top_right, bottom_left, bottom_right = (corner.to(torch.float32) for corner in corners)
    top = top_left + (top_right - top_left) * dx
    bottom = bottom_left + (bottom_right - bottom_left) * dx
    return top + (bottom - top) * dy[:, None]


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
            raise ConfigError(f"{spell('precision', 'fp16')} needs a CUDA device ({spell('device', 'cuda')}); on a "
                              f"CPU use {spell('precision', 'bf16')}")
        self.weights = resolve_inception_weights(weights, trust_weights=trust_weights)
        self.weights_path = str(self.weights.path)
        if precision == "bf16" and torch.device(device).type == "cpu" and not native_cpu_bf16():
            warnings.warn(f"this CPU has no native bf16 (AVX-512 BF16 or AMX): {spell('precision', 'bf16')} is "
                          "emulated and runs several times slower than the default fp32 here", stacklevel=2)
        net, has_logits = load_torch_fidelity_inception(self.weights)
        self.trunk = FusedInceptionTrunk(net, getattr(torch, PRECISIONS[precision]))
        self.logits_weight = net.fc.weight.detach() if has_logits else None  # (1008, 2048), fp32
        self.resize = resize
        self.spatial = False  # also sFID's spatial features (set by a run that asks for sfid)
        self.spec = ExtractorSpec(
            name=INCEPTION_NAME,
            weights_sha256=self.weights.sha256,
            resize=resize,
            image_size=INPUT_SIZE,
            dim=FEATURE_DIM,
            precision=PRECISIONS[precision],
        )
        self.to(device)

    @property
    def has_logits(self) -> bool:
        return self.logits_weight is not None

    @property
    def outputs(self) -> frozenset[str]:
        """The arrays ``forward`` returns (and a cache hit must hold)."""
        return frozenset({"features"} | ({"logits"} if self.has_logits else set()) | ({"spatial"} if self.spatial
                                                                                       else set()))

    def __getstate__(self) -> dict:
        # DataLoader workers need only preprocess(): do not copy the network into them.
        return {"resize": self.resize}

    def __setstate__(self, state: dict) -> None:
        self.resize = state["resize"]

    def to(self, device: torch.device | str) -> "InceptionExtractor":
        self.device = torch.device(device)
        self.trunk.to(self.device)
        if self.logits_weight is not None:
            self.logits_weight = self.logits_weight.to(self.device)
        return self

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (3, 299, 299) float32 in [0, 255]."""
        if self.resize == "clean":
            return torch.from_numpy(resize_clean(image, INPUT_SIZE)).permute(2, 0, 1).contiguous()
        return resize_tf1(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), INPUT_SIZE)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, 299, 299) float in [0, 255] -> {"features": (N, 2048), "logits": (N, 1008) with logits weights,
        "spatial": (N, 2023) when ``spatial``}, float32.

        The trunk is ``FusedInceptionTrunk``; on the CPU it runs on chunks of ``CPU_CHUNK`` images in parallel
        (``run_on_cpu``), on a GPU with its fp32 convs in full fp32 (``ieee_fp32_convs``).
        """
        x = trunk_input(batch.to(self.device))
        with ieee_fp32_convs():
            found = (run_on_cpu(self.trunk, x, CPU_CHUNK, self.spatial) if self.device.type == "cpu"
                     else self.trunk(x, self.spatial))
        features, spatial = found if self.spatial else (found, None)
        out = {"features": features} if spatial is None else {"features": features, "spatial": spatial}
        if self.logits_weight is not None:
            out["logits"] = features.mm(self.logits_weight.T)  # torch-fidelity's "logits_unbiased", used for IS
        return out
