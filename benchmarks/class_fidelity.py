"""Class fidelity of conditional samples: the shipped fashion-cnn classifier's verdict on each image against the
label it was drawn for, and its Inception Score (the in-domain IS of ``genmetrics score --extractor fashion-cnn``).
A helper of the benchmarks (``guidance_sweep.py``) and the tests of the shipped checkpoints; the models package
itself reaches genmetrics only through its public API."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genmetrics.features.fashion_cnn import FashionCNNExtractor
from genmetrics.metrics.inception_score import inception_score

BATCH = 256


@dataclass(frozen=True)
class ClassFidelity:
    """``accuracy``: the fraction of samples fashion-cnn assigns to their label; ``per_class`` (K,) the same per
    label; ``predicted`` (K,) how many samples fashion-cnn assigns to each class; ``inception_score`` fashion-cnn's
    IS of the samples (10 splits)."""

    accuracy: float
    per_class: np.ndarray
    predicted: np.ndarray
    inception_score: float


def classifier_logits(images: np.ndarray, classifier: FashionCNNExtractor | None = None) -> np.ndarray:
    """fashion-cnn's logits (N, 10) float64 of uint8 images (N, H, W[, C])."""
    classifier = classifier or FashionCNNExtractor()
    rows = []
    for start in range(0, len(images), BATCH):
        batch = torch.stack([classifier.preprocess(image) for image in images[start:start + BATCH]])
        rows.append(classifier.forward(batch)["logits"].double().numpy())
    return np.concatenate(rows)


def class_fidelity(images: np.ndarray, labels: np.ndarray, classifier: FashionCNNExtractor | None = None,
                   num_classes: int = 10) -> ClassFidelity:
    """How faithfully images (N, H, W[, C]) uint8 drawn for ``labels`` (N,) show their class, by fashion-cnn."""
    logits = classifier_logits(images, classifier)
    labels = np.asarray(labels)
    hits = logits.argmax(1) == labels
    per_class = np.array([hits[labels == k].mean() if (labels == k).any() else np.nan for k in range(num_classes)])
    return ClassFidelity(float(hits.mean()), per_class, np.bincount(logits.argmax(1), minlength=num_classes),
                         inception_score(logits, splits=10)[0])
