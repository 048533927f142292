"""Package versions recorded as provenance: in every Result and stats file, and in the reference generators'
checkpoints (``genmetrics_models.checkpoint``)."""
from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Iterable

from genmetrics._version import __version__

VERSIONED = ("torch", "torch-fidelity", "numpy", "scipy", "pillow", "open_clip_torch")
"""The libraries that determine genmetrics' numbers."""


def versions(extra: Iterable[str] = ()) -> dict[str, str]:
    """Versions of genmetrics, python, the VERSIONED libraries and the distributions named in ``extra`` (e.g.
    ``("safetensors",)``); "not installed" for one that is missing."""
    found = {"genmetrics": __version__, "python": platform.python_version()}
    for name in dict.fromkeys((*VERSIONED, *extra)):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
