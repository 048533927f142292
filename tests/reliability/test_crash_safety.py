"""Crash safety: runs killed with SIGKILL leave no partial stats file and only complete cache entries, and a rerun
gives the same numbers as an uninterrupted run; concurrent runs share one cache.

Child processes are real `genmetrics` runs (``python -m genmetrics_cli``, TF-Inception, one CPU thread) or, for the kills at an
exact moment and the concurrency test, the same CLI with the stand-in extractor (``tests.reliability.tiny_cli``).
The API-level two-process cache fill is tests/features/test_cache.py::test_two_processes_filling_one_empty_cache_agree.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import genmetrics
from tests.helpers import random_images, write_folder
from tests.reliability.harness import load_entry

REPO = Path(__file__).resolve().parents[2]
N = 24


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "imgs"
    write_folder(path, random_images(N, size=32, seed=30))
    return path


def _env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "GENMETRICS_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
            **extra}


def _start(module: str, *args: str | Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module, *map(str, args), "--no-progress"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen, timeout: float = 300) -> None:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    assert "wrote " in out


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*/??/*.npz"))


def _assert_complete_entries(cache: Path, dim: int) -> int:
    """Every cache entry loads without pickle and holds (dim,) float32 features; returns how many there are."""
    entries = _entries(cache)
    for path in entries:
        entry = load_entry(path)
        assert entry["features"].shape == (dim,) and entry["features"].dtype == np.float32, path
    return len(entries)


def _assert_same_stats(a: Path, b: Path) -> None:
    first, second = genmetrics.load_stats(a), genmetrics.load_stats(b)
    assert first.n == second.n == N
    np.testing.assert_array_equal(first.mu, second.mu)
    np.testing.assert_array_equal(first.sigma, second.sigma)


def test_sigkill_midway_through_stats_and_its_cache_fill(folder, tmp_path):
    """`genmetrics stats` (TF-Inception, batch size 1) killed once the cache holds a few entries: no out.npz and no
    temp file beside it, only complete cache entries; the rerun reuses them and equals an uninterrupted run."""
    cache, out_dir = tmp_path / "cache", tmp_path / "out"
    out_dir.mkdir()
    command = ("stats", folder, "-o", out_dir / "out.npz", "--batch-size", "1")
    child = _start("genmetrics_cli", *command, env=_env(cache))
    deadline = time.monotonic() + 240
    while len(_entries(cache)) < 3 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL, "the run ended before it could be killed midway"
    assert os.listdir(out_dir) == []
    done = _assert_complete_entries(cache, 2048)
    assert 3 <= done < N
    _finish(_start("genmetrics_cli", *command, env=_env(cache)))
    assert _assert_complete_entries(cache, 2048) == N
    _finish(_start("genmetrics_cli", "stats", folder, "-o", tmp_path / "fresh.npz", "--batch-size", "1", "--no-cache",
                   env=_env(tmp_path / "unused")))
    assert not (tmp_path / "unused").exists()
    _assert_same_stats(out_dir / "out.npz", tmp_path / "fresh.npz")


@pytest.mark.parametrize("moment", ["cache-entry", "stats-file"])
def test_sigkill_while_writing(folder, tmp_path, moment):
    """Killed halfway through writing the 5th cache entry, or the stats file itself: the target never exists half
    written (at most a hidden .NAME.*.tmp stays beside it), and the rerun equals an uninterrupted run."""
    cache, out_dir = tmp_path / "cache", tmp_path / "out"
    out_dir.mkdir()
    command = ("stats", folder, "-o", out_dir / "out.npz", "--extractor", "tiny", "--batch-size", "1")
    kill_at = "5" if moment == "cache-entry" else str(N + 1)  # each image's entry, then the stats file
    child = _start("tests.reliability.tiny_cli", *command, env=_env(cache, TINY_KILL_AT_SAVEZ=kill_at))
    child.communicate(timeout=300)
    assert child.returncode == -signal.SIGKILL
    assert not (out_dir / "out.npz").exists()
    stray = [p for p in [*out_dir.iterdir(), *cache.rglob("*.tmp")] if p.name.endswith(".tmp")]
    assert [p.name.startswith(".") for p in stray] == [True]  # the one interrupted write, hidden
    assert _assert_complete_entries(cache, 16) == (4 if moment == "cache-entry" else N)
    _finish(_start("tests.reliability.tiny_cli", *command, env=_env(cache)))
    _finish(_start("tests.reliability.tiny_cli", "stats", folder, "-o", tmp_path / "fresh.npz", "--extractor", "tiny",
                   "--batch-size", "1", "--no-cache", env=_env(cache)))
    _assert_same_stats(out_dir / "out.npz", tmp_path / "fresh.npz")
    assert _assert_complete_entries(cache, 16) == N


def test_two_runs_fill_one_cache_at_once(folder, tmp_path):
    """Two `genmetrics stats` processes (each forward pass sleeping 0.1 s, so they overlap) fill one empty cache:
    both finish, their stats files are identical, and the cache holds one complete entry per image."""
    cache = tmp_path / "cache"
    children = [_start("tests.reliability.tiny_cli", "stats", folder, "-o", tmp_path / f"out{i}.npz", "--extractor",
                       "tiny", "--batch-size", "2", env=_env(cache, TINY_DELAY="0.1")) for i in range(2)]
    for child in children:
        _finish(child)
    _assert_same_stats(tmp_path / "out0.npz", tmp_path / "out1.npz")
    assert _assert_complete_entries(cache, 16) == N and not list(cache.rglob("*.tmp"))
