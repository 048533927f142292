"""ADM reference batches: guided-diffusion's evaluator's ``.npz`` files, ``arr_0`` (uint8 NHWC images) and
optionally ``mu, sigma`` (pool3, 2048) and ``mu_s, sigma_s`` (sFID's spatial features, 2023) of the whole data set,
computed by the TF-Inception graph (whose internal resize ``resize="tf1"`` reproduces). Read without pickle; every
problem is a StatsError naming the file and the key."""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from genmetrics.errors import StatsError
from genmetrics.io.atomic import atomic_write
from genmetrics.config import SPATIAL_DIM
from genmetrics.io.statsfile import check_moments, npz_members

IMAGES_KEY = "arr_0"
STATS_KEYS = {"mu": "sigma", "mu_s": "sigma_s"}  # mean -> covariance
DIMS = {"mu": 2048, "mu_s": SPATIAL_DIM}
ADM_KEYS = (IMAGES_KEY, "mu", "sigma", "mu_s", "sigma_s")
MAX_IMAGES = 10_000  # images a written batch holds (guided-diffusion's reference batches hold 10,000)


@dataclass(frozen=True)
class AdmBatch:
    """One ADM batch: its path, the images' shape (N, H, W, C), and the statistics it holds (key -> array)."""

    path: str
    shape: tuple[int, ...]
    stats: dict[str, np.ndarray]

    @property
    def keys(self) -> list[str]:
        return [IMAGES_KEY, *self.stats]


def _is_adm_members(members: list[str] | None) -> bool:
    return (members is not None and IMAGES_KEY in members and set(members) <= set(ADM_KEYS)
            and len(members) > 1)


def is_adm_batch(path: Any) -> bool:
    """True for an .npz holding ``arr_0`` and only ADM's keys, at least one statistics key among them (a file of
    ``arr_0`` alone is a plain image array)."""
    return _is_adm_members(npz_members(path))


def ignored_keys(path: Any) -> list[str]:
    """The statistics keys of an ADM batch given as generated images (only ``arr_0`` is read)."""
    members = npz_members(path)
    return [key for key in ADM_KEYS[1:] if key in members] if _is_adm_members(members) else []


def _header(archive: zipfile.ZipFile, key: str, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of member ``key`` from its .npy header, without reading the data."""
    try:
        with archive.open(f"{key}.npy") as handle:
            version = np.lib.format.read_magic(handle)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(handle)
    except Exception as exc:
        raise StatsError(f"ADM batch {name!r}: member {key!r} is not a valid .npy array ({exc})") from None
    if dtype.hasobject:
        raise StatsError(f"ADM batch {name!r}: member {key!r} is a pickled object array, which is never loaded; "
                         "write it with np.savez from numeric arrays")
    return shape, dtype


def read_adm_batch(path: str | os.PathLike) -> AdmBatch:
    """The validated batch: ``arr_0`` uint8 (N, H, W, 1 or 3) with N >= 2 (checked from its header), each pair of
    statistics complete, of ADM's dimensions, finite and a covariance."""
    name = str(path)
    members = npz_members(path) or []
    with zipfile.ZipFile(path) as archive:
        shape, dtype = _header(archive, IMAGES_KEY, name)
        if dtype != np.uint8 or len(shape) != 4 or shape[3] not in (1, 3) or shape[0] < 2:
            raise StatsError(f"ADM batch {name!r}: '{IMAGES_KEY}' is {dtype} of shape {shape}; it must be uint8 "
                             "images (N, H, W, 3) (NHWC, N >= 2), as guided-diffusion's evaluator reads them")
        for key in ADM_KEYS[1:]:
            if key in members and _header(archive, key, name)[1].kind != "f":
                raise StatsError(f"ADM batch {name!r}: '{key}' is not floating point")
    stats: dict[str, np.ndarray] = {}
    with np.load(path, allow_pickle=False) as data:
        for mean, covariance in STATS_KEYS.items():
            present = [key for key in (mean, covariance) if key in members]
            if len(present) == 1:
                raise StatsError(f"ADM batch {name!r} holds {present[0]!r} without "
                                 f"{(covariance if present[0] == mean else mean)!r}; both or neither")
            if present:
                mu, sigma = data[mean], data[covariance]
                check_moments(name, mu, sigma, DIMS[mean], (mean, covariance), "ADM batch")
                stats.update({mean: mu.astype(np.float64), covariance: sigma.astype(np.float64)})
    return AdmBatch(name, tuple(shape), stats)


def write_adm_batch(path: str | os.PathLike, images: np.ndarray, stats: dict[str, np.ndarray]) -> None:
    """Write ``images`` (N, H, W, C) uint8 as ``arr_0`` and ``stats`` (mu, sigma[, mu_s, sigma_s]) atomically."""
    arrays = {IMAGES_KEY: np.ascontiguousarray(images, np.uint8),
              **{key: np.asarray(value, np.float64) for key, value in stats.items()}}
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)
