"""Atomic writes: a temp file in the target folder, fsync, then ``os.replace``; a folder of files likewise
(:func:`atomic_folder`, for the reference generators' image folders).

A process killed while writing leaves at most a hidden ``.NAME.*.tmp`` beside the target, never a partial NAME.
Outputs go only to regular files or new names: a path that is a folder, device, FIFO or socket is refused (the
rename would replace the node itself); a symbolic link has its target written atomically and stays a link. A
replaced file keeps its mode; a new one gets the mode the umask gives (0644 under umask 022).
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from genmetrics.errors import InputError

_FIX = "choose a writable output path"
_UMASK_LOCK = threading.Lock()


def _write_error(given: str | os.PathLike, exc: OSError) -> InputError:
    """The InputError of a failed write to ``given``."""
    return InputError(f"cannot write {str(given)!r}: {exc.strerror or exc} ({_FIX})")


def file_kind(mode: int) -> str:
    """What a non-regular file of ``mode`` (``os.stat().st_mode``) is, for messages: "a folder", "a FIFO (named
    pipe)", ..."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def output_target(path: str | os.PathLike) -> Path:
    """The file an output to ``path`` replaces: ``path`` itself or, for a symbolic link, the file it resolves to.
    InputError if that exists and is not a regular file, or its folder is missing."""
    given = Path(path)
    try:
        mode = os.stat(given).st_mode  # follows links: /proc/self/fd/1 is the pipe or terminal behind it
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as exc:
        raise _write_error(given, exc) from None
    if mode is not None and not stat.S_ISREG(mode):
        what = file_kind(mode)
        fix = f"{_FIX}: a file name" if what == "a folder" else f"{_FIX}: a regular file or a new name"
        raise InputError(f"cannot write {str(given)!r}: it is {what} ({fix})")
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
    check_parent(given, target)
    return target


def check_parent(given: str | os.PathLike, target: str | os.PathLike | None = None) -> Path:
    """The folder that ``target`` (default ``given``) is written in; InputError naming ``given`` if it is missing
    or a file."""
    target = Path(given if target is None else target)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        what = f"{str(folder)!r} is a file, not a folder" if folder.exists() else \
            f"folder {str(folder)!r} does not exist"
        raise InputError(f"cannot write {str(given)!r}: {what} ({_FIX})")
    return folder


def check_distinct(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]) -> None:
    """InputError if ``output`` exists and is the same file (inode) as one of ``inputs`` (paths; others ignored)."""
    if not os.path.exists(output):
        return
    for source in inputs:
        if isinstance(source, (str, os.PathLike)) and os.path.exists(source) and os.path.samefile(output, source):
            raise InputError(f"cannot write {str(output)!r}: it is {str(source)!r}, an input of this command "
                             "(choose another output path)")


def umask_mode(base: int = 0o666) -> int:
    """``base`` (0666 for files, 0777 for folders) without the process's umask bits: the mode of a new output."""
    with _UMASK_LOCK:
        umask = os.umask(0)
        os.umask(umask)
    return base & ~umask


def _temp_file(given: Path, target: Path) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise _write_error(given, exc) from None


def check_writable(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = ()) -> None:
    """Raise InputError now, before any long work, unless ``atomic_write(path)`` can create its temp file and
    ``path`` is none of ``inputs``."""
    check_distinct(path, inputs)
    given = Path(path)
    fd, tmp_name = _temp_file(given, output_target(given))
    os.close(fd)
    os.unlink(tmp_name)


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary handle; on success the bytes appear at ``path`` (a symlink's target) all at once, on
    failure nothing does.

    Failing writes (disk full, permissions, ``path`` a folder or device) raise InputError naming ``path``.
    """
    given = Path(path)
    target = output_target(given)
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else umask_mode()
    fd, tmp_name = _temp_file(given, target)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException as exc:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(given, exc) from exc
        raise


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new hidden temp folder beside ``path`` (a missing name or an empty folder) to fill; on success it
    is renamed to ``path`` in one step, on failure removed, so the folder appears complete or not at all. It gets
    the mode the umask gives (0755 under umask 022). Failing writes raise InputError naming ``path``."""
    target = Path(path)
    check_parent(target)
    try:
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
        tmp.chmod(umask_mode(0o777))  # mkdtemp's 0700 would hide the folder from the user's group
    except OSError as exc:
        raise _write_error(target, exc) from None
    try:
        yield tmp
        os.replace(tmp, target)  # replaces a missing or empty folder in one step
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise _write_error(target, exc) from exc
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    with atomic_write(path) as handle:
        handle.write(data)
