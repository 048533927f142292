"""PixelCNN: causal masks, bits/dim, the exact row crop of sampling, raster-order sampling, conditioning."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from genmetrics_models.pixelcnn import (
    MaskedConv2d,
    PixelCNNNet,
    bits_per_dim,
    pixels_to_input,
    sample_autoregressive,
)
from genmetrics_models.registry import build_model
from tests.models.conftest import TINY, assert_uint8_images, seeded


def test_masks_a_and_b():
    a, b = MaskedConv2d("A", 1, 1, 3).mask, MaskedConv2d("B", 1, 1, 3).mask
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert MaskedConv2d("A", 1, 1, 7).mask.sum() == 7 * 3 + 3


@pytest.mark.parametrize("conditional", [False, True])
def test_the_logits_at_a_pixel_depend_on_earlier_pixels_only(conditional):
    """Zero gradient w.r.t. the pixel itself and every later one in raster order; nonzero w.r.t. an earlier one."""
    model = build_model("pixelcnn", {"conditional": conditional}, generator=seeded(0))  # default size: 5 layers
    x = (torch.rand(1, 1, 28, 28, generator=seeded(1)) * 2 - 1).requires_grad_(True)
    labels = torch.tensor([3]) if conditional else None
    logits = model.net(x, labels)
    weights = torch.randn(256, generator=seeded(2))  # a random projection of the 256 logits: no cancellation
    for i, j in [(0, 0), (0, 1), (0, 27), (1, 0), (5, 9), (14, 14), (27, 27)]:
        (grad,) = torch.autograd.grad(logits[0, :, i, j] @ weights, x, retain_graph=True)
        flat = grad.flatten()
        index = 28 * i + j
        assert torch.count_nonzero(flat[index:]) == 0, (i, j)
        assert index == 0 or torch.count_nonzero(flat[:index]) > 0, (i, j)


def test_bits_per_dim_of_a_uniform_model_is_8():
    targets = torch.randint(256, (3, 28, 28), generator=seeded(0))
    assert bits_per_dim(torch.zeros(3, 256, 28, 28), targets).item() == pytest.approx(8.0, abs=1e-6)
    logits = torch.randn(3, 256, 28, 28, generator=seeded(1))
    nll = -logits.log_softmax(1).gather(1, targets[:, None]).mean() / math.log(2)
    assert bits_per_dim(logits, targets).item() == pytest.approx(nll.item(), rel=1e-6)
    # The model's test and training losses: a net whose last layer outputs zeros is uniform.
    model = build_model("pixelcnn", TINY["pixelcnn"], generator=seeded(0))
    nn.init.zeros_(model.net.head[-1].weight)
    nn.init.zeros_(model.net.head[-1].bias)
    assert model.test_bits_per_dim(targets.to(torch.uint8)) == pytest.approx(8.0, abs=1e-6)
    images = pixels_to_input(targets)
    assert model.train_step(images, torch.zeros(3, dtype=torch.long), seeded(0)) == {
        "bits_per_dim": pytest.approx(8.0, abs=1e-6)}


def test_test_bits_per_dim_is_the_mean_nll_over_all_images_whatever_the_batch_size():
    model = build_model("pixelcnn", {**TINY["pixelcnn"], "conditional": True}, generator=seeded(0))
    values = torch.randint(256, (7, 28, 28), generator=seeded(2))
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6])
    with torch.no_grad():
        expected = bits_per_dim(model.net(pixels_to_input(values), labels), values).item()
    assert model.test_bits_per_dim(values, labels, batch_size=3) == pytest.approx(expected, rel=1e-6)
    assert model.test_bits_per_dim(values, labels, batch_size=7) == pytest.approx(expected, rel=1e-6)
    assert model.test_bits_per_dim(values, 9 - labels) != pytest.approx(expected, rel=1e-6)


def test_training_lowers_the_bits_per_dim(digit_batch):
    model = build_model("pixelcnn", {**TINY["pixelcnn"], "lr": 1e-2}, generator=seeded(0))
    images, labels = digit_batch[0][:8], digit_batch[1][:8]
    first = model.train_step(images, labels, seeded(0))["bits_per_dim"]
    for _ in range(20):
        last = model.train_step(images, labels, seeded(0))["bits_per_dim"]
    assert last < first - 1.0


def test_logits_of_a_pixel_need_only_the_rows_above_and_columns_around_it_that_the_net_reaches():
    """The rows sample_autoregressive passes, and logits_at's cuts of the input and inside the net, give the full
    image's logits."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = PixelCNNNet(1, 8, 5, 256, num_classes=10)
    assert net.rows_above == 3 + 5
    values = torch.randint(256, (2, 28, 28), generator=seeded(0))
    with torch.no_grad():
        full = net(pixels_to_input(values), labels := torch.tensor([3, 7]))
        for i in (0, 7, 8, 9, 20, 27):
            top = max(0, i - net.rows_above)
            rows = pixels_to_input(values[:, top:i + 1])
            torch.testing.assert_close(net(rows, labels)[:, :, -1], full[:, :, i])
            for j in (0, 5, 8, 9, 14, 19, 20, 27):
                torch.testing.assert_close(net.logits_at(rows, j, labels), full[:, :, i, j])
                left, right = max(0, j - 8), min(28, j + 9)  # columns j ± 8 suffice ...
                crop = net(pixels_to_input(values[:, top:i + 1, left:right]), labels)
                torch.testing.assert_close(crop[:, :, -1, j - left], full[:, :, i, j])
        # ... and one column less on either side is not enough: the crop's zero padding reaches the pixel. It moves
        # the logits by only ~1e-6 (float32 rounding's size), so this is checked in float64 (rounding ~1e-15).
        net64 = net.double()
        full = net64(pixels_to_input(values).double(), labels)
        for left, right in ((8, 24), (7, 23)):
            crop = net64(pixels_to_input(values[:, 12:21, left:right]).double(), labels)
            assert (crop[:, :, -1, 15 - left] - full[:, :, 20, 15]).abs().max() > 1e-9
        crop = net64(pixels_to_input(values[:, 12:21, 7:24]).double(), labels)  # columns 15 ± 8: exact
        assert (crop[:, :, -1, 15 - 7] - full[:, :, 20, 15]).abs().max() < 1e-12


class _CountingNet(nn.Module):
    """A stub 'PixelCNN' whose softmax puts all mass on (previous pixel in the row + 1) mod 256, or 7 * row at the
    start of a row: sampling must reproduce that sequence, which needs raster order and fed-back draws."""

    rows_above = 0

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def logits_at(self, x: torch.Tensor, column: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self(x, labels)[:, :, -1, column]

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        values = ((x[:, 0] + 1) * 127.5).round().long()  # (n, 1, W): the row being drawn
        wanted = torch.roll(values, 1, dims=2) + 1
        wanted[:, :, 0] = 0
        logits = torch.full((x.shape[0], 256, *x.shape[2:]), -1e4)
        return logits.scatter(1, (wanted % 256)[:, None], 0.0)


def test_sampling_draws_pixels_one_at_a_time_in_raster_order():
    values = sample_autoregressive(_CountingNet(), (2, 4, 6), pixels_to_input, seeded(0))
    assert values[0].tolist() == [list(range(6))] * 4 and torch.equal(values[0], values[1])


def test_samples_and_class_conditioning():
    model = build_model("pixelcnn", {**TINY["pixelcnn"], "conditional": True}, generator=seeded(0))
    assert model.conditional and model.net.class_bias.weight.shape == (10, 8 * 3)
    samples = model.sample(3, seeded(1), [1, 1, 1])
    assert_uint8_images(samples, 3)
    assert torch.equal(samples, model.sample(3, seeded(1), [1, 1, 1]))
    assert not torch.equal(samples, model.sample(3, seeded(1), [2, 2, 2]))
    assert not build_model("pixelcnn", TINY["pixelcnn"]).conditional
