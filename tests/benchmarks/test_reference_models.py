"""benchmarks/reference_models.py's table pieces (class accuracy, shipped rows, anchors, shipping) and
benchmarks/fid_curves.py."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmarks import fid_curves, reference_models
from benchmarks.class_fidelity import class_fidelity
from genmetrics_models.checkpoint import PRETRAINED_DIR, read_config, save_checkpoint
from genmetrics_models.registry import build_model
from tests.helpers import fashion_mnist_subset
from tests.models.conftest import TINY, seeded


def test_the_class_accuracy_of_a_sample_file_is_fashion_cnns_on_its_stored_labels(tmp_path):
    images, labels = fashion_mnist_subset("test")
    images, labels = images[:300, :, :, None], labels[:300].astype(np.int64)
    path = tmp_path / "cgan.samples.npz"
    np.savez(path, images=images, labels=labels)
    accuracy = reference_models.samples_class_accuracy(path)
    assert accuracy == class_fidelity(images, labels).accuracy
    assert 0.85 < accuracy < 0.97  # real test images: fashion-cnn's 91.7% test accuracy
    np.savez(path, images=images, labels=(labels + 1) % 10)
    assert reference_models.samples_class_accuracy(path) < 0.05
    np.savez(path, images=images)
    with pytest.raises(SystemExit, match="no 'labels' array"):
        reference_models.samples_class_accuracy(path)


def test_a_shipped_row_is_read_from_the_results_file():
    row = reference_models.shipped_row(PRETRAINED_DIR / "results.json", "vae")
    assert row["model"] == "vae" and row["inception"]["fid"] > 0
    with pytest.raises(SystemExit, match="no row 'gan'"):
        reference_models.shipped_row(PRETRAINED_DIR / "results.json", "gan")


def _row(model: str, fid: float | None, accuracy: float | None = None) -> dict:
    fashion = {"fid": 10.0, "kid_mean": 0.1, "kid_std": 0.01, "is_mean": 5.0, "is_std": 0.1}
    inception = None if fid is None else {"fid": fid, "kid_mean": 0.02, "kid_std": 0.001, "precision": 0.5,
                                          "recall": 0.4}
    return {"model": model, "step": 100, "train_s": 60.0, "sample_img_per_s": 1000.0, "inception": inception,
            "fashion_cnn": fashion, "class_accuracy": accuracy}


def test_each_row_stands_next_to_its_anchor_with_the_verdict():
    assert reference_models.anchor_cell(_row("dcgan", 20.0)) == "| 26.5 (NS-GAN, Lucic et al. 2018) ✓ met "
    assert reference_models.anchor_cell(_row("wgan-gp", 49.0)) == "| 24.5 (WGAN-GP, Lucic et al. 2018) ✗ 2.0× it "
    assert reference_models.anchor_cell(_row("vae", None)) == "| 43.6 (VAE, Dai & Wipf 2019) "
    assert reference_models.anchor_cell(_row("pixelcnn", 90.0)) == "| — "


def test_the_table_has_a_class_accuracy_column_when_a_row_is_conditional():
    lines = reference_models.markdown([_row("dcgan", 30.0), _row("cgan", 28.0, 0.934)]).splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[-2:] == ["class accuracy", "anchor FID"] and lines[1].count("|") == lines[2].count("|")
    assert "| 0.934 |" in lines[3] and "| — | 26.5" in lines[2]
    assert "class accuracy" not in reference_models.markdown([_row("dcgan", 30.0)])


def test_fid_curves_reads_histories_prints_the_trend_and_plots(tmp_path, capsys):
    for name, fids in {"a": [40.0, 30.0, 25.0, 24.0], "b": [90.0, 80.0, 85.0, 88.0]}.items():
        (tmp_path / name).mkdir()
        metrics = [{"step": 100 * (i + 1), "fid": fid, "recall": 0.1 * i} for i, fid in enumerate(fids)]
        history = {"losses": [], "metrics": [{"step": 50, "is_mean": 2.0}, *metrics]}  # a row without FID is skipped
        (tmp_path / name / "history.json").write_text(json.dumps(history))
    png = tmp_path / "curves.png"
    assert fid_curves.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "folder\tstep\tFID\trecall" and "a\t400\t24.000\t0.3000" in out
    assert "# a: FID change over the last quarter of its steps -1.000" in out  # steps 300..400: 25 -> 24
    assert "# b: FID change over the last quarter of its steps +3.000" in out
    with pytest.raises(SystemExit, match="no history.json"):
        fid_curves.curve(tmp_path)


def test_shipping_replaces_rows_in_place_and_copies_weights_grid_and_history(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "shipped"
    (runs / "dcgan").mkdir(parents=True)
    model = build_model("dcgan", TINY["dcgan"], generator=seeded(0))
    save_checkpoint(runs / "dcgan", model, step=3, dataset="digits", seed=0, rng_state=torch.Generator().get_state())
    (runs / "dcgan" / "samples-00000003.png").write_bytes(b"png")
    (runs / "dcgan" / "history.json").write_text('{"losses": [], "metrics": []}')
    out.mkdir()
    (out / "results.json").write_text(json.dumps([{"model": "vae"}, {"model": "dcgan", "step": 1},
                                                  {"model": "ae"}]))
    reference_models.ship(runs, [{"model": "dcgan", "checkpoint": "dcgan", "step": 3}, {"model": "x",
                                  "checkpoint": "dcgan", "step": 3}], out)
    rows = json.loads((out / "results.json").read_text())
    assert [row["model"] for row in rows] == ["vae", "dcgan", "ae", "x"] and rows[1]["step"] == 3
    assert sorted(path.name for path in (out / "dcgan").iterdir()) == [
        "history.json", "samples.png", "step-00000003.json", "step-00000003.safetensors"]
    assert read_config(out / "dcgan")["optimizers"] == {}


def test_a_warm_started_row_shows_its_two_parts_of_training():
    assert reference_models.steps_cell(_row("vae", 50.0)) == "100"
    warm = {**_row("ddpm-cfg", 14.0), "step": 20_000, "warm_start_step": 5_000}
    assert reference_models.steps_cell(warm) == "5,000 + 15,000 warm"
    assert "| `ddpm-cfg` | 5,000 + 15,000 warm | 1.0 min |" in reference_models.markdown([warm])
