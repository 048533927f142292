"""benchmarks/guidance_sweep.py end to end on a tiny untrained conditional DDPM, the stand-in extractor and digits."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import guidance_sweep
from genmetrics_models.checkpoint import save_checkpoint
from genmetrics_models.registry import build_model
from tests.models.conftest import TINY, seeded


def _checkpoint(folder: Path, name: str) -> Path:
    folder.mkdir()
    model = build_model(name, TINY[name], generator=seeded(0))
    save_checkpoint(folder, model, step=0, dataset="digits", seed=0, rng_state=torch.Generator().get_state())
    return folder


def test_the_sweep_scores_each_guidance_weight_and_plots_them(tmp_path, tiny_extractor, digits_reference,
                                                                capsys):
    run = _checkpoint(tmp_path / "ddpm", "ddpm")
    png, rows_json = tmp_path / "sweep.png", tmp_path / "sweep.json"
    code = guidance_sweep.main([str(run), "--scales", "0,1,3", "--ref", digits_reference, "--num-samples", "8",
                                "--extractor", tiny_extractor, "--sampling-steps", "2", "--out", str(png), "--json",
                                str(rows_json), "--no-progress"])
    assert code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads(rows_json.read_text())
    assert [row["guidance"] for row in rows] == [0.0, 1.0, 3.0]
    assert all(set(row) == {"guidance", "precision", "recall", "fid"} and row["fid"] > 0 for row in rows)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "guidance\tprecision\trecall\tfid" and len(lines) == 4
    assert rows[0]["fid"] != rows[2]["fid"]  # guidance changes the samples


def test_the_sweep_refuses_a_model_without_guidance(tmp_path, capsys):
    run = _checkpoint(tmp_path / "dcgan", "dcgan")
    assert guidance_sweep.main([str(run), "--no-progress", "--out", str(tmp_path / "x.png")]) == 2
    assert "holds a dcgan model; the sweep needs a conditional ddpm" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
