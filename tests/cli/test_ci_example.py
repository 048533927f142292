"""examples/ci: the GitHub Actions workflow's compare command runs as written on two model checkpoints."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from genmetrics_models.checkpoint import save_checkpoint
from genmetrics_models.registry import build_model

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "examples" / "ci" / "genmetrics-compare.yml"


def test_workflow_compare_command_runs_on_two_checkpoints(tmp_path):
    line = next(row.strip() for row in WORKFLOW.read_text().splitlines() if row.strip().startswith("genmetrics compare"))
    assert '--format markdown --output compare.md' in line and '--fail-if "fid>+1"' in line
    for name in ("baseline", "candidate"):  # one model saved twice: no change, so every check must pass
        (tmp_path / name).mkdir()
        model = build_model("dcgan", {"width": 8, "z_dim": 8, "batch_size": 8}, generator=torch.Generator().manual_seed(0))
        save_checkpoint(tmp_path / name, model, step=1, dataset="digits", seed=0, rng_state=torch.Generator().get_state())
    reference = tmp_path / "reference.npy"
    np.save(reference, np.random.default_rng(0).integers(0, 256, (24, 28, 28, 1), dtype=np.uint8))
    env = {**os.environ, "BASELINE": str(tmp_path / "baseline"), "CANDIDATE": str(tmp_path / "candidate"),
           "REF": str(reference), "NUM_SAMPLES": "24", "PYTHONPATH": str(REPO)}
    command = line.replace("genmetrics compare", f"{sys.executable} -m genmetrics_cli compare", 1)
    proc = subprocess.run(["bash", "-c", command], check=False, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "compare.md").read_text()
    assert report.startswith("### ✅ genmetrics compare: passed") and report == proc.stdout
    assert "pass (fid>+1)" in report and "pass (recall<-0.02)" in report
    assert "baseline N=24, candidate N=24" in report
