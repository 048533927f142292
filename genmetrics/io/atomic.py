"""Atomic file writes: a temp file in the target folder, fsync, then ``os.replace``.

A process killed while writing leaves at most a hidden ``.NAME.*.tmp`` beside the target, never a partial NAME.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from genmetrics.errors import InputError

_FIX = "choose a writable output path"


def _checked_folder(target: Path) -> Path:
    """The folder ``target`` will be written in; InputError if it is missing or ``target`` is a folder."""
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        what = f"{str(folder)!r} is a file, not a folder" if folder.exists() else \
            f"folder {str(folder)!r} does not exist"
        raise InputError(f"cannot write {str(target)!r}: {what} ({_FIX})")
    if target.is_dir():
        raise InputError(f"cannot write {str(target)!r}: it is a folder ({_FIX}: a file name)")
    return folder


def _temp_file(target: Path, folder: Path) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"cannot write {str(target)!r}: {exc.strerror or exc} ({_FIX})") from None


def check_writable(path: str | os.PathLike) -> None:
    """Raise InputError now, before any long work, unless ``atomic_write(path)`` can create its temp file."""
    target = Path(path)
    fd, tmp_name = _temp_file(target, _checked_folder(target))
    os.close(fd)
    os.unlink(tmp_name)


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary handle; on success the bytes appear at ``path`` all at once, on failure nothing does.

    Failing writes (disk full, permissions, ``path`` a folder) raise InputError naming ``path``.
    """
    target = Path(path)
    fd, tmp_name = _temp_file(target, _checked_folder(target))
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException as exc:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write {str(target)!r}: {exc.strerror or exc} ({_FIX})") from exc
        raise
