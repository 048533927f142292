"""Frozen configuration records shared by the extraction, stats and report layers."""
from __future__ import annotations

from dataclasses import asdict, dataclass

RESIZE_MODES = ("tf1", "clean")
"""``tf1``: torch-fidelity's TF1-compatible bilinear resize (the FID standard, default);
``clean``: PIL bicubic with antialias on float channels, as clean-fid."""

DINOV2_ARCHS = ("vits14", "vitb14", "vitl14", "vitg14")
"""``--dinov2-arch`` choices: the official hub backbones ``dinov2_<arch>`` (``genmetrics.features.dinov2.ARCHS``)."""

DINOV2_RESIZE_MODES = ("pil-bicubic", "clean")
"""``--resize`` of ``--extractor dinov2``, as dgm-eval's DINOv2Encoder: ``pil-bicubic`` (default): torchvision's
``Resize((224, 224), BICUBIC)`` on the PIL image (PIL's antialiased bicubic on uint8); ``clean``: per-channel float
PIL bicubic as clean-fid, clipped to [0, 255]."""

PRECISIONS = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
"""``--precision`` choices -> the torch dtype name recorded in ``ExtractorSpec.precision``. fp32 is exact;
bf16/fp16 are faster opt-in modes for monitoring, and their statistics are not comparable with fp32 ones."""


SPATIAL_CHANNELS = 7  # guided-diffusion's sFID keeps mixed_6/conv:0[..., :7]
SPATIAL_SIZE = 17  # TF-Inception's Mixed_6d grid for a 299x299 input
SPATIAL_DIM = SPATIAL_SIZE * SPATIAL_SIZE * SPATIAL_CHANNELS
"""sFID's spatial features: 2,023 values per image, flattened H, W, C."""


@dataclass(frozen=True)
class ExtractorSpec:
    """Everything that determines the feature values of an extractor; two feature sets are comparable
    only when their specs are equal."""

    name: str  # e.g. "inception-v3-tf"
    weights_sha256: str
    resize: str  # one of RESIZE_MODES (DINOV2_RESIZE_MODES for dinov2), or the CLIP preprocessing
    image_size: int  # side length the network sees
    dim: int  # feature dimension
    precision: str = "float32"

    def to_dict(self) -> dict:
        return asdict(self)
