"""DINOv2 features: a plain eager forward of the official network vs ours, same random weights, same inputs.

    python benchmarks/dinov2_speed.py [--arch vitl14 vitb14] [--n 16] [--rounds 3] [--batch 32] [--threads T]

For each architecture: random weights in the official release layout (seeded; saved to a temporary file, as a user's
checkpoint would be), and N random 224x224 inputs (already normalised). The plain forward is the official module's
structure written out eagerly: a Conv2d patch embedding, the position embedding interpolated at every forward,
attention as an explicit softmax(q k^T / sqrt(d)) v, LayerScale as a multiply, the whole batch on all threads. Ours is
``Dinov2Extractor.forward`` (fused scaled_dot_product_attention, cached position embedding, LayerScale folded, last
block on the CLS token, chunks per core on single-threaded workers); "ours, one pass" is the same network on the whole
batch in the calling thread (all threads), which separates the per-core chunks from the rest. Prints img/s of each
(median of rounds that interleave them), the ratios and the max abs feature difference.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genmetrics.features.dinov2 import ARCHS, Dinov2Arch, Dinov2Extractor


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D), softmax written out."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w12, self.w3 = nn.Linear(dim, 2 * hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class Block(nn.Module):
    def __init__(self, arch: Dinov2Arch) -> None:
        super().__init__()
        d = arch.embed_dim
        self.norm1, self.attn, self.ls1 = nn.LayerNorm(d, eps=1e-6), Attention(d, arch.num_heads), LayerScale(d)
        self.norm2, self.ls2 = nn.LayerNorm(d, eps=1e-6), LayerScale(d)
        self.mlp = SwiGLU(d, arch.hidden) if arch.ffn == "swiglu" else Mlp(d, arch.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, arch: Dinov2Arch) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, arch.embed_dim, arch.patch, stride=arch.patch)


class PlainDinov2(nn.Module):
    """The official DinoVisionTransformer's inference forward, eager, on the release checkpoint's names."""

    def __init__(self, arch: Dinov2Arch) -> None:
        super().__init__()
        d = arch.embed_dim
        self.arch, self.patch_embed = arch, PatchEmbed(arch)
        self.cls_token, self.mask_token = nn.Parameter(torch.zeros(1, 1, d)), nn.Parameter(torch.zeros(1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + arch.grid ** 2, d))
        self.blocks = nn.ModuleList(Block(arch) for _ in range(arch.depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)

    def interpolate_pos_encoding(self, height: int, width: int) -> torch.Tensor:
        m, d, p = self.arch.grid, self.arch.embed_dim, self.arch.patch
        grid = F.interpolate(self.pos_embed[:, 1:].reshape(1, m, m, d).permute(0, 3, 1, 2), mode="bicubic",
                             scale_factor=((height // p + 0.1) / m, (width // p + 0.1) / m), antialias=False)
        return torch.cat((self.pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, d)), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised -> (B, D) final-norm CLS tokens."""
        height, width = x.shape[-2:]
        tokens = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(len(x), -1, -1), tokens), dim=1)
        x = x + self.interpolate_pos_encoding(height, width)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]


def random_checkpoint(arch: Dinov2Arch, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors in the release layout, scaled like trained ones (unit-ish activations)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in arch.shapes().items():
        if key.endswith("gamma"):
            state[key] = torch.rand(shape, generator=g) * 0.5 + 0.05
        elif "norm" in key and key.endswith("weight"):
            state[key] = 1 + 0.1 * torch.randn(shape, generator=g)
        elif len(shape) > 1 and key not in ("cls_token", "pos_embed", "mask_token"):
            fan_in = int(torch.tensor(shape[1:]).prod())
            state[key] = torch.randn(shape, generator=g) / fan_in ** 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.02
    return state


def gflop_per_image(arch: Dinov2Arch, size: int = 224) -> float:
    """Multiply-adds x 2 of the full forward at ``size``: patch embedding, then per block and token qkv, projection
    and MLP (12 D^2, or 4 D^2 + 3 D hidden for SwiGLU) and attention (2 N D)."""
    d, patches = arch.embed_dim, (size // arch.patch) ** 2
    tokens = patches + 1
    mlp = 3 * d * arch.hidden if arch.ffn == "swiglu" else 2 * d * arch.hidden
    block = tokens * (4 * d * d + mlp) + 2 * tokens * tokens * d
    return 2 * (patches * 3 * arch.patch ** 2 * d + arch.depth * block) / 1e9


def timed(fn, x: torch.Tensor, batch: int) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    with torch.inference_mode():
        out = torch.cat([fn(x[i:i + batch]) for i in range(0, len(x), batch)])
    return out, time.perf_counter() - start


def bench(arch: Dinov2Arch, n: int, rounds: int, batch: int, folder: Path) -> None:
    state = random_checkpoint(arch)
    path = folder / f"dinov2_{arch.name}_pretrain.pth"
    torch.save(state, path)
    ours = Dinov2Extractor(arch, str(path))
    plain = PlainDinov2(arch).eval()
    plain.load_state_dict(state, strict=True)
    x = torch.randn(n, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    runs = {"plain eager": plain, "ours": lambda b: ours.forward(b)["features"], "ours, one pass": ours.trunk}
    timed(plain, x[:2], batch), timed(runs["ours"], x[:2], batch)  # warm-up
    speeds: dict[str, list[float]] = {name: [] for name in runs}
    outputs = {}
    for _ in range(rounds):
        for name, fn in runs.items():
            outputs[name], seconds = timed(fn, x, batch)
            speeds[name].append(n / seconds)
    median = {name: statistics.median(values) for name, values in speeds.items()}
    flop = gflop_per_image(arch)
    print(f"{arch.name} (D={arch.embed_dim}, depth {arch.depth}, {flop:.1f} GFLOP/img), N={n}, batch {batch}, "
          f"{rounds} rounds, {torch.get_num_threads()} threads")
    for name, value in median.items():
        print(f"  {name:<15} {value:7.3f} img/s = {value * flop:5.0f} GFLOP/s  "
              f"(rounds: {', '.join(f'{v:.3f}' for v in speeds[name])})")
    print(f"  ours / plain: {median['ours'] / median['plain eager']:.2f}x; one pass / plain: "
          f"{median['ours, one pass'] / median['plain eager']:.2f}x; chunks / one pass: "
          f"{median['ours'] / median['ours, one pass']:.2f}x")
    print(f"  max abs feature difference ours vs plain: {(outputs['ours'] - outputs['plain eager']).abs().max():.3g} "
          f"(feature max {outputs['plain eager'].abs().max():.3g}); chunks vs one pass: "
          f"{(outputs['ours'] - outputs['ours, one pass']).abs().max():.3g}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["vitl14", "vitb14"], choices=list(ARCHS))
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.arch:
            bench(ARCHS[name], args.n, args.rounds, args.batch, Path(folder))


if __name__ == "__main__":
    main()
