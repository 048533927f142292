"""Atomic output files: bytes go to a hidden temp file beside the target, are fsynced, then renamed over it.

A process killed while writing leaves at most a hidden ``.NAME.*.tmp``, never a partial NAME.
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from genmetrics.errors import InputError


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; InputError naming ``path`` if it cannot be written."""
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"cannot write {str(target)!r}: {exc.strerror or exc} (choose a writable output path)") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write {str(target)!r}: {exc.strerror or exc} (choose a writable output "
                             "path)") from exc
        raise


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W) or (H, W, 1) uint8 -> PNG file bytes (8-bit grayscale)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image.reshape(image.shape[:2]))).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png_folder(folder: str | os.PathLike, images: np.ndarray) -> None:
    """Write (N, H, W, 1) uint8 images as ``folder/000000.png``, ...; the folder appears complete or not at all.

    ``folder`` must not exist or be empty (InputError otherwise): files are written into a hidden temp folder
    beside it, which is then renamed to ``folder``.
    """
    target = Path(folder)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"cannot write images to {str(target)!r}: it exists and is not an empty folder "
                         "(choose a new folder, or a file name ending in .npz)")
    if not target.parent.is_dir():
        raise InputError(f"cannot write {str(target)!r}: folder {str(target.parent)!r} does not exist")
    try:
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    except OSError as exc:
        raise InputError(f"cannot write {str(target)!r}: {exc.strerror or exc} (choose a writable output path)") from None
    try:
        for i, image in enumerate(images):
            (tmp / f"{i:06d}.png").write_bytes(png_bytes(image))
        os.replace(tmp, target)  # replaces a missing or empty folder in one step
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from exc
        raise


def npy_bytes(array: np.ndarray) -> bytes:
    """A ``.npy`` file holding ``array`` (no pickled objects)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """An uncompressed ``.npz`` holding ``arrays`` (no pickled objects)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()
