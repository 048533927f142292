"""Fixtures of the reliability catalogue: the stand-in extractor under ``--extractor tiny``, a per-test feature
cache, and the session's real TF-Inception under ``--extractor inception`` (loaded once)."""
from __future__ import annotations

from pathlib import Path

import pytest

from genmetrics.features.inception import InceptionExtractor
from genmetrics.features.registry import EXTRACTORS
from tests.helpers import TinyExtractor, stand_in


@pytest.fixture(autouse=True)
def tiny(monkeypatch, tmp_path) -> Path:
    """Register TinyExtractor as ``tiny`` and give the test its own cache folder (returned)."""
    monkeypatch.setitem(EXTRACTORS, "tiny", stand_in(TinyExtractor))
    cache = tmp_path / "cache"
    monkeypatch.setenv("GENMETRICS_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def real_inception(monkeypatch, inception: InceptionExtractor) -> InceptionExtractor:
    """``--extractor inception`` gives the session's TF-Inception (default weights and resize) without reloading."""
    monkeypatch.setitem(EXTRACTORS, "inception", stand_in(lambda: inception, like="inception"))
    return inception
