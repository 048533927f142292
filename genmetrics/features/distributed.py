"""torch.distributed sharding: under ``torchrun --nproc_per_node=N`` each rank extracts one contiguous
shard of a source; features are gathered (in source order) and statistics merged, so every rank ends up
with the numbers a single process computes. Rank 0 alone writes output.

Backend: gloo on CPU, NCCL when the device is CUDA (each rank then uses ``cuda:LOCAL_RANK``).
"""
from __future__ import annotations

import atexit
import os

import numpy as np
import torch
import torch.distributed as dist

from genmetrics.features.extract import FeatureSet
from genmetrics.io.images import ImageSource
from genmetrics.stats import RunningStats


def init_from_env(device: str) -> str:
    """Join the process group torchrun describes (WORLD_SIZE > 1); returns this rank's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    cuda = torch.device(device).type == "cuda"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        atexit.register(dist.destroy_process_group)
    return f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if cuda else device


def rank_and_size() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    return rank_and_size()[0] == 0


class Shard(ImageSource):
    """Items [start, stop) of a source, as a source of their own."""

    def __init__(self, source: ImageSource, start: int, stop: int) -> None:
        self.source, self.start, self.stop = source, start, stop
        self.description = source.description
        self.supports_workers = source.supports_workers
        self.content_addressed = source.content_addressed

    def __len__(self) -> int:
        return self.stop - self.start

    def name(self, index: int) -> str:
        return self.source.name(self.start + index)

    def load(self, index: int) -> np.ndarray:
        return self.source.load(self.start + index)

    def content_hash(self) -> str:
        return self.source.content_hash()

    def raw_bytes_hash(self, index: int) -> str:
        return self.source.raw_bytes_hash(self.start + index)


def shard(source: ImageSource) -> ImageSource:
    """This rank's contiguous part of ``source`` (the whole source outside torchrun)."""
    rank, size = rank_and_size()
    if size == 1:
        return source
    n = len(source)
    return Shard(source, rank * n // size, (rank + 1) * n // size)


def gather(part: FeatureSet, source: ImageSource) -> FeatureSet:
    """Every rank's FeatureSet of its ``shard(source)`` combined in rank (= source) order; statistics merged
    in fp64; row indices refer to ``source``."""
    if rank_and_size()[1] == 1:
        return part
    offset = shard(source).start
    parts: list[tuple] = [None] * dist.get_world_size()
    spatial_state = None if part.spatial_stats is None else part.spatial_stats.to_arrays()
    dist.all_gather_object(parts, (part.stats.to_arrays(), part.features, part.logits, part.skipped,
                                   part.indices + offset, spatial_state, part.spatial))

    def merged(states: list[dict | None]) -> RunningStats | None:
        if states[0] is None:
            return None
        stats = RunningStats.from_arrays(**states[0])
        for state in states[1:]:
            stats = stats.merge(RunningStats.from_arrays(**state))
        return stats

    def concat(arrays: list[np.ndarray | None]) -> np.ndarray | None:
        return None if arrays[0] is None else np.concatenate(arrays)

    return FeatureSet(stats=merged([p[0] for p in parts]), features=concat([p[1] for p in parts]),
                      logits=concat([p[2] for p in parts]), skipped=[name for p in parts for name in p[3]],
                      indices=np.concatenate([p[4] for p in parts]), spatial_stats=merged([p[5] for p in parts]),
                      spatial=concat([p[6] for p in parts]))
