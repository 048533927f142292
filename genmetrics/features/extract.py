"""Batched extraction engine: decode + preprocess in DataLoader workers, network on the device."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from genmetrics.config import SPATIAL_DIM
from genmetrics.errors import ConfigError, DecodeError, WeightsError, spell
from genmetrics.features.base import FeatureExtractor
from genmetrics.features.cache import FeatureCache
from genmetrics.io.images import ImageSource
from genmetrics.stats import RunningStats


@dataclass
class FeatureSet:
    """Features of one source: rows in source order, bad items left out (with ``skip_bad``)."""

    stats: RunningStats  # fp64 mean/covariance accumulated batch by batch
    features: np.ndarray | None  # (N, D) float32, unless extracted with keep_features=False
    logits: np.ndarray | None  # (N, C) float32 when the extractor has logits
    skipped: list[str] = field(default_factory=list)  # names of items that could not be decoded
    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (N,) source index of each row
    spatial_stats: RunningStats | None = None  # fp64 mean/covariance of sFID's spatial features, when extracted
    spatial: np.ndarray | None = None  # (N, 2023) float32 spatial features, when extracted and kept

    def __len__(self) -> int:
        return self.stats.n


_Item = tuple[int, str | None, torch.Tensor | dict[str, np.ndarray] | DecodeError | None]
"""(source index, item hash or None without a cache, payload); the payload None marks a cache miss once
collated."""


def outputs_of(extractor: FeatureExtractor) -> frozenset[str]:
    """The arrays the extractor's ``forward`` returns: its ``outputs`` where it says, else features [+ logits]."""
    found = getattr(extractor, "outputs", None)
    if found is not None:
        return frozenset(found)
    return frozenset({"features", "logits"} if extractor.has_logits else {"features"})


class _PreprocessedImages(Dataset):
    """Source item i -> (i, item hash or None, payload): the cached arrays on a cache hit, else the
    preprocessed (3, S, S) tensor, or the item's DecodeError."""

    def __init__(self, source: ImageSource, extractor: FeatureExtractor, cache: FeatureCache | None) -> None:
        self.source = source
        self.extractor = extractor
        self.cache = cache
        self.outputs = outputs_of(extractor)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> _Item:
        key = None
        try:
            if self.cache is not None:
                key = self.source.raw_bytes_hash(index)
                hit = self.cache.get(key)
                if hit is not None and self.outputs <= set(hit):  # an entry may hold more (spatial features)
                    return index, key, {name: hit[name] for name in self.outputs}
            return index, key, self.extractor.preprocess(self.source.load(index))
        except DecodeError as error:  # returned, not raised: the main process decides (strict or skip_bad)
            return index, key, error


def _collate(items: list[_Item]) -> tuple[torch.Tensor | None, list[_Item]]:
    """Stack the cache misses' tensors into one batch; each item keeps its key and payload (None for a miss)."""
    misses = [payload for _, _, payload in items if isinstance(payload, torch.Tensor)]
    rest = [(index, key, None if isinstance(payload, torch.Tensor) else payload) for index, key, payload in items]
    return (torch.stack(misses) if misses else None), rest


def _forward(extractor: FeatureExtractor, batch: torch.Tensor | None, keys: list[str | None], names: list[str],
             cache: FeatureCache | None) -> list[dict[str, np.ndarray]]:
    """Run the network on a batch of cache misses (``names`` for messages): one {"features": (D,), ["logits": (C,)]}
    row per image, each stored in ``cache`` under its key. NaN/inf outputs are an error and never cached."""
    if batch is None:
        return []
    out = {name: value.float().cpu().numpy() for name, value in extractor.forward(batch).items()}
    for output, values in out.items():
        if not np.isfinite(values).all():
            first = names[int(np.argwhere(~np.isfinite(values))[0][0])]
            raise WeightsError(f"the extractor gave NaN/inf {output} for {first!r}: its weights are broken, or values "
                               f"overflowed at a reduced precision; check the weights file or use "
                               f"{spell('precision', 'fp32')}")
    rows = [{name: values[i] for name, values in out.items()} for i in range(len(batch))]
    if cache is not None:
        for key, row in zip(keys, rows):
            cache.put(key, row)
    return rows


@dataclass
class _Rows:
    """The rows of the batches seen so far: fp64 statistics, and the features, logits and names kept."""

    running: RunningStats
    keep_features: bool
    has_logits: bool
    spatial_running: RunningStats | None = None
    indices: list[int] = field(default_factory=list)
    features: list[np.ndarray] = field(default_factory=list)
    logits: list[np.ndarray] = field(default_factory=list)
    spatial: list[np.ndarray] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def add(self, indices: list[int], rows: list[dict[str, np.ndarray]]) -> None:
        """One batch's rows (source ``indices``, in order)."""
        self.indices.extend(indices)
        if not rows:
            return
        batch_features = np.stack([row["features"] for row in rows])
        self.running.update(batch_features)
        if self.keep_features:
            self.features.append(batch_features)
        if self.has_logits:
            self.logits.append(np.stack([row["logits"] for row in rows]))
        if self.spatial_running is not None:
            batch_spatial = np.stack([row["spatial"] for row in rows])
            self.spatial_running.update(batch_spatial)
            if self.keep_features:
                self.spatial.append(batch_spatial)

    def feature_set(self, dim: int) -> FeatureSet:
        features = spatial = None
        if self.keep_features:
            features = np.concatenate(self.features) if self.features else np.zeros((0, dim), np.float32)
            if self.spatial_running is not None:
                spatial = (np.concatenate(self.spatial) if self.spatial
                           else np.zeros((0, self.spatial_running.dim), np.float32))
        return FeatureSet(stats=self.running, features=features,
                          logits=np.concatenate(self.logits) if self.logits else None, skipped=self.skipped,
                          indices=np.asarray(self.indices, np.int64), spatial_stats=self.spatial_running,
                          spatial=spatial)


def check_batch_size(batch_size: int) -> None:
    """ConfigError unless ``batch_size`` is at least 1."""
    if batch_size < 1:
        raise ConfigError(f"{spell('batch_size', str(batch_size))}: the batch size must be at least 1")


def _check_options(batch_size: int, workers: int) -> None:
    check_batch_size(batch_size)
    if workers < 0:
        raise ConfigError(f"{spell('workers', str(workers))}: the number of workers must be at least 0")


def _loader(source: ImageSource, extractor: FeatureExtractor, cache: FeatureCache | None, batch_size: int,
            workers: int) -> DataLoader:
    """Batches of ``_collate``, in source order; workers only where the source supports them."""
    return DataLoader(
        _PreprocessedImages(source, extractor, cache),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers if getattr(source, "supports_workers", True) else 0,
        collate_fn=_collate,
        persistent_workers=False,
    )


def _batch_rows(batch: torch.Tensor | None, items: list[_Item], source: ImageSource, extractor: FeatureExtractor,
                cache: FeatureCache | None) -> tuple[list[int], list[dict[str, np.ndarray]]]:
    """Source indices and rows (cached or computed) of one batch's decodable items, in order."""
    misses = [(index, key) for index, key, payload in items if payload is None]
    computed = iter(_forward(extractor, batch, [key for _, key in misses],
                             [source.name(index) for index, _ in misses], cache))
    kept = [(index, payload) for index, _, payload in items if not isinstance(payload, DecodeError)]
    return [index for index, _ in kept], [next(computed) if payload is None else payload for _, payload in kept]


def extract_features(
    source: ImageSource,
    extractor: FeatureExtractor,
    *,
    batch_size: int = 32,
    workers: int = 0,
    skip_bad: bool = False,
    keep_features: bool = True,
    progress: bool = True,
    desc: str = "features",
    cache: FeatureCache | None = None,
) -> FeatureSet:
    """Run ``extractor`` over every image of ``source``.

    Strict by default: the first undecodable image raises its DecodeError. With ``skip_bad`` such images
    are left out and named in ``FeatureSet.skipped``. Mean and covariance are always accumulated in fp64;
    ``keep_features=False`` keeps memory bounded (FID-only runs). Results do not depend on batch size or
    workers. With ``cache``, images already in it are not decoded nor run through the network, and the others are
    stored; a generator callable's samples are not cached (they are usually new at every evaluation).
    """
    _check_options(batch_size, workers)
    if not source.content_addressed:
        cache = None
    spatial = None if "spatial" not in outputs_of(extractor) else RunningStats(SPATIAL_DIM)
    rows = _Rows(RunningStats(extractor.spec.dim), keep_features, extractor.has_logits, spatial)
    with tqdm(total=len(source), desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for batch, items in _loader(source, extractor, cache, batch_size, workers):
            bad = [payload for _, _, payload in items if isinstance(payload, DecodeError)]
            if bad and not skip_bad:
                raise bad[0]
            rows.skipped.extend(error.path for error in bad)
            rows.add(*_batch_rows(batch, items, source, extractor, cache))
            bar.update(len(items))
    return rows.feature_set(extractor.spec.dim)
