"""PixelCNN (van den Oord et al. 2016): an autoregressive model of 28x28 grayscale images, one 256-way softmax per
pixel, pixels in raster order (row by row, left to right).

``p(x) = prod_i p(x_i | x_<i)``: masked convolutions keep the logits at pixel i from seeing pixel i and every later
one. The first layer uses mask A (strictly earlier pixels), the later ones mask B (earlier pixels and the pixel's own
features, which already depend on earlier pixels only). Training minimises the negative log-likelihood of the
pixel values 0..255, reported in bits per dimension (``NLL / (784 ln 2)`` per image; a uniform model has 8).
Sampling draws the pixels one at a time, each from the softmax given the pixels drawn so far.

With ``-p conditional=true`` the model is ``p(x | y)``: each layer adds a learned per-class bias to its features.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from genmetrics_models.base import Generator

LEVELS = 256
"""Values of a pixel (uint8)."""


class MaskedConv2d(nn.Conv2d):
    """A same-padded ``k x k`` convolution whose output at (i, j) sees the inputs at pixels before (i, j) in raster
    order only (mask ``"A"``), or those and (i, j) itself (mask ``"B"``); all channels of a pixel are one variable.
    (N, in, H, W) -> (N, out, H, W)."""

    def __init__(self, mask: str, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        keep = torch.ones(kernel_size, kernel_size)
        centre = kernel_size // 2
        keep[centre, centre + (mask == "B"):] = 0
        keep[centre + 1:] = 0
        self.register_buffer("mask", keep, persistent=False)
        self.rows_above = centre  # how many rows above its output row the kernel reaches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding)


class PixelCNNNet(nn.Module):
    """inputs (N, in_channels, H, W) [+ labels (N,)] -> logits (N, classes, H, W), causal in raster order.

    A 7x7 mask-A convolution, ``layers`` residual 3x3 mask-B convolutions (ReLU before each), then ReLU-1x1-ReLU-1x1
    to the logits. With ``num_classes`` > 0, labels add a learned bias per class, layer and channel.
    """

    def __init__(self, in_channels: int, channels: int, layers: int, classes: int, num_classes: int = 0) -> None:
        super().__init__()
        self.first = MaskedConv2d("A", in_channels, channels, 7)
        self.blocks = nn.ModuleList(MaskedConv2d("B", channels, channels, 3) for _ in range(layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                                  nn.Conv2d(channels, classes, 1))
        self.class_bias = nn.Embedding(num_classes, channels * (layers + 1)) if num_classes else None
        self.rows_above = self.first.rows_above + sum(block.rows_above for block in self.blocks)
        """The logits of row i depend on the input rows i - rows_above .. i only."""

    def _class_biases(self, labels: torch.Tensor | None) -> list[torch.Tensor | float]:
        """Per layer: the labels' biases (N, channels, 1, 1), or 0 for an unconditional net."""
        if self.class_bias is None:
            return [0.0] * (len(self.blocks) + 1)
        return list(self.class_bias(labels)[:, :, None, None].chunk(len(self.blocks) + 1, 1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        biases = self._class_biases(labels)
        h = self.first(x) + biases[0]
        for block, bias in zip(self.blocks, biases[1:]):
            h = h + block(F.relu(h)) + bias
        return self.head(h)

    def logits_at(self, x: torch.Tensor, column: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``forward(x, labels)[:, :, -1, column]`` -> (N, classes), computing each layer only where the later ones
        read: the input and, after each layer, its output are cut to the last ``r + 1`` rows and the columns
        ``column ± r``, r being how far the remaining layers reach (square kernels reach as far sideways as up).
        The zero padding of the next layer at a cut edge then corrupts only the margin the cut after it drops, so
        this is exact and several times faster than whole rows."""
        biases = self._class_biases(labels)
        x, column = _keep_reach(x, column, self.rows_above)
        reach = self.rows_above - self.first.rows_above
        h, column = _keep_reach(self.first(x) + biases[0], column, reach)
        for block, bias in zip(self.blocks, biases[1:]):
            reach -= block.rows_above
            h, column = _keep_reach(h + block(F.relu(h)) + bias, column, reach)
        return self.head(h[:, :, -1:, column:column + 1])[:, :, 0, 0]


def _keep_reach(h: torch.Tensor, column: int, reach: int) -> tuple[torch.Tensor, int]:
    """The last ``reach + 1`` rows and the columns ``column ± reach`` of ``h`` (N, C, H, W), and ``column``'s index
    in them."""
    left = max(0, column - reach)
    return h[:, :, -(reach + 1):, left:column + reach + 1], column - left


def bits_per_dim(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood in bits of ``targets`` (N, H, W) long under ``logits`` (N, C, H, W) -> scalar."""
    return F.cross_entropy(logits, targets) / math.log(2)


def sample_autoregressive(net: PixelCNNNet, shape: tuple[int, int, int], encode: Callable[[torch.Tensor], torch.Tensor],
                          generator: torch.Generator, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Values (n, H, W) long drawn one at a time in raster order, each from ``net``'s softmax given those before.

    ``shape``: (n, H, W); ``encode``: values (n, h, W) long -> the net's inputs (n, C, h, W). The logits of pixel
    (i, j) are ``net.logits_at`` on the rows ``i - net.rows_above .. i`` (they depend on no others), which is
    exact. Each draw is a ``torch.multinomial`` from ``generator`` on the CPU.
    """
    _, height, width = shape
    device = next(net.parameters()).device
    values = torch.zeros(shape, dtype=torch.long, device=device)
    for i in range(height):
        top = max(0, i - net.rows_above)
        for j in range(width):
            logits = net.logits_at(encode(values[:, top:i + 1]), j, labels)
            draw = torch.multinomial(logits.float().softmax(1).cpu(), 1, generator=generator)
            values[:, i, j] = draw[:, 0].to(device)
    return values


def pixels_to_input(values: torch.Tensor) -> torch.Tensor:
    """Pixel values (N, H, W) long in 0..255 -> images (N, 1, H, W) float in [-1, 1], as genmetrics_models.base.to_float."""
    return values[:, None].float() / 127.5 - 1


class PixelCNN(Generator):
    """PixelCNN over the pixel values 0..255 (see the module docstring); Adam."""

    name = "pixelcnn"
    defaults: ClassVar[dict[str, Any]] = {"channels": 32, "layers": 5, "batch_size": 32, "lr": 1e-3,
                                          "conditional": False}

    def build(self) -> None:
        self.conditional = self.hparams["conditional"]
        self.net = PixelCNNNet(1, self.hparams["channels"], self.hparams["layers"], LEVELS,
                               self.num_classes if self.conditional else 0)

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"pixelcnn": torch.optim.Adam(self.parameters(), self.hparams["lr"])}

    def generate(self, n: int, generator: torch.Generator, labels: torch.Tensor | None) -> torch.Tensor:
        return pixels_to_input(sample_autoregressive(self.net, (n, 28, 28), pixels_to_input, generator, labels))

    @torch.inference_mode()
    def test_bits_per_dim(self, values: torch.Tensor, labels: torch.Tensor | None = None,
                          batch_size: int = 500) -> float:
        """The mean NLL in bits per dimension of pixel values (N, 28, 28) uint8 or long (with their labels (N,) for
        a conditional model), e.g. the held-out test set; sums per batch in float64, so the batch size changes
        nothing but rounding."""
        device = next(self.net.parameters()).device
        total = 0.0
        for start in range(0, len(values), batch_size):
            targets = values[start:start + batch_size].long().to(device)
            batch_labels = labels[start:start + batch_size].to(device) if self.conditional else None
            logits = self.net(pixels_to_input(targets), batch_labels)
            total += bits_per_dim(logits, targets).double().item() * len(targets)
        return total / len(values)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        """One Adam step on the NLL of the batch's pixel values (the images are exactly ``v / 127.5 - 1``)."""
        targets = ((images[:, 0] + 1) * 127.5).round().long()
        loss = bits_per_dim(self.net(images, labels if self.conditional else None), targets)
        optimizer = self.optimizers["pixelcnn"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"bits_per_dim": loss.item()}
