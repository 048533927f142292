"""``fashion-cnn``: a small Fashion-MNIST classifier as a domain-specific extractor.

"For another domain take that domain's classifier": Inception's ImageNet features and classes say little
about 28x28 grayscale clothes, so this extractor gives in-domain numbers: IS from its 10 class logits
and FID/KID/precision/recall on its 128-d penultimate features. It is not comparable with published
TF-Inception numbers, and its stats files are refused against Inception ones (the ExtractorSpec differs).

Network (:class:`FashionCNN`, 98,682 parameters): three blocks conv3x3 (16, 32, 64 channels, no bias)
-> batch norm -> ReLU -> 2x2 max-pool (28 -> 14 -> 7 -> 3), then a fully-connected layer 576 -> 128 ->
batch norm -> ReLU (the features) and a linear layer 128 -> 10 (the logits). The input is normalised
inside the network, ``(x / 255 - MEAN) / STD`` with the training set's pixel mean and std, so callers
pass grayscale values in [0, 255]. The extractor runs it in eval mode (batch norm with its running
statistics, no dropout) and in float64, whose rounding never reaches the float32 outputs: features and logits
are the same bit for bit whatever the batch size (in float32, CPU kernels chosen by batch size moved them by
up to 2.5e-6). At ~2 M multiply-adds per image the network still runs ~900 img/s on 2 CPU cores.

Weights: ``fashion_cnn.safetensors`` beside this module (package data, 398,968 bytes), trained by
``data_stats/train_fashion_cnn.py`` (seeded; 8 epochs of AdamW with a one-cycle schedule, random
horizontal flips and shifts of up to 2 px). Measured: 91.67% accuracy on the 10,000 Fashion-MNIST test
images (the same in float32 and float64); training took 990 s (13 min of CPU time) with 2 threads on this
project's 2-core CPU while two other processes shared it. The file's sha256 (:data:`WEIGHTS_SHA256`) is
checked on every load; another file is refused unless ``trust_weights`` is set.

Preprocessing (per image, in ``preprocess``): uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (alpha
dropped) -> grayscale by ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` in float (a gray image whose
three channels are equal keeps its values exactly) -> when it is not 28x28 already, resized to 28x28
(aspect ratio not kept) with PIL's bicubic filter on float32, antialiased when shrinking as clean-fid's
resize, clipped to [0, 255]; 28x28 images are used as they are. ``resize`` and ``precision`` do
not apply: the spec's ``resize`` is always :data:`RESIZE` and its precision float64.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch
from PIL import Image
from torch import nn

from genmetrics.config import ExtractorSpec
from genmetrics.errors import InputError, WeightsError, spell
from genmetrics.features.weights import not_a_weights_file

FASHION_CNN_NAME = "fashion-cnn"
WEIGHTS_PATH = Path(__file__).with_name("fashion_cnn.safetensors")
WEIGHTS_SHA256 = "3a05da48e23c256c2b09fba2a9510a83113d9f77aaef1d6cae49264b5658a765"
INPUT_SIZE = 28
FEATURE_DIM = 128
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MEAN = 0.2860  # mean and std of x / 255 over the 60,000 Fashion-MNIST training images
STD = 0.3530
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601
RESIZE = "luma601-bicubic"
"""The spec's ``resize``: BT.601 luma, then PIL bicubic (antialiased) to 28x28 when the size differs."""


def _block(channels_in: int, channels_out: int) -> list[nn.Module]:
    return [nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False), nn.BatchNorm2d(channels_out),
            nn.ReLU(), nn.MaxPool2d(2)]


class FashionCNN(nn.Module):
    """Three conv blocks, a 128-d penultimate layer and 10 logits (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(*_block(1, 16), *_block(16, 32), *_block(32, 64), nn.Flatten())
        self.penultimate = nn.Sequential(nn.Linear(64 * 3 * 3, FEATURE_DIM, bias=False),
                                         nn.BatchNorm1d(FEATURE_DIM), nn.ReLU())
        self.classifier = nn.Linear(FEATURE_DIM, len(CLASSES))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 1, 28, 28) float grayscale in [0, 255] -> (features (N, 128), logits (N, 10))."""
        features = self.penultimate(self.trunk((x / 255 - MEAN) / STD))
        return features, self.classifier(features)


def load_fashion_cnn(path: str | os.PathLike | None = None, *, trust_weights: bool = False) -> tuple[FashionCNN, str]:
    """The network in eval mode with the weights at ``path`` (default: the shipped file), and their sha256.

    The bytes are hashed and loaded from one read; a sha256 other than :data:`WEIGHTS_SHA256` is a WeightsError
    unless ``trust_weights``, and so is a file that is not a safetensors file of this architecture.
    """
    path = Path(path) if path is not None else WEIGHTS_PATH
    how = (f"reinstall genmetrics to restore the shipped {WEIGHTS_PATH.name}, or retrain it with "
           "`python data_stats/train_fashion_cnn.py`")
    problem = not_a_weights_file(path) if path.exists() else None  # a missing file fails to be read, below
    if problem:  # a folder or device is never read (/dev/zero would never end)
        raise WeightsError(f"fashion-cnn weights {str(path)!r} {problem}; {how}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"fashion-cnn weights {str(path)!r} cannot be read ({exc.strerror or exc}); {how}") from None
    sha = hashlib.sha256(raw).hexdigest()
    if sha != WEIGHTS_SHA256 and not trust_weights:
        raise WeightsError(f"fashion-cnn weights {str(path)!r} have sha256 {sha}, expected {WEIGHTS_SHA256}; {how}, "
                           f"or pass {spell('trust_weights')} to use them anyway (their sha256 is then recorded)")
    net = FashionCNN()
    try:
        net.load_state_dict(safetensors.torch.load(raw))
    except (safetensors.SafetensorError, RuntimeError) as exc:  # not safetensors; missing keys or other shapes
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise WeightsError(f"fashion-cnn weights {str(path)!r} are not a safetensors file of this network "
                           f"({first}); {how}") from None
    return net.eval(), sha


def to_gray28(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 1|3|4) uint8 -> (28, 28) float32 in [0, 255]: BT.601 luma, bicubic resize if not 28x28."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise InputError(f"fashion-cnn takes (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) images, got shape "
                         f"{image.shape}")
    gray = (image[:, :, 0] if image.shape[2] == 1 else image[:, :, :3] @ LUMA).astype(np.float32)
    if gray.shape != (INPUT_SIZE, INPUT_SIZE):
        gray = np.asarray(Image.fromarray(gray).resize((INPUT_SIZE, INPUT_SIZE), Image.BICUBIC)).clip(0, 255)
    return gray


class FashionCNNExtractor:
    """Fashion-MNIST classifier: 128-d penultimate features and 10 logits (for IS)."""

    has_logits = True

    def __init__(self, weights: str | os.PathLike | None = None, *, trust_weights: bool = False,
                 device: torch.device | str = "cpu") -> None:
        net, sha = load_fashion_cnn(weights, trust_weights=trust_weights)
        self.net = net.double()
        self.weights_path = str(weights if weights is not None else WEIGHTS_PATH)
        self.spec = ExtractorSpec(name=FASHION_CNN_NAME, weights_sha256=sha, resize=RESIZE, image_size=INPUT_SIZE,
                                  dim=FEATURE_DIM, precision="float64")
        self.to(device)

    def __getstate__(self) -> dict:
        # DataLoader workers need only preprocess(), which uses no state: do not copy the network into them.
        return {}

    def __setstate__(self, state: dict) -> None:
        pass

    def to(self, device: torch.device | str) -> FashionCNNExtractor:
        self.device = torch.device(device)
        self.net.to(self.device)
        return self

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, C) uint8 -> (1, 28, 28) float32 grayscale in [0, 255] (see :func:`to_gray28`)."""
        return torch.from_numpy(to_gray28(image))[None]

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 1, 28, 28) float in [0, 255] -> {"features": (N, 128), "logits": (N, 10)}, computed in float64,
        returned as float32."""
        features, logits = self.net(batch.to(self.device, torch.float64))
        return {"features": features.float(), "logits": logits.float()}
