"""torchrun with 2 CPU processes (gloo) gives the numbers of 1 process; rank 0 alone prints and writes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import genmetrics
from tests.helpers import random_images, write_folder

REPO = Path(__file__).resolve().parents[2]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
               "-m", "genmetrics_cli", *args, "--no-progress"]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
           "HOME": str(Path.home()), "GENMETRICS_CACHE_DIR": os.environ["GENMETRICS_CACHE_DIR"]}  # the suite's cache
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600, env=env, check=False)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("dist")
    write_folder(root / "gen", random_images(9, size=32, seed=31))
    np.save(root / "ref.npy", random_images(11, size=32, seed=32))
    return root / "gen", root / "ref.npy"


@pytest.fixture
def one_thread():
    """The one-process run at the ranks' thread count (torchrun: OMP_NUM_THREADS=1): other thread counts pick other
    conv kernels, whose rounding differs by ~1e-6 relative in the features and more in the covariance."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_two_processes_match_one(sources, one_thread):
    gen, ref = sources
    proc = torchrun("score", str(gen), str(ref), "--metrics", "fid,kid,pr,dc", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('"provenance"') == 1  # rank 0 alone printed
    two = json.loads(proc.stdout)
    one = genmetrics.score(str(gen), str(ref), "fid,kid,pr,dc", progress=False)
    assert two["provenance"]["world_size"] == 2 and one.provenance["world_size"] == 1
    assert two["provenance"]["generated"]["n"] == 9 and two["provenance"]["reference"]["n"] == 11
    for key, value in one.metrics.items():
        assert two["metrics"][key] == pytest.approx(value, rel=1e-6, abs=1e-6), key


def test_two_processes_write_the_same_stats_once(sources, tmp_path, one_thread):
    gen, _ = sources
    out = tmp_path / "two.npz"
    proc = torchrun("stats", str(gen), "-o", str(out), "--features")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("wrote") == 1
    two = genmetrics.load_stats(out)
    one = genmetrics.compute_stats(str(gen), features=True, progress=False)
    assert two.n == one.n == 9
    np.testing.assert_allclose(two.features, one.features, rtol=0, atol=1e-6 * np.abs(one.features).max())
    np.testing.assert_allclose(two.mu, one.mu, rtol=0, atol=1e-6 * np.abs(one.mu).max())
    np.testing.assert_allclose(two.sigma, one.sigma, rtol=0, atol=1e-6 * np.abs(one.sigma).max())
    assert list(tmp_path.iterdir()) == [out]
