"""Atomic writes: every failure is an InputError naming the target, and nothing is left behind."""
from __future__ import annotations

import errno
import os

import pytest

from genmetrics.errors import InputError
from genmetrics.io import atomic
from genmetrics.io.atomic import atomic_write, check_writable


def test_success_replaces_the_target_at_once(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as handle:
        handle.write(b"new")
        assert target.read_bytes() == b"old"
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["out.bin"]


def test_a_folder_target_and_a_file_as_folder_are_refused_up_front(tmp_path):
    (tmp_path / "out.npz").mkdir()
    (tmp_path / "plain").write_text("x")
    cases = ((tmp_path / "out.npz", "it is a folder"), (tmp_path / "plain" / "o.npz", "is a file, not a folder"),
             (tmp_path / "missing" / "o.npz", "does not exist"))
    for path, match in cases:
        for check in (check_writable, lambda p: atomic_write(p).__enter__()):
            with pytest.raises(InputError, match=match):
                check(path)
    assert sorted(os.listdir(tmp_path)) == ["out.npz", "plain"] and os.listdir(tmp_path / "out.npz") == []


def test_failing_write_or_rename_is_an_input_error_and_leaves_nothing(tmp_path, monkeypatch):
    """Regression: OSError from the write or the rename (disk full, a folder at the target) escaped as a traceback."""
    with pytest.raises(InputError, match=r"cannot write .*out\.bin.*No space left"), \
            atomic_write(tmp_path / "out.bin") as handle:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def replace_onto_a_folder(*args):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))

    monkeypatch.setattr(atomic.os, "replace", replace_onto_a_folder)
    with pytest.raises(InputError, match=r"out\.bin.*Is a directory"), atomic_write(tmp_path / "out.bin") as handle:
        handle.write(b"x")
    assert os.listdir(tmp_path) == []


def test_check_writable_probes_without_leaving_a_file(tmp_path, monkeypatch):
    check_writable(tmp_path / "out.npz")
    assert os.listdir(tmp_path) == []

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", denied)  # root ignores permission bits, so simulate EACCES
    with pytest.raises(InputError, match=r"out\.npz.*Permission denied.*writable output path"):
        check_writable(tmp_path / "out.npz")
