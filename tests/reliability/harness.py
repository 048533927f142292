"""Shared steps of the reliability catalogue: run the CLI in-process, check the one-line error policy, the
--skip-bad report and that no output or temp file is left behind."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from click.testing import CliRunner, Result
from PIL import Image

from genmetrics_cli.main import cli
from genmetrics.io.images import open_source
from tests.helpers import random_images, write_folder

TINY = ("--extractor", "tiny", "--no-progress")
"""The stand-in extractor (tests.helpers.TinyExtractor, registered by the ``tiny`` fixture) through the real engine,
cache, statistics and metrics; only the network differs."""


def run(*args: str | os.PathLike) -> Result:
    """``genmetrics ARGS`` in this process."""
    return CliRunner().invoke(cli, [os.fspath(a) for a in args])


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """Exit code 2, nothing on stdout, one ``error: ...`` line on stderr holding every fragment, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.stdout == "" and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def score_json(gen: str | os.PathLike, ref: str | os.PathLike, *options: str) -> dict[str, Any]:
    """``genmetrics score GEN REF --metrics fid --json`` with the stand-in extractor; the parsed output."""
    result = run("score", gen, ref, "--metrics", "fid", "--json", *TINY, *options)
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def good_folder(folder: Path, n: int = 4, seed: int = 0) -> Path:
    """``folder`` with ``n`` valid 32x32 PNGs (img_0000.png, ...)."""
    write_folder(folder, random_images(n, size=32, seed=seed))
    return folder


def leftovers(folder: Path) -> list[str]:
    """Output or temp files in ``folder`` (the stats target ``out.npz`` or any ``*.tmp``)."""
    return sorted(p.name for p in folder.iterdir() if p.name == "out.npz" or p.name.endswith(".tmp"))


def assert_bad_file_policy(folder: Path, bad_name: str, reason: str, tmp_path: Path) -> None:
    """Strict: `stats` stops with one line naming ``bad_name`` and ``reason``, writing nothing. --skip-bad: the
    score goes on without it and the provenance counts and names it."""
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    strict = run("stats", folder, "-o", out_dir / "out.npz", *TINY)
    assert_one_line_error(strict, bad_name, reason, "--skip-bad")
    assert leftovers(out_dir) == []
    report = score_json(folder, folder, "--skip-bad")
    good = len(open_source(str(folder))) - 1
    for side in ("generated", "reference"):
        assert report["provenance"][side]["n"] == good
        assert report["provenance"][side]["n_skipped"] == 1
        assert report["provenance"][side]["skipped"][0].endswith(bad_name)
    assert abs(report["metrics"]["fid"]) < 1e-6


def encoded(image: Image.Image, fmt: str, **save_args: Any) -> bytes:
    """``image`` encoded as ``fmt``."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


def load_named(folder: Path, name: str) -> np.ndarray:
    """File ``name`` of ``folder`` decoded through a folder source: (H, W, 3) uint8."""
    source = open_source(str(folder))
    return source.load([source.name(i) for i in range(len(source))].index(name))


def assert_decodes_and_scores(folder: Path, name: str, expected: np.ndarray) -> None:
    """File ``name`` of ``folder`` decodes to ``expected`` (H, W, 3) uint8, and scoring the folder succeeds."""
    decoded = load_named(folder, name)
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, expected)
    report = score_json(folder, folder)
    assert report["provenance"]["generated"]["n"] == len(open_source(str(folder)))
    assert report["provenance"]["generated"]["n_skipped"] == 0


def load_entry(path: Path) -> dict[str, np.ndarray]:
    """The arrays of one feature-cache entry, read as the cache reads them (no pickle)."""
    with np.load(path, allow_pickle=False) as entry:
        return {name: entry[name] for name in entry.files}
