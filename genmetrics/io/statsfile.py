"""Statistics files: ``.npz`` with pytorch-fid's keys ``mu`` (D,) and ``sigma`` (D, D) in fp64, a ``meta``
entry holding JSON (extractor spec, N, source, content hash, versions) and, optionally, ``features``
(M, D) float32, or float16 when stored compactly, for precision/recall and KID: all N rows, or a seeded
subset of M rows described by ``meta["features_subset"]``; with sFID, ``mu_s`` (2023,) and ``sigma_s`` (2023,
2023) of the spatial features (guided-diffusion's keys). Read and written without pickle; writes are atomic.

A file without the metadata (pytorch-fid's ``--save-stats``, TTUR's ``fid_stats_*.npz``) says nothing of what
produced it and is refused, unless the caller vouches for it (``trust=`` the current extractor's spec)."""
from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.linalg import lapack

from genmetrics.config import SPATIAL_DIM, ExtractorSpec
from genmetrics.errors import StatsError, phrase, spell
from genmetrics.io.atomic import atomic_write, check_writable
from genmetrics.stats import is_symmetric

FORMAT = "genmetrics-stats/1"
ARRAYS = ("mu", "sigma", "meta", "features", "mu_s", "sigma_s")  # the members read; any other is never loaded
MAX_UNKNOWN_DIM = 4096  # largest feature dimension of a stats file without metadata (pool3: 2048)
MAX_META_DEPTH = 32  # nesting levels of the metadata JSON
MAX_META_BYTES = 16 << 20  # the metadata member, inflated
MAX_N = 10 ** 12  # a larger sample count is not a real data set
MAX_ABS = 1e100  # larger statistics overflow fp64 in FID's squares and products
PSD_RTOL = 1e-8  # sigma + PSD_RTOL * max(diag) * I must factor: covariances are PSD up to round-off


@dataclass(frozen=True)
class Stats:
    """Mean and covariance of one feature set, with what produced it."""

    mu: np.ndarray  # (D,) float64
    sigma: np.ndarray  # (D, D) float64
    n: int
    extractor: ExtractorSpec
    meta: dict  # the whole metadata record (source, content_hash, versions, ...)
    features: np.ndarray | None = None  # (M, D) float32 (float16 kept as is when saving), M <= n, when stored
    mu_s: np.ndarray | None = None  # (2023,) float64: sFID's spatial features' mean, when computed
    sigma_s: np.ndarray | None = None  # (2023, 2023) float64: their covariance


def stats_command(features: bool = False, spatial: bool = False) -> str:
    """The call that writes a stats file (with the feature matrix when ``features``, sFID's statistics when
    ``spatial``), as the caller writes it: ``genmetrics.compute_stats(SRC, FILE)`` for Python callers,
    ``genmetrics stats SRC -o FILE`` for CLI users."""
    python = "".join(option for option, wanted in ((", features=True", features), (", sfid=True", spatial)) if wanted)
    cli = "".join(option for option, wanted in ((" --features", features), (" --sfid", spatial)) if wanted)
    return phrase(f"`genmetrics.compute_stats(SRC, FILE{python})`", f"`genmetrics stats SRC -o FILE{cli}`")


def npz_members(path: Any) -> list[str] | None:
    """The member names of the .npz file ``path`` (without ".npy"), or None when ``path`` is not a path to a
    readable .npz file (a BadZipFile or an unknown zip version: the image reader then says why)."""
    if not isinstance(path, (str, os.PathLike)) or Path(path).suffix != ".npz" or not Path(path).is_file():
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            return [name.removesuffix(".npy") for name in archive.namelist()]
    except Exception:  # BadZipFile, NotImplementedError (zip version), ...
        return None


def check_output(path: str | os.PathLike, inputs: Iterable[Any] = ()) -> None:
    """Raise now, before any extraction, unless stats can be saved to ``path``: an .npz name in a writable folder,
    not one of ``inputs``."""
    if Path(path).suffix != ".npz":
        raise StatsError(f"stats output {str(path)!r} must end in .npz")
    check_writable(path, inputs)


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
    if stats.mu_s is not None:
        arrays.update(mu_s=np.asarray(stats.mu_s, np.float64), sigma_s=np.asarray(stats.sigma_s, np.float64))
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def load_stats(path: str | os.PathLike, *, trust: ExtractorSpec | None = None) -> Stats:
    """Read and validate a stats file; every problem is a StatsError naming the file. ``trust``: a file without
    genmetrics metadata is accepted as computed with this spec (its n is then unknown: None)."""
    name = str(path)
    arrays, meta = _read_file(path, name)
    if not {"mu", "sigma"} <= arrays.keys():
        raise StatsError(f"stats file {name!r} lacks 'mu' and 'sigma' (has {sorted(arrays)})")
    if meta is None and trust is None:
        raise StatsError(f"stats file {name!r} has no genmetrics metadata (a pytorch-fid file?), so its extractor "
                         f"and resize cannot be checked; rebuild it with {stats_command()}, or pass "
                         f"{spell('trust_stats')} if you know it was computed with the extractor setup of this run")
    extractor, n = (trust, None) if meta is None else _spec_and_n(meta, name)
    if meta is None:
        meta = {"source": "(unknown: a stats file without metadata)", "trusted_without_metadata": True}
    dim = extractor.dim
    check_moments(name, arrays["mu"], arrays["sigma"], dim)
    if ("mu_s" in arrays) != ("sigma_s" in arrays):
        raise StatsError(f"stats file {name!r} holds only one of 'mu_s' and 'sigma_s'; rebuild it with "
                         f"{stats_command()}")
    if "mu_s" in arrays:
        check_moments(name, arrays["mu_s"], arrays["sigma_s"], SPATIAL_DIM, ("mu_s", "sigma_s"))
    features = _checked_features(arrays.get("features"), name, dim, n, meta)
    spatial = {key: arrays[key].astype(np.float64) for key in ("mu_s", "sigma_s") if key in arrays}
    return Stats(mu=arrays["mu"].astype(np.float64), sigma=arrays["sigma"].astype(np.float64), n=n,
                 extractor=extractor, meta=meta, features=features, **spatial)


def _read_file(path: str | os.PathLike, name: str) -> tuple[dict[str, np.ndarray], dict | None]:
    """The members of ``ARRAYS`` in stats file ``name`` and its metadata (None without), read without pickle."""
    if Path(path).is_file() and not zipfile.is_zipfile(path):
        raise StatsError(f"stats file {name!r} is not a valid .npz file; write one with "
                         f"{stats_command()}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return _read_members(data, name)
    except FileNotFoundError:
        raise StatsError(f"stats file {name!r} does not exist") from None
    except StatsError:
        raise
    except Exception as exc:  # OSError, BadZipFile, EOFError, NotImplementedError (zip version), TokenError, ...
        if isinstance(exc, ValueError) and "pickle" in str(exc):  # refused by allow_pickle=False, never executed
            raise StatsError(f"stats file {name!r} cannot be read without pickle ({exc}); rebuild it with "
                             f"{stats_command()}") from None
        raise StatsError(f"stats file {name!r} is not a valid .npz file ({type(exc).__name__}: {exc})") from None


def _spec_and_n(meta: dict, name: str) -> tuple[ExtractorSpec, int]:
    try:
        extractor = ExtractorSpec(**meta["extractor"])
        n = meta["n"]
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        raise StatsError(f"stats file {name!r} has malformed metadata ({type(exc).__name__}: {exc})") from None
    if type(n) is not int or not 2 <= n <= MAX_N:
        raise StatsError(f"stats file {name!r}: its metadata gives n={n!r} samples; statistics need an integer "
                         f"from 2 to {MAX_N:.0e} (rebuild the file with {stats_command()})")
    return extractor, n


def check_finite_bounded(name: str, key: str, array: np.ndarray, kind: str = "stats file") -> None:
    """StatsError unless member ``key`` of the ``kind`` file ``name`` is floating point, finite and within
    MAX_ABS."""
    if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
        raise StatsError(f"{kind} {name!r}: '{key}' contains NaN/inf or is not floating point")
    largest = float(np.abs(array).max()) if array.size else 0.0
    if largest > MAX_ABS:
        raise StatsError(f"{kind} {name!r}: '{key}' holds values up to {largest:.3g}, beyond "
                         f"{MAX_ABS:.0e}: they overflow fp64 in the metrics; rebuild it with {stats_command()}")


def check_moments(name: str, mu: np.ndarray, sigma: np.ndarray, dim: int, keys: tuple[str, str] = ("mu", "sigma"),
                  kind: str = "stats file") -> None:
    """StatsError unless ``mu`` (dim,) and ``sigma`` (dim, dim) of the ``kind`` file ``name`` (members ``keys``)
    are finite, bounded floats and sigma a covariance matrix."""
    if mu.shape != (dim,) or sigma.shape != (dim, dim):
        raise StatsError(f"{kind} {name!r}: {keys[0]} {mu.shape} / {keys[1]} {sigma.shape} do not match the "
                         f"extractor's dimension {dim}")
    for key, array in zip(keys, (mu, sigma)):
        check_finite_bounded(name, key, array, kind)
    _check_covariance(sigma.astype(np.float64), name, keys[1], kind)


def _checked_features(features: np.ndarray | None, name: str, dim: int, n: int | None, meta: dict
                      ) -> np.ndarray | None:
    """The stored feature rows (M, dim) as float32, checked against n and the metadata."""
    if features is None:
        return None
    if features.ndim != 2 or features.shape[1] != dim:
        raise StatsError(f"stats file {name!r}: features have shape {features.shape}, expected (N, {dim})")
    if len(features) < 2:
        raise StatsError(f"stats file {name!r}: 'features' has {len(features)} rows; KID and the k-NN metrics need at "
                         f"least 2 feature rows (rebuild it with {stats_command(features=True)})")
    if n is not None and (len(features) > n or (len(features) < n and "features_subset" not in meta)):
        raise StatsError(f"stats file {name!r}: {len(features)} feature rows for n={n} samples (a subset must be "
                         "described by 'features_subset' in the metadata); rebuild it with "
                         f"{stats_command()}")
    check_finite_bounded(name, "features", features)
    return features.astype(np.float32)


def _read_members(data: np.lib.npyio.NpzFile, name: str) -> tuple[dict[str, np.ndarray], dict | None]:
    """The arrays 'mu', 'sigma' and 'features' of ``data`` and its metadata (:func:`_read_meta`; None without
    one). No other member is read, and each is refused before it is inflated when its size exceeds what the
    metadata's dimension and n allow (a few kilobytes on disk can inflate to gigabytes)."""
    sizes = {key: data.zip.getinfo(f"{key}.npy").file_size for key in ARRAYS if key in data.files}
    limits: dict[str, int] = {}
    if sizes.get("meta", 0) > MAX_META_BYTES:
        raise StatsError(f"stats file {name!r}: its metadata inflates to {sizes['meta']:,} bytes, more than "
                         f"{MAX_META_BYTES:,}; rebuild it with {stats_command()}")
    meta = _read_meta(data["meta"], name) if "meta" in sizes else None
    # Without metadata (a trusted pytorch-fid file) the dimension is not known before reading: at most MAX_UNKNOWN_DIM.
    limits.update(mu=8 * MAX_UNKNOWN_DIM + 4096, sigma=8 * MAX_UNKNOWN_DIM ** 2 + 4096,
                  mu_s=8 * SPATIAL_DIM + 4096, sigma_s=8 * SPATIAL_DIM ** 2 + 4096)
    try:
        dim, n = int(meta["extractor"]["dim"]), int(meta["n"])
        if dim >= 1 and 2 <= n <= MAX_N:
            limits.update(mu=8 * dim + 4096, sigma=8 * dim * dim + 4096, features=8 * n * dim + 4096)
    except (KeyError, TypeError, ValueError, OverflowError):
        pass  # no or malformed metadata: refused with its reason after this
    for key, size in sizes.items():
        if size > limits.get(key, size):
            raise StatsError(f"stats file {name!r}: member '{key}' inflates to {size:,} bytes, more than its "
                             f"metadata allows ({limits[key]:,}); rebuild it with {stats_command()}")
    return {key: data[key] for key in sizes if key != "meta"}, meta


def _read_meta(raw: np.ndarray, name: str) -> dict:
    """The metadata JSON object of stats file ``name``: no NaN/Infinity tokens, at most MAX_META_DEPTH levels."""
    def refuse(token: str) -> None:
        raise ValueError(f"{token} is not JSON")

    try:
        meta = json.loads(str(raw), parse_constant=refuse)
    except RecursionError:
        meta = None
    except ValueError as exc:
        raise StatsError(f"stats file {name!r} has malformed metadata (ValueError: {exc})") from None
    stack, depth_ok = [(meta, 1)], meta is not None
    while stack and depth_ok:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        depth_ok = depth <= MAX_META_DEPTH
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    if not depth_ok:
        raise StatsError(f"stats file {name!r}: its metadata is nested deeper than {MAX_META_DEPTH} levels; rebuild "
                         f"it with {stats_command()}")
    if not isinstance(meta, dict):
        raise StatsError(f"stats file {name!r} has malformed metadata (not a JSON object)")
    return meta


def _check_covariance(sigma: np.ndarray, name: str, key: str = "sigma", kind: str = "stats file") -> None:
    """StatsError unless ``sigma`` (d, d) fp64 is symmetric and positive semi-definite up to round-off: the
    Cholesky factorisation of sigma + PSD_RTOL * max(diag) * I succeeds (an eigenvalue below about -PSD_RTOL *
    max(diag) makes it fail)."""
    if not is_symmetric(sigma):
        raise StatsError(f"{kind} {name!r}: '{key}' is not symmetric, so it is no covariance matrix; rebuild "
                         f"it with {stats_command()}")
    shift = PSD_RTOL * max(float(np.diag(sigma).max(initial=0.0)), 0.0) + np.finfo(np.float64).tiny
    _, info = lapack.dpotrf(sigma + shift * np.eye(len(sigma)), lower=1, clean=0, overwrite_a=1)
    if info != 0 or np.diag(sigma).min(initial=0.0) < 0:
        raise StatsError(f"{kind} {name!r}: '{key}' is not positive semi-definite (a covariance matrix is), "
                         f"so it cannot give a valid FID; rebuild it with {stats_command()}")


def check_compatible(spec: ExtractorSpec, ref: ExtractorSpec, ref_name: str, *, force_precision: bool = False) -> bool:
    """Raise StatsError when features from ``spec`` cannot be compared with reference ``ref``.

    A difference in precision alone is accepted with ``force_precision``; returns True when it was.
    """
    mine, theirs = spec.to_dict(), ref.to_dict()
    differing = [key for key in mine if mine[key] != theirs.get(key)]
    if differing == ["precision"] and force_precision:
        return True
    if differing:
        hint = f" (pass {spell('force')} to compare across precisions)" if differing == ["precision"] else ""
        raise StatsError(f"reference {ref_name!r} was computed with another extractor setup ("
                         + "; ".join(f"{key} {theirs.get(key)!r} vs {mine[key]!r}" for key in differing)
                         + f"): rebuild it with the same options, or change yours to match{hint}")
    return False
