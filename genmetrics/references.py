"""Shipped reference statistics in ``data_stats/`` (listed in ``data_stats/index.json``), by name."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from genmetrics.errors import StatsError, phrase

DATA_STATS_ENV = "GENMETRICS_DATA_STATS"


def data_stats_dir() -> Path:
    """``$GENMETRICS_DATA_STATS`` or the ``data_stats/`` folder of this checkout."""
    return Path(os.environ.get(DATA_STATS_ENV) or Path(__file__).resolve().parent.parent / "data_stats")


def _shipped_index() -> Path:
    """``data_stats/index.json``; StatsError saying how to get it where it is missing (a wheel does not carry the
    187 MB of data_stats/)."""
    index = data_stats_dir() / "index.json"
    if not index.is_file():
        raise StatsError(f"no shipped statistics or demo: {str(index)!r} is missing (a wheel, `pip install .`, "
                         "does not carry data_stats/); install from a source checkout with `pip install -e .`, or "
                         f"set {DATA_STATS_ENV} to the data_stats folder of a genmetrics checkout")
    return index


def list_references() -> list[dict]:
    """The entries of ``index.json`` (name, file, source, n, extractor, weights_sha256, resize, sha256)."""
    return json.loads(_shipped_index().read_text())["references"]


def is_reference_name(ref: Any) -> bool:
    """Whether ``ref`` is read as the name of a shipped reference: a string that is no existing path and has no
    '/' and no extension (``fashion-mnist-train``, not ``stats.npz`` or ``data/ref``). Such a name resolves with
    :func:`resolve_reference`, an unknown one failing there."""
    return isinstance(ref, str) and not Path(ref).exists() and "/" not in ref and not Path(ref).suffix


def resolve_reference(name: str, extractor: str | None = None) -> Path:
    """Path of the stats file of a shipped reference called ``name``: the one computed with ``extractor`` (an
    ExtractorSpec name such as ``inception-v3-tf`` or ``fashion-cnn``) when shipped, else the first listed
    (whose extractor the caller then finds incompatible, with a message saying so)."""
    entries = list_references()
    named = [entry for entry in entries if entry["name"] == name]
    if named:
        chosen = next((entry for entry in named if entry["extractor"] == extractor), named[0])
        return data_stats_dir() / chosen["file"]
    known = ", ".join(dict.fromkeys(entry["name"] for entry in entries))
    lists = phrase("genmetrics.references.list_references() lists", "`genmetrics stats --list` shows")
    raise StatsError(f"unknown reference {name!r}: not a path and not a shipped name (shipped: {known}; {lists} "
                     "them)")

DEMO_REFERENCE = "fashion-mnist-train"
DEMO_GENERATED = "demo/fashion-mnist-test-300.npy"


def demo_sources() -> tuple[Path, str]:
    """The embedded default of ``genmetrics score`` without arguments: (generated images, reference name)."""
    return _shipped_index().parent / DEMO_GENERATED, DEMO_REFERENCE
