"""The chunk-seeding rule, the one place it is written: genmetrics draws a generator callable's samples with it,
and the reference generators (``genmetrics_models``) sample and shuffle with it, so ``genmetrics.score(fn,
num_samples=n, seed=s)`` scores exactly the images ``genmetrics sample CKPT -n n --seed s`` writes.

Sample ``i`` belongs to chunk ``k = i // CHUNK``; chunk ``k`` of ``seed`` is drawn from
``torch.Generator().manual_seed(chunk_seed(seed, k))``. torch is imported only when a generator is made.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CHUNK = 64
"""Samples per chunk."""


def chunk_seed(seed: int, k: int) -> int:
    """The torch seed of chunk ``k`` of ``seed``: ``(seed * 1_000_003 + k) % 2**64``."""
    return (seed * 1_000_003 + k) % 2**64


def chunk_generator(seed: int, k: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`chunk_seed` ``(seed, k)``."""
    import torch

    return torch.Generator().manual_seed(chunk_seed(seed, k))
