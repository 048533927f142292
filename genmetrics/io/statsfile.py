"""Statistics files: ``.npz`` with pytorch-fid's keys ``mu`` (D,) and ``sigma`` (D, D) in fp64, a ``meta``
entry holding JSON (extractor spec, N, source, content hash, versions) and, optionally, ``features``
(M, D) float32, or float16 when stored compactly, for precision/recall and KID: all N rows, or a seeded
subset of M rows described by ``meta["features_subset"]``. Read and written without pickle; writes are atomic."""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genmetrics.config import ExtractorSpec
from genmetrics.errors import StatsError
from genmetrics.io.atomic import atomic_write, check_writable

FORMAT = "genmetrics-stats/1"


@dataclass(frozen=True)
class Stats:
    """Mean and covariance of one feature set, with what produced it."""

    mu: np.ndarray  # (D,) float64
    sigma: np.ndarray  # (D, D) float64
    n: int
    extractor: ExtractorSpec
    meta: dict  # the whole metadata record (source, content_hash, versions, ...)
    features: np.ndarray | None = None  # (M, D) float32 (float16 kept as is when saving), M <= n, when stored


def check_output(path: str | os.PathLike) -> None:
    """Raise now, before any extraction, unless stats can be saved to ``path``: an .npz name in a writable folder."""
    if Path(path).suffix != ".npz":
        raise StatsError(f"stats output {str(path)!r} must end in .npz")
    check_writable(path)


def save_stats(path: str | os.PathLike, stats: Stats) -> None:
    """Write ``stats`` to ``path`` (must end in .npz) atomically."""
    if Path(path).suffix != ".npz":
        raise StatsError(f"stats output {str(path)!r} must end in .npz")
    meta = {**stats.meta, "format": FORMAT, "n": stats.n, "extractor": stats.extractor.to_dict()}
    arrays = {
        "mu": np.asarray(stats.mu, np.float64),
        "sigma": np.asarray(stats.sigma, np.float64),
        "meta": np.array(json.dumps(meta, sort_keys=True)),
    }
    if stats.features is not None:
        compact = np.asarray(stats.features).dtype == np.float16
        arrays["features"] = np.asarray(stats.features, np.float16 if compact else np.float32)
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def load_stats(path: str | os.PathLike) -> Stats:
    """Read and validate a stats file; every problem is a StatsError naming the file."""
    name = str(path)
    if Path(path).is_file() and not zipfile.is_zipfile(path):
        raise StatsError(f"stats file {name!r} is not a valid .npz file; write one with `genmetrics stats`")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise StatsError(f"stats file {name!r} does not exist") from None
    except Exception as exc:  # OSError, BadZipFile, EOFError, NotImplementedError (zip version), TokenError, ...
        if isinstance(exc, ValueError) and "pickle" in str(exc):  # refused by allow_pickle=False, never executed
            raise StatsError(f"stats file {name!r} cannot be read without pickle ({exc}); rebuild it with "
                             "`genmetrics stats`") from None
        raise StatsError(f"stats file {name!r} is not a valid .npz file ({type(exc).__name__}: {exc})") from None
    if not isinstance(arrays, dict) or not {"mu", "sigma"} <= arrays.keys():
        raise StatsError(f"stats file {name!r} lacks 'mu' and 'sigma' (has {sorted(arrays)})")
    if "meta" not in arrays:
        raise StatsError(f"stats file {name!r} has no genmetrics metadata (a pytorch-fid file?), so its extractor "
                         "and resize cannot be checked; rebuild it with `genmetrics stats SRC -o FILE`")
    try:
        meta = json.loads(str(arrays["meta"]))
        extractor = ExtractorSpec(**meta["extractor"])
        n = int(meta["n"])
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        raise StatsError(f"stats file {name!r} has malformed metadata ({type(exc).__name__}: {exc})") from None
    mu, sigma = arrays["mu"], arrays["sigma"]
    dim = extractor.dim
    if mu.shape != (dim,) or sigma.shape != (dim, dim):
        raise StatsError(f"stats file {name!r}: mu {mu.shape} / sigma {sigma.shape} do not match the "
                         f"extractor's dimension {dim}")
    features = arrays.get("features")
    if features is not None and (features.ndim != 2 or features.shape[1] != dim):
        raise StatsError(f"stats file {name!r}: features have shape {features.shape}, expected (N, {dim})")
    for key, array in (("mu", mu), ("sigma", sigma), ("features", features)):
        if array is not None and (not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all()):
            raise StatsError(f"stats file {name!r}: '{key}' contains NaN/inf or is not floating point")
    return Stats(mu=mu.astype(np.float64), sigma=sigma.astype(np.float64), n=n, extractor=extractor, meta=meta,
                 features=None if features is None else features.astype(np.float32))


def check_compatible(spec: ExtractorSpec, ref: ExtractorSpec, ref_name: str, *, force_precision: bool = False) -> bool:
    """Raise StatsError when features from ``spec`` cannot be compared with reference ``ref``.

    A difference in precision alone is accepted with ``force_precision``; returns True when it was.
    """
    mine, theirs = spec.to_dict(), ref.to_dict()
    differing = [key for key in mine if mine[key] != theirs.get(key)]
    if differing == ["precision"] and force_precision:
        return True
    if differing:
        hint = " (pass --force to compare across precisions)" if differing == ["precision"] else ""
        raise StatsError(f"reference {ref_name!r} was computed with another extractor setup ("
                         + "; ".join(f"{key} {theirs.get(key)!r} vs {mine[key]!r}" for key in differing)
                         + f"): rebuild it with the same options, or change yours to match{hint}")
    return False
