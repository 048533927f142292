"""TF-Inception's pool3 trunk, rewritten for speed on the same weights: the same function as torch-fidelity's
``FeatureExtractorInceptionV3`` from the normalised input to pool3, within float rounding (~1e-5).

What changes against the module's own forward (each measured on a 2-core AVX2 CPU, see
``benchmarks/extract_vs_torch_fidelity.py``):

- batch norm is folded into the conv (``fold_batch_norm``) and ReLU runs inside the oneDNN conv;
- the 1x1 convs that read a block's input are stacked into one conv and their outputs split;
- each average-pool branch pools *after* its 1x1 conv instead of before: both are linear and the pool's
  weights sum to 1 (``count_include_pad=False``), so pool(conv(x) + b) = conv(pool(x)) + b, on 4-10x fewer
  channels. The max-pool branch of Mixed_7c (the TF graph's max instead of average) does not commute and
  keeps its order;
- the nested concatenations of the E blocks become one, and pool3 averages the last block directly;
- sFID's spatial features (guided-diffusion's ``mixed_6/conv:0``: Mixed_6d's branch1x1 after its batch norm and
  ReLU, first 7 channels, flattened H, W, C) are a slice of Mixed_6d's stacked 1x1 heads, taken in the same pass;
- on the CPU (``run_on_cpu``), the batch runs as chunks of a few images, one chunk per core at a time, each
  single-threaded: the chunk's activations stay in that core's cache and no op waits for the other cores.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d, FeatureExtractorInceptionV3

from genmetrics.config import SPATIAL_CHANNELS
from genmetrics.features.cpu import map_chunks


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


class FusedConv:
    """Conv + bias (+ ReLU) of one or more batch-norm-folded units that share their input and geometry; their
    output channels are stacked in the given order, weights cast to ``dtype``. fp32 on the CPU calls oneDNN's
    conv with ReLU fused."""

    def __init__(self, *units: BasicConv2d, relu: bool = True, dtype: torch.dtype = torch.float32) -> None:
        conv = units[0].conv
        weight = torch.cat([unit.conv.weight for unit in units]).to(dtype)
        self.weight = weight.contiguous(memory_format=torch.channels_last)
        self.bias = torch.cat([unit.conv.bias for unit in units]).to(dtype)
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.out_channels = [unit.conv.out_channels for unit in units]
        self.relu = relu

    def to(self, device: torch.device) -> None:
        """Move the weights to ``device`` (in place)."""
        self.weight, self.bias = self.weight.to(device), self.bias.to(device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) channels-last -> (N, sum(out_channels), H', W') channels-last."""
        if x.device.type == "cpu" and x.dtype == torch.float32:
            return torch.ops.mkldnn._convolution_pointwise(
                x, self.weight, self.bias, self.padding, self.stride, [1, 1], 1, "relu" if self.relu else "none", [], ""
            )
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        return F.relu_(y) if self.relu else y

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The stacked units' outputs, as channel slices (views: a conv that reads one makes its own dense copy,
        and a slice that goes straight into the block's concatenation is never copied twice)."""
        return self(x).split(self.out_channels, 1)


def _chain(convs: list[FusedConv], x: torch.Tensor) -> torch.Tensor:
    for conv in convs:
        x = conv(x)
    return x


def _avg_pool_branch(conv: FusedConv, x: torch.Tensor) -> torch.Tensor:
    """relu(conv1x1(avg_pool3x3(x))) computed as relu(avg_pool3x3(conv1x1(x))) (``conv`` has no ReLU)."""
    return F.avg_pool2d(conv(x), 3, 1, 1, count_include_pad=False).relu_()


class FusedInceptionTrunk:
    """(N, 3, 299, 299) channels-last float input in [-1, 1] -> (N, 2048) pool3 features (fp32, or ``dtype`` if
    wider), from the weights of the fp32 ``net`` (its batch norm folded in fp32, then cast), on ``net``'s device
    until ``to``.

    The convs run in ``dtype``, except that with bf16 the stem (the five convs before Mixed_5b, 24% of the
    FLOPs) runs in fp32 on the fp32 input; pool3 averages in fp32. Rounding the resized input and the stem's
    activations to bf16's 8-bit mantissa caused most of its error: it lowered the FID of 2,000 Fashion-MNIST
    test vs 2,000 train images by 1.04% with every conv in bf16, 0.79% with the first conv in fp32, 0.59% with
    the first three and 0.42% with the whole stem (bf16 rounding simulated on fp32 convs; oneDNN's bf16 convs
    then gave the same 0.42%: 12.3410 vs 12.3928). fp16 (11-bit mantissa) with every conv in fp16 moved it by
    0.02% (simulated), so it keeps the stem in fp16.
    """

    def __init__(self, net: FeatureExtractorInceptionV3, dtype: torch.dtype = torch.float32) -> None:
        fold_batch_norm(net)
        self.dtype = dtype
        self.stem_dtype = torch.float32 if dtype == torch.bfloat16 else dtype
        self.output_dtype = torch.promote_types(dtype, torch.float32)
        self.convs: list[FusedConv] = []

        def conv(*units: BasicConv2d, relu: bool = True, dtype: torch.dtype = dtype) -> FusedConv:
            self.convs.append(FusedConv(*units, relu=relu, dtype=dtype))
            return self.convs[-1]

        self.stem = [conv(unit, dtype=self.stem_dtype) for unit in (net.Conv2d_1a_3x3, net.Conv2d_2a_3x3,
                                                                     net.Conv2d_2b_3x3)]
        self.stem_2 = [conv(unit, dtype=self.stem_dtype) for unit in (net.Conv2d_3b_1x1, net.Conv2d_4a_3x3)]
        self.blocks: list[Callable[[torch.Tensor], torch.Tensor]] = [
            *(self._block_a(getattr(net, name), conv) for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d")),
            self._block_b(net.Mixed_6a, conv),
            *(self._block_c(getattr(net, name), conv) for name in ("Mixed_6b", "Mixed_6c")),
            self._block_c(net.Mixed_6d, conv, tap=True),
            self._block_c(net.Mixed_6e, conv),
            self._block_d(net.Mixed_7a, conv),
            self._block_e(net.Mixed_7b, conv, max_pool=False),
            self._block_e(net.Mixed_7c, conv, max_pool=True),
        ]

    def to(self, device: torch.device) -> "FusedInceptionTrunk":
        for conv in self.convs:
            conv.to(device)
        return self

    def __call__(self, x: torch.Tensor, spatial: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, 299, 299) -> pool3 (N, 2048); with ``spatial`` also sFID's features (N, 2023) in H, W, C order."""
        x = F.max_pool2d(_chain(self.stem, x.to(self.stem_dtype)), 3, 2)
        x = F.max_pool2d(_chain(self.stem_2, x), 3, 2).to(self.dtype)
        tapped = None
        for block in self.blocks:
            x = block(x)
            if isinstance(x, tuple):  # Mixed_6d: (its output, its branch1x1)
                x, tapped = x
        pool3 = x.mean((2, 3), dtype=self.output_dtype)
        if not spatial:
            return pool3
        head = tapped[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1)  # NHWC, as TF's graph holds it
        return pool3, head.reshape(len(head), -1).to(self.output_dtype)

    @staticmethod
    def _block_a(m: torch.nn.Module, conv: Callable[..., FusedConv]) -> Callable[[torch.Tensor], torch.Tensor]:
        """InceptionA (Mixed_5b-5d)."""
        return FusedInceptionTrunk._avg_pool_block(conv, (m.branch1x1, m.branch5x5_1, m.branch3x3dbl_1),
                                                   [m.branch5x5_2], [m.branch3x3dbl_2, m.branch3x3dbl_3], m.branch_pool)

    @staticmethod
    def _block_b(m: torch.nn.Module, conv: Callable[..., FusedConv]) -> Callable[[torch.Tensor], torch.Tensor]:
        branch3x3 = conv(m.branch3x3)
        branch3x3dbl = [conv(m.branch3x3dbl_1), conv(m.branch3x3dbl_2), conv(m.branch3x3dbl_3)]

        def block(x: torch.Tensor) -> torch.Tensor:
            return torch.cat([branch3x3(x), _chain(branch3x3dbl, x), F.max_pool2d(x, 3, 2)], 1)

        return block

    @staticmethod
    def _block_c(m: torch.nn.Module, conv: Callable[..., FusedConv], tap: bool = False
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
        """InceptionC (Mixed_6b-6e); with ``tap`` it returns (output, branch1x1)."""
        return FusedInceptionTrunk._avg_pool_block(
            conv, (m.branch1x1, m.branch7x7_1, m.branch7x7dbl_1), [m.branch7x7_2, m.branch7x7_3],
            [getattr(m, f"branch7x7dbl_{i}") for i in range(2, 6)], m.branch_pool, tap)

    @staticmethod
    def _avg_pool_block(conv: Callable[..., FusedConv], heads: tuple[BasicConv2d, BasicConv2d, BasicConv2d],
                        first_chain: list[BasicConv2d], second_chain: list[BasicConv2d], pool_unit: BasicConv2d,
                        tap: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
        """Blocks A and C: cat(1x1, chain after its 1x1 head, second chain after its 1x1 head, avg-pool + 1x1);
        with ``tap``, (that, the 1x1 branch)."""
        stacked_heads = conv(*heads)
        pool = conv(pool_unit, relu=False)
        first, second = [conv(unit) for unit in first_chain], [conv(unit) for unit in second_chain]

        def block(x: torch.Tensor) -> torch.Tensor:
            branch1x1, to_first, to_second = stacked_heads.split(x)
            out = torch.cat([branch1x1, _chain(first, to_first), _chain(second, to_second),
                             _avg_pool_branch(pool, x)], 1)
            return (out, branch1x1) if tap else out

        return block

    @staticmethod
    def _block_d(m: torch.nn.Module, conv: Callable[..., FusedConv]) -> Callable[[torch.Tensor], torch.Tensor]:
        heads = conv(m.branch3x3_1, m.branch7x7x3_1)
        branch3x3 = [conv(m.branch3x3_2)]
        branch7x7x3 = [conv(getattr(m, f"branch7x7x3_{i}")) for i in range(2, 5)]

        def block(x: torch.Tensor) -> torch.Tensor:
            to_3x3, to_7x7x3 = heads.split(x)
            return torch.cat([_chain(branch3x3, to_3x3), _chain(branch7x7x3, to_7x7x3), F.max_pool2d(x, 3, 2)], 1)

        return block

    @staticmethod
    def _block_e(m: torch.nn.Module, conv: Callable[..., FusedConv], *, max_pool: bool
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
        heads = conv(m.branch1x1, m.branch3x3_1, m.branch3x3dbl_1)
        branch3x3_2a, branch3x3_2b = conv(m.branch3x3_2a), conv(m.branch3x3_2b)
        branch3x3dbl_2 = conv(m.branch3x3dbl_2)
        branch3x3dbl_3a, branch3x3dbl_3b = conv(m.branch3x3dbl_3a), conv(m.branch3x3dbl_3b)
        pool = conv(m.branch_pool, relu=max_pool)

        def block(x: torch.Tensor) -> torch.Tensor:
            branch1x1, to_3x3, to_3x3dbl = heads.split(x)
            mid_3x3dbl = branch3x3dbl_2(to_3x3dbl)
            branch_pool = pool(F.max_pool2d(x, 3, 1, 1)) if max_pool else _avg_pool_branch(pool, x)
            return torch.cat([branch1x1, branch3x3_2a(to_3x3), branch3x3_2b(to_3x3), branch3x3dbl_3a(mid_3x3dbl),
                              branch3x3dbl_3b(mid_3x3dbl), branch_pool], 1)

        return block


def _cat(parts: list[torch.Tensor | tuple[torch.Tensor, ...]]) -> torch.Tensor | tuple[torch.Tensor, ...]:
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(column) for column in zip(*parts))
    return torch.cat(parts)


def run_on_cpu(trunk: FusedInceptionTrunk, x: torch.Tensor, chunk: int, spatial: bool = False
               ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``trunk`` on a CPU batch (N, 3, 299, 299) -> (N, 2048) (with ``spatial``: and (N, 2023)), as chunks of ``chunk`` images spread over
    ``torch.get_num_threads()`` single-threaded workers; in the calling thread when there are fewer chunks than
    threads (e.g. one image), where its ops use all the threads. An image's features do not depend on which
    (measured bit-identical on an AVX2 CPU; other CPUs may round differently, by ~1e-7)."""
    return _cat(map_chunks(lambda part: trunk(part, spatial), x, chunk))
