"""DINOv2 ViT image features (facebookresearch/dinov2's hub backbones), offline, as dgm-eval computes them.

Network (``--dinov2-arch``): the official hub backbones ``dinov2_vits14``, ``vitb14``, ``vitl14`` (default) and
``vitg14``: img_size 518 (a 37 x 37 position-embedding grid), patch 14, LayerScale (init_values 1.0), no
registers, block_chunks 0, interpolate_offset 0.1, no antialias; ViT-g/14 has a SwiGLU MLP whose hidden size is the
official ``(int(4 D * 2 / 3) + 7) // 8 * 8`` (4096). Features: the final-norm CLS token, what the hub model's
``model(x)`` returns (384 / 768 / 1024 / 1536-d), not L2-normalised: dgm-eval computes FD_DINOv2 on the raw CLS
features.

Weights (``--dinov2-weights PATH``, else ``$GENMETRICS_DINOV2_WEIGHTS``; no default, nothing is ever downloaded): the
official release checkpoint (``dinov2_vitl14_pretrain.pth`` ...: a state dict read with
``torch.load(weights_only=True)``, also under a ``"state_dict"`` key and with ``module.`` prefixes) or a
``.safetensors`` file of the same tensors. Every key and shape the official module loads strictly is checked; the
first missing, unexpected or mis-shaped key is named with its shapes, and the architecture the file fits, if any.
The file's sha256 is in the ExtractorSpec, so statistics from other weights are refused.

Preprocessing (``--resize``), dgm-eval's ``DINOv2Encoder.transform``: ``pil-bicubic`` (default): torchvision's
``Resize((224, 224), BICUBIC)`` on the PIL image (PIL's antialiased bicubic on uint8), ``ToTensor`` and the ImageNet
mean/std; ``clean``: per-channel float PIL bicubic as clean-fid, clipped to [0, 255], / 255, the same normalisation.

Computation (``Dinov2Trunk``): the official forward, with the position embedding resized once per input size exactly
as the official ``interpolate_pos_encoding`` (``resize_pos_embed``: bicubic at the scale factor (16 + 0.1) / 37, no
antialias), attention through ``scaled_dot_product_attention``, the patch embedding as a matmul, LayerScale folded
into the linear layer before it, the last block on the CLS token alone past its keys and values (only that token is
returned), and on the CPU chunks of ``CPU_CHUNK`` images on single-threaded workers (``features.cpu.map_chunks``).
On a GPU the matmuls run in full fp32 (no TF32). Features match the official module within float rounding (~1e-6).
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from genmetrics.config import DINOV2_RESIZE_MODES, ExtractorSpec
from genmetrics.errors import ConfigError, WeightsError, spell
from genmetrics.features.cpu import map_chunks
from genmetrics.features.inception import resize_clean
from genmetrics.features.weights import WeightsFile, not_a_weights_file, sha256_file

DINOV2_WEIGHTS_ENV = "GENMETRICS_DINOV2_WEIGHTS"
DEFAULT_DINOV2_ARCH = "vitl14"
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYER_NORM_EPS = 1e-6
INTERPOLATE_OFFSET = 0.1
RELEASE_URL = "https://dl.fbaipublicfiles.com/dinov2"
CPU_CHUNK = 4
"""Images per chunk on the CPU (``features.cpu.map_chunks``); see ``benchmarks/dinov2_speed.py``."""


@dataclass(frozen=True)
class Dinov2Arch:
    """A DINOv2 ViT: width, depth, heads, MLP kind ("mlp" or "swiglu"), patch size and position-embedding grid."""

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    ffn: str = "mlp"
    patch: int = 14
    grid: int = 37  # img_size 518 / patch 14

    @property
    def hidden(self) -> int:
        """The MLP's hidden width: 4 D, or for SwiGLU the official (int(4 D * 2 / 3) + 7) // 8 * 8."""
        hidden = 4 * self.embed_dim
        return (int(hidden * 2 / 3) + 7) // 8 * 8 if self.ffn == "swiglu" else hidden

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor of the official release checkpoint, in its order -> its shape."""
        d, h, p = self.embed_dim, self.hidden, self.patch
        shapes: dict[str, tuple[int, ...]] = {
            "cls_token": (1, 1, d), "pos_embed": (1, 1 + self.grid ** 2, d), "mask_token": (1, d),
            "patch_embed.proj.weight": (d, 3, p, p), "patch_embed.proj.bias": (d,)}
        mlp = ({"mlp.w12.weight": (2 * h, d), "mlp.w12.bias": (2 * h,), "mlp.w3.weight": (d, h), "mlp.w3.bias": (d,)}
               if self.ffn == "swiglu" else
               {"mlp.fc1.weight": (h, d), "mlp.fc1.bias": (h,), "mlp.fc2.weight": (d, h), "mlp.fc2.bias": (d,)})
        block = {"norm1.weight": (d,), "norm1.bias": (d,), "attn.qkv.weight": (3 * d, d), "attn.qkv.bias": (3 * d,),
                 "attn.proj.weight": (d, d), "attn.proj.bias": (d,), "ls1.gamma": (d,), "norm2.weight": (d,),
                 "norm2.bias": (d,), **mlp, "ls2.gamma": (d,)}
        for i in range(self.depth):
            shapes.update({f"blocks.{i}.{key}": shape for key, shape in block.items()})
        return {**shapes, "norm.weight": (d,), "norm.bias": (d,)}


ARCHS: dict[str, Dinov2Arch] = {arch.name: arch for arch in (  # keyed by config.DINOV2_ARCHS (tested)
    Dinov2Arch("vits14", 384, 12, 6), Dinov2Arch("vitb14", 768, 12, 12), Dinov2Arch("vitl14", 1024, 24, 16),
    Dinov2Arch("vitg14", 1536, 40, 24, ffn="swiglu"))}


def resolve_arch(arch: str | Dinov2Arch) -> Dinov2Arch:
    """``dinov2_arch`` (``--dinov2-arch``): a name of ``ARCHS``, or a ``Dinov2Arch`` as it is."""
    if isinstance(arch, Dinov2Arch):
        return arch
    if arch not in ARCHS:
        raise ConfigError(f"unknown {spell('dinov2_arch', str(arch))}; choose one of {', '.join(ARCHS)}")
    return ARCHS[arch]


def how_to_get(arch: Dinov2Arch) -> str:
    """How to provide the weights of ``arch``, naming the argument as the caller writes it."""
    name = f"dinov2_{arch.name}"
    return (f"pass {spell('dinov2_weights', 'PATH')} (or set {DINOV2_WEIGHTS_ENV}) to the official release "
            f"checkpoint {name}_pretrain.pth ({RELEASE_URL}/{name}/{name}_pretrain.pth, fetched once elsewhere) or a "
            f".safetensors file of its tensors, or choose the {spell('dinov2_arch', '...')} of your file")


def resolve_dinov2_weights(path: str | os.PathLike | None, arch: Dinov2Arch) -> WeightsFile:
    """``dinov2_weights`` (``--dinov2-weights``) or ``$GENMETRICS_DINOV2_WEIGHTS``: an existing local file, never a
    download; its sha256 is computed (no release hash is known here, so ``verified`` is False)."""
    origin = spell("dinov2_weights", "...")
    if path is None:
        path, origin = os.environ.get(DINOV2_WEIGHTS_ENV) or None, f"${DINOV2_WEIGHTS_ENV}"
    if path is None:
        raise WeightsError(f"no DINOv2 weights given: {how_to_get(arch)}; genmetrics never downloads and no package "
                           "ships DINOv2 weights")
    resolved = Path(path).expanduser()
    problem = not_a_weights_file(resolved)
    if problem:
        raise WeightsError(f"DINOv2 weights {str(resolved)!r} (from {origin}) {problem}; {how_to_get(arch)}")
    kind = "safetensors" if resolved.suffix.lower() == ".safetensors" else "state_dict"
    return WeightsFile(path=resolved, sha256=sha256_file(resolved), kind=kind, verified=False)


def _one_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def read_state_dict(weights: WeightsFile, arch: Dinov2Arch) -> dict[str, torch.Tensor]:
    """The tensors of ``weights`` (a torch state dict, also under "state_dict" and with "module." prefixes, or a
    safetensors file); WeightsError for a file that cannot be read (truncated, another format)."""
    try:
        if weights.kind == "safetensors":
            state = safetensors.torch.load_file(str(weights.path))
        else:
            state = torch.load(weights.path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many types on truncated or foreign files
        raise WeightsError(f"cannot read DINOv2 weights {str(weights.path)!r} ({_one_line(exc)}): the file is "
                           f"truncated or not a torch/safetensors checkpoint; {how_to_get(arch)}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise WeightsError(f"DINOv2 weights {str(weights.path)!r} hold no state dict of tensors; {how_to_get(arch)}")
    return {key.removeprefix("module."): value for key, value in state.items()}


def _fits(state: dict[str, torch.Tensor], arch: Dinov2Arch) -> bool:
    expected = arch.shapes()
    return state.keys() == expected.keys() and all(tuple(state[k].shape) == s for k, s in expected.items())


def check_state_dict(state: dict[str, torch.Tensor], arch: Dinov2Arch, path: str) -> None:
    """WeightsError naming the first key of ``arch``'s checkpoint that ``state`` lacks or holds in another shape,
    or the first key it has in excess; with the architecture the file fits, if one does."""
    expected = arch.shapes()
    problem = next((f"lacks {key} {shape}" if key not in state else
                    f"holds {key} as {tuple(state[key].shape)} where {arch.name} has {shape}"
                    for key, shape in expected.items() if key not in state or tuple(state[key].shape) != shape), None)
    problem = problem or next((f"holds {key} {tuple(state[key].shape)}, which {arch.name} has not (registers?)"
                               for key in state if key not in expected), None)
    if problem is None:
        return
    fitting = next((name for name, other in ARCHS.items() if other != arch and _fits(state, other)), None)
    hint = (f"it is a {fitting} checkpoint: pass {spell('dinov2_arch', fitting)}" if fitting else
            f"a truncated or foreign file? {how_to_get(arch)}")
    raise WeightsError(f"DINOv2 weights {path!r} do not fit {spell('dinov2_arch', arch.name)}: the file {problem} "
                       f"({len(state)} tensors, {arch.name} has {len(expected)}); {hint}")


def load_dinov2_state(weights: WeightsFile, arch: Dinov2Arch) -> dict[str, torch.Tensor]:
    """The checked float32 tensors of ``weights`` for ``arch``."""
    state = read_state_dict(weights, arch)
    check_state_dict(state, arch, str(weights.path))
    return {key: value.to(torch.float32) for key, value in state.items()}


def resize_pos_embed(pos_embed: torch.Tensor, height: int, width: int, patch: int) -> torch.Tensor:
    """(1, 1 + M * M, D) -> (1, 1 + (height // patch) * (width // patch), D): the official
    ``interpolate_pos_encoding`` (bicubic on the M x M grid at scale factors ((height // patch + 0.1) / M,
    (width // patch + 0.1) / M), no antialias; the CLS entry as it is; the original at M x M and a square input)."""
    n = pos_embed.shape[1] - 1
    rows, cols = height // patch, width // patch
    if rows * cols == n and height == width:
        return pos_embed
    side = int(math.sqrt(n))
    dim = pos_embed.shape[-1]
    pos = pos_embed.float()
    scale = (float(rows + INTERPOLATE_OFFSET) / side, float(cols + INTERPOLATE_OFFSET) / side)
    grid = F.interpolate(pos[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2), scale_factor=scale,
                         mode="bicubic", antialias=False)
    if grid.shape[-2:] != (rows, cols):
        raise ConfigError(f"DINOv2 position embedding: a {height}x{width} input gives a {tuple(grid.shape[-2:])} "
                          f"grid, not {rows}x{cols}")
    return torch.cat((pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, dim)), dim=1).to(pos_embed.dtype)


class _Block(torch.nn.Module):
    """One transformer block: x + ls1 * attn(norm1(x)), then + ls2 * mlp(norm2(x)); LayerScale folded into the
    attention's output projection and the MLP's last linear layer."""

    def __init__(self, state: dict[str, torch.Tensor], prefix: str, arch: Dinov2Arch) -> None:
        super().__init__()
        self.heads, self.swiglu = arch.num_heads, arch.ffn == "swiglu"
        first, last = ("mlp.w12", "mlp.w3") if self.swiglu else ("mlp.fc1", "mlp.fc2")
        gamma1, gamma2 = state[f"{prefix}ls1.gamma"], state[f"{prefix}ls2.gamma"]
        tensors = {
            "norm1_w": state[f"{prefix}norm1.weight"], "norm1_b": state[f"{prefix}norm1.bias"],
            "qkv_w": state[f"{prefix}attn.qkv.weight"], "qkv_b": state[f"{prefix}attn.qkv.bias"],
            "proj_w": state[f"{prefix}attn.proj.weight"] * gamma1[:, None],
            "proj_b": state[f"{prefix}attn.proj.bias"] * gamma1,
            "norm2_w": state[f"{prefix}norm2.weight"], "norm2_b": state[f"{prefix}norm2.bias"],
            "fc1_w": state[f"{prefix}{first}.weight"], "fc1_b": state[f"{prefix}{first}.bias"],
            "fc2_w": state[f"{prefix}{last}.weight"] * gamma2[:, None], "fc2_b": state[f"{prefix}{last}.bias"] * gamma2}
        for name, tensor in tensors.items():
            self.register_buffer(name, tensor.contiguous())

    def forward(self, x: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        """(B, N, D) -> (B, N, D), or with ``cls_only`` the CLS token's (B, 1, D) (attending to all N), whose linear
        layers then run image by image: a matmul of a few rows rounds differently for each row count, one row
        always alike, so an image's features do not depend on the batch it is in."""
        batch, tokens, dim = x.shape
        linear = _linear_rows if cls_only else F.linear
        h = F.layer_norm(x, (dim,), self.norm1_w, self.norm1_b, LAYER_NORM_EPS)
        qkv = F.linear(h, self.qkv_w, self.qkv_b).view(batch, tokens, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, N, head_dim) each
        if cls_only:
            q, x = q[:, :, :1], x[:, :1]
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, -1, dim)
        x = x + linear(attended, self.proj_w, self.proj_b)
        h = linear(F.layer_norm(x, (dim,), self.norm2_w, self.norm2_b, LAYER_NORM_EPS), self.fc1_w, self.fc1_b)
        if self.swiglu:
            gate, value = h.chunk(2, dim=-1)
            h = F.silu(gate) * value
        else:
            h = F.gelu(h)
        return x + linear(h, self.fc2_w, self.fc2_b)


def _linear_rows(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``F.linear`` of (B, 1, K) one image at a time -> (B, 1, M)."""
    return torch.cat([F.linear(row, weight, bias) for row in x.split(1)])


class Dinov2Trunk(torch.nn.Module):
    """A DINOv2 ViT from normalised images to the final-norm CLS token; the resized position embedding is
    computed once per input size and device."""

    def __init__(self, arch: Dinov2Arch, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.arch = arch
        self.register_buffer("patch_w", state["patch_embed.proj.weight"].reshape(arch.embed_dim, -1).contiguous())
        self.register_buffer("patch_b", state["patch_embed.proj.bias"])
        self.register_buffer("cls_token", state["cls_token"])
        self.register_buffer("pos_embed", state["pos_embed"])
        self.register_buffer("norm_w", state["norm.weight"])
        self.register_buffer("norm_b", state["norm.bias"])
        self.blocks = torch.nn.ModuleList(_Block(state, f"blocks.{i}.", arch) for i in range(arch.depth))
        self._pos: dict[tuple[int, int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}
        self._pos_lock = threading.Lock()  # the CPU chunks' workers share the cache

    def position(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(CLS token + its position embedding (1, 1, D), the patches' position embedding (1, n, D)) of an input of
        ``height`` x ``width``, computed once per size and device."""
        key = (height, width, self.pos_embed.device)
        with self._pos_lock:
            if key not in self._pos:
                pos = resize_pos_embed(self.pos_embed, height, width, self.arch.patch)
                self._pos[key] = (self.cls_token + pos[:, :1], pos[:, 1:].contiguous())
            return self._pos[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised float32, H and W multiples of the patch -> (B, D) final-norm CLS tokens."""
        batch, channels, height, width = x.shape
        p = self.arch.patch
        if height % p or width % p:
            raise ConfigError(f"DINOv2 takes inputs whose sides are multiples of {p}, got {height}x{width}")
        patches = x.reshape(batch, channels, height // p, p, width // p, p).permute(0, 2, 4, 1, 3, 5)
        cls_pos, patch_pos = self.position(height, width)
        tokens = F.linear(patches.reshape(batch, (height // p) * (width // p), -1), self.patch_w, self.patch_b)
        x = torch.cat((cls_pos.expand(batch, -1, -1), tokens + patch_pos), dim=1)
        for i, block in enumerate(self.blocks):
            x = block(x, cls_only=i == len(self.blocks) - 1)
        return F.layer_norm(x[:, 0], (self.arch.embed_dim,), self.norm_w, self.norm_b, LAYER_NORM_EPS)


@contextlib.contextmanager
def ieee_fp32_matmuls() -> Iterator[None]:
    """fp32 matmuls in full fp32 within this context (no TF32 on Ampere and newer GPUs, ~1e-3 relative error)."""
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(precision)


def preprocess_dinov2(image: np.ndarray, resize: str = "pil-bicubic") -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, 224, 224) float32: dgm-eval's DINOv2Encoder.transform (see the module docstring)."""
    if resize == "clean":
        pixels = torch.from_numpy(resize_clean(image, INPUT_SIZE)).permute(2, 0, 1).contiguous() / 255
    else:
        pil = TF.resize(Image.fromarray(image), [INPUT_SIZE, INPUT_SIZE], InterpolationMode.BICUBIC)
        pixels = TF.to_tensor(pil)
    return TF.normalize(pixels, IMAGENET_MEAN, IMAGENET_STD)


class Dinov2Extractor:
    """DINOv2 final-norm CLS features (raw, not L2-normalised) of official-layout weights."""

    has_logits = False

    def __init__(self, arch: str | Dinov2Arch = DEFAULT_DINOV2_ARCH, weights: str | None = None, *,
                 resize: str = "pil-bicubic", device: torch.device | str = "cpu") -> None:
        self.arch = resolve_arch(arch)
        if resize not in DINOV2_RESIZE_MODES:
            raise ConfigError(f"unknown {spell('resize', resize)} for {spell('extractor', 'dinov2')}; choose one of "
                              f"{', '.join(DINOV2_RESIZE_MODES)}")
        self.resize = resize
        self.weights = resolve_dinov2_weights(weights, self.arch)
        self.weights_path = str(self.weights.path)
        self.trunk = Dinov2Trunk(self.arch, load_dinov2_state(self.weights, self.arch)).eval()
        self.spec = ExtractorSpec(name=f"dinov2-{self.arch.name}", weights_sha256=self.weights.sha256, resize=resize,
                                  image_size=INPUT_SIZE, dim=self.arch.embed_dim)
        self.to(device)

    def __getstate__(self) -> dict:
        # DataLoader workers need only preprocess(): do not copy the network into them.
        return {"resize": self.resize}

    def __setstate__(self, state: dict) -> None:
        self.resize = state["resize"]

    def to(self, device: torch.device | str) -> "Dinov2Extractor":
        self.device = torch.device(device)
        self.trunk.to(self.device)
        return self

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (3, 224, 224) float32, resized and normalised as dgm-eval's DINOv2Encoder."""
        return preprocess_dinov2(image, self.resize)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, 224, 224) preprocessed -> {"features": (N, D) float32 final-norm CLS tokens}; on the CPU as chunks
        of at most ``CPU_CHUNK`` images, at least one per thread where N allows, each on a single-threaded worker
        (an image's features then do not depend on N), on a GPU with full-fp32 matmuls."""
        x = batch.to(self.device, torch.float32)
        if self.device.type == "cpu":
            chunk = max(1, min(CPU_CHUNK, math.ceil(len(x) / torch.get_num_threads())))
            return {"features": torch.cat(map_chunks(self.trunk, x, chunk, pooled=True))}
        with ieee_fp32_matmuls():
            return {"features": self.trunk(x)}
