"""Content-addressed feature cache: one ``.npz`` per image, keyed by its bytes and the extractor spec.

Layout under :func:`cache_dir` (``$GENMETRICS_CACHE_DIR``, default ``~/.cache/genmetrics``)::

    <spec digest>/spec.json                   the ExtractorSpec and genmetrics version, for `cache info`
    <spec digest>/<hh>/<item hash>.npz        "features" (D,) float32 [+ "logits" (C,) float32]

``spec digest`` is the sha256 of the JSON of ``ExtractorSpec.to_dict()`` (extractor name, weights sha256,
resize mode and size, dimension, precision) and ``genmetrics.__version__``; ``item hash`` is the source's
``raw_bytes_hash(i)`` (sha256 of the file's bytes, or of an array item's shape and bytes) and ``hh`` its
first two hex digits. Entries are written atomically (temp file + ``os.replace``), so concurrent writers of
one key leave one complete, identical entry and readers never see a partial file. An entry that cannot be
read or does not hold the expected arrays is a miss (and is rewritten by the next extraction). No pickle.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genmetrics._version import __version__
from genmetrics.config import ExtractorSpec
from genmetrics.errors import ConfigError, GenMetricsError, phrase, spell
from genmetrics.io.atomic import atomic_write

CACHE_ENV = "GENMETRICS_CACHE_DIR"
SPEC_FILE = "spec.json"
_DIGEST = re.compile(r"[0-9a-f]{64}")


def cache_dir() -> Path:
    """``$GENMETRICS_CACHE_DIR``, or ``~/.cache/genmetrics``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "genmetrics")


def spec_record(spec: ExtractorSpec) -> dict:
    """What the spec digest covers: the extractor spec and the genmetrics version."""
    return {"extractor": spec.to_dict(), "genmetrics": __version__}


def spec_digest(spec: ExtractorSpec) -> str:
    """sha256 hex digest of :func:`spec_record`: the name of the spec's cache folder."""
    return hashlib.sha256(json.dumps(spec_record(spec), sort_keys=True).encode()).hexdigest()


class FeatureCache:
    """The entries of one extractor spec under ``root``; picklable, so DataLoader workers can read it."""

    def __init__(self, root: str | os.PathLike, spec: ExtractorSpec) -> None:
        self.spec = spec
        self.folder = Path(root) / spec_digest(spec)
        self._writable = True
        self._spec_written = False

    def _path(self, item_hash: str) -> Path:
        return self.folder / item_hash[:2] / f"{item_hash}.npz"

    def get(self, item_hash: str) -> dict[str, np.ndarray] | None:
        """The arrays stored for ``item_hash`` ({"features": (D,) float32, ...}), or None on a miss."""
        path = self._path(item_hash)
        try:
            # O_NONBLOCK: opening a FIFO planted in a shared cache returns at once; only regular files are read.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    return None
                with np.load(handle, allow_pickle=False) as entry:
                    arrays = {name: entry[name] for name in entry.files}
        except Exception:  # truncated or corrupt: numpy and zipfile raise many types (CRCs are checked)
            return None
        features = arrays.get("features")
        if features is None or features.shape != (self.spec.dim,) or any(
                a.dtype != np.float32 or a.ndim != 1 for a in arrays.values()):
            return None
        return arrays

    def put(self, item_hash: str, arrays: dict[str, np.ndarray]) -> None:
        """Store ``arrays`` (each (K,) float32) for ``item_hash`` atomically.

        A failing write (disk full, permissions) warns once and turns further writes off: results stay right.
        """
        if not self._writable:
            return
        path = self._path(item_hash)
        try:
            if not self._spec_written:
                self.folder.mkdir(parents=True, exist_ok=True)
                with atomic_write(self.folder / SPEC_FILE) as handle:
                    handle.write(json.dumps(spec_record(self.spec), indent=1, sort_keys=True).encode())
                self._spec_written = True
            path.parent.mkdir(exist_ok=True)
            with atomic_write(path) as handle:
                np.savez(handle, **arrays)
        except (OSError, GenMetricsError) as error:
            self._writable = False
            warnings.warn(f"feature cache {str(self.folder)!r} is not writable ({error}); continuing without "
                          f"storing features -- set {CACHE_ENV} to a writable folder or pass "
                          f"{spell('cache', 'False')}",
                          stacklevel=2)


@dataclass(frozen=True)
class SpecUsage:
    """One spec folder of the cache: its digest, recorded spec (None if unreadable), entries and bytes."""

    digest: str
    record: dict | None
    entries: int
    size: int


def cache_usage(root: str | os.PathLike) -> list[SpecUsage]:
    """Every spec folder under ``root`` (folders named by a 64-hex digest), sorted by digest."""
    root = Path(root)
    if not root.is_dir():
        return []
    usage = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and _DIGEST.fullmatch(p.name)):
        entries = [p for p in folder.glob("??/*.npz") if p.is_file()]
        try:
            record = json.loads((folder / SPEC_FILE).read_text())
        except (OSError, ValueError):
            record = None
        usage.append(SpecUsage(folder.name, record, len(entries), sum(p.stat().st_size for p in entries)))
    return usage


def clear_cache(root: str | os.PathLike, spec: str | None = None) -> list[SpecUsage]:
    """Delete the spec folders under ``root`` (only the one whose digest starts with ``spec``, if given);
    returns what was deleted. Nothing outside the 64-hex spec folders is touched."""
    usage = cache_usage(root)
    if spec is not None:
        usage = [u for u in usage if u.digest.startswith(spec.lower())]
        if len(usage) != 1:
            what = "no" if not usage else f"{len(usage)}"
            lists = phrase("cache_usage(root) lists", "`genmetrics cache info` lists")
            raise ConfigError(f"{what} cache spec folders match {spec!r} in {str(root)!r}; pass a digest prefix "
                              f"that {lists}")
    for u in usage:
        try:
            shutil.rmtree(Path(root) / u.digest)
        except OSError as error:
            raise ConfigError(f"cannot delete cache folder {str(Path(root) / u.digest)!r}: {error.strerror or error}; "
                              "check its permissions") from None
    return usage
