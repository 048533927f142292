"""The feature-extractor protocol every extractor implements."""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from genmetrics.config import ExtractorSpec


class FeatureExtractor(Protocol):
    """An image-to-feature network.

    ``preprocess`` runs per image (in DataLoader workers), ``forward`` per batch on the device.
    """

    spec: ExtractorSpec
    has_logits: bool
    weights_path: str  # the resolved weights file, for provenance and messages

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (C, S, S) float32 network input before normalisation (C = 1 for fashion-cnn)."""

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, C, S, S) float -> {"features": (N, D) float32, "logits": (N, K) float32 if has_logits}."""

    def to(self, device: torch.device | str) -> "FeatureExtractor":
        """Move the network to ``device`` and return self."""
