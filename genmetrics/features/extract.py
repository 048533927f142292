"""Batched extraction engine: decode + preprocess in DataLoader workers, network on the device."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from genmetrics.errors import ConfigError, DecodeError
from genmetrics.features.base import FeatureExtractor
from genmetrics.io.images import ImageSource


@dataclass
class FeatureSet:
    """Features of one source: rows in source order, bad items left out (with ``skip_bad``)."""

    features: np.ndarray  # (N, D) float32
    logits: np.ndarray | None  # (N, C) float32 when the extractor has logits
    skipped: list[str] = field(default_factory=list)  # names of items that could not be decoded
    indices: np.ndarray | None = None  # (N,) int64 source index of each row

    def __len__(self) -> int:
        return len(self.features)


class _PreprocessedImages(Dataset):
    """Source item i -> (i, preprocessed (3, S, S) tensor) or (i, DecodeError)."""

    def __init__(self, source: ImageSource, extractor: FeatureExtractor) -> None:
        self.source = source
        self.extractor = extractor

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | DecodeError]:
        try:
            return index, self.extractor.preprocess(self.source.load(index))
        except DecodeError as error:  # returned, not raised: the main process decides (strict or --skip-bad)
            return index, error


def _collate(items: list[tuple[int, torch.Tensor | DecodeError]]
             ) -> tuple[list[int], torch.Tensor | None, list[DecodeError]]:
    good = [(index, tensor) for index, tensor in items if isinstance(tensor, torch.Tensor)]
    bad = [error for _, error in items if not isinstance(error, torch.Tensor)]
    return [index for index, _ in good], (torch.stack([tensor for _, tensor in good]) if good else None), bad


def extract_features(
    source: ImageSource,
    extractor: FeatureExtractor,
    *,
    batch_size: int = 32,
    workers: int = 0,
    skip_bad: bool = False,
    progress: bool = True,
    desc: str = "features",
) -> FeatureSet:
    """Run ``extractor`` over every image of ``source``.

    Strict by default: the first undecodable image raises its DecodeError. With ``skip_bad`` such images
    are left out and named in ``FeatureSet.skipped``. Results do not depend on batch size or workers.
    """
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    if workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {workers}")
    if not getattr(source, "supports_workers", True):
        workers = 0
    loader = DataLoader(
        _PreprocessedImages(source, extractor),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        persistent_workers=False,
    )
    features: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    skipped: list[str] = []
    indices: list[int] = []
    with tqdm(total=len(source), desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for kept, batch, bad in loader:
            if bad:
                if not skip_bad:
                    raise bad[0]
                skipped.extend(error.path for error in bad)
            if batch is not None:
                indices.extend(kept)
                out = extractor.forward(batch)
                features.append(out["features"].float().cpu().numpy())
                if "logits" in out:
                    logits.append(out["logits"].float().cpu().numpy())
            bar.update(len(bad) + (0 if batch is None else len(batch)))
    dim = extractor.spec.dim
    return FeatureSet(
        features=np.concatenate(features) if features else np.zeros((0, dim), np.float32),
        logits=np.concatenate(logits) if logits else None,
        skipped=skipped,
        indices=np.asarray(indices, dtype=np.int64),
    )
