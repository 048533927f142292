"""`genmetrics compare`: decisions against a shipped reference, reports, seeding and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFilter

import genmetrics
from genmetrics_cli.main import cli
from genmetrics.compare import Check, compare
from genmetrics.errors import ConfigError
from tests.helpers import fashion_mnist_subset, random_images, write_folder


def run(*args: str):
    return CliRunner().invoke(cli, ["compare", *args, "--no-progress"])


@pytest.fixture(scope="module")
def fashion(tmp_path_factory) -> dict[str, Path]:
    """40 Fashion-MNIST training images (4 per class), a re-shuffled copy and a blurred copy, as PNG folders."""
    root = tmp_path_factory.mktemp("fashion")
    images = fashion_mnist_subset("train")[0][::10]
    blurred = np.stack([np.asarray(Image.fromarray(i).filter(ImageFilter.GaussianBlur(2))) for i in images])
    shuffled = images[np.random.default_rng(1).permutation(len(images))]
    for name, array in (("a", images), ("shuffled", shuffled), ("blurred", blurred)):
        write_folder(root / name, array)
    return {name: root / name for name in ("a", "shuffled", "blurred")}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("small")
    for name, seed in (("a", 1), ("b", 2), ("ref", 3)):
        write_folder(root / name, random_images(20, size=32, seed=seed))
    return {name: root / name for name in ("a", "b", "ref")}


def test_blurred_candidate_fails_against_the_shipped_reference(fashion):
    result = run(str(fashion["a"]), str(fashion["blurred"]), "--ref", "fashion-mnist-test", "--fail-if", "fid>+1",
                 "--format", "markdown", "--bootstrap", "50")
    assert result.exit_code == 1, result.output
    report = result.stdout
    assert report.startswith("### ❌ genmetrics compare: regression")
    assert "| FID ↓ |" in report and "FAIL (fid>+1)" in report and "| recall ↑ |" in report
    assert "fashion-mnist-test (N=10000)" in report


def test_reshuffled_candidate_passes(fashion):
    result = run(str(fashion["a"]), str(fashion["shuffled"]), "--ref", "fashion-mnist-test", "--fail-if", "fid>+1",
                 "--format", "markdown", "--bootstrap", "50")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("### ✅ genmetrics compare: passed")
    assert "pass (fid>+1)" in result.stdout


def test_seeded_runs_are_identical_and_json_holds_every_interval(small, tmp_path):
    args = (str(small["a"]), str(small["b"]), "--ref", str(small["ref"]), "--metrics", "fid,kid,pr,dc",
            "--bootstrap", "20", "--seed", "3", "--fail-if", "recall<-0.9", "--format", "json")
    first, second = run(*args, "--output", str(tmp_path / "out.json")), run(*args)
    assert first.exit_code == 0, first.output
    assert first.stdout == second.stdout
    assert (tmp_path / "out.json").read_text() == first.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    out = json.loads(first.stdout)
    assert out["passed"] is True
    assert list(out["metrics"]) == ["fid", "kid", "precision", "recall", "density", "coverage"]
    for row in out["metrics"].values():
        assert row["difference"] == pytest.approx(row["candidate"] - row["baseline"])
        assert row["difference_interval"][0] <= row["difference_interval"][1]
    assert out["checks"][0]["check"] == "recall<-0.9" and out["checks"][0]["failed"] is False
    assert out["provenance"]["bootstrap"]["replicates"] == 20
    assert out["provenance"]["baseline"]["n"] == out["provenance"]["candidate"]["n"] == 20
    other_seed = json.loads(run(*args[:-6], "--seed", "4", "--fail-if", "recall<-0.9", "--format", "json").stdout)
    assert other_seed["metrics"]["fid"]["baseline"] == out["metrics"]["fid"]["baseline"]
    assert other_seed["metrics"]["fid"]["difference_interval"] != out["metrics"]["fid"]["difference_interval"]


def test_table_is_the_default_format(small):
    result = run(str(small["a"]), str(small["b"]), "--ref", str(small["ref"]), "--metrics", "fid", "--bootstrap", "10")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split() == ["metric", "baseline", "[95%", "CI]", "candidate", "[95%", "CI]",
                                                     "difference", "[95%", "CI]", "verdict"]
    assert "result: no checks given" in result.stdout


@pytest.mark.parametrize("text,expected", [
    ("fid>+0.5", Check("fid", ">", 0.5, "fid>+0.5")),
    (" recall < -0.02 ", Check("recall", "<", -0.02, "recall < -0.02")),
    ("KID>1e-3", Check("kid", ">", 1e-3, "KID>1e-3")),
])
def test_fail_if_parsing(text, expected):
    assert Check.parse(text) == expected


def test_a_check_fails_only_when_the_whole_interval_is_beyond():
    worse_fid = Check.parse("fid>+0.5")
    assert worse_fid.fails((0.6, 2.0)) and not worse_fid.fails((0.4, 2.0))
    lower_recall = Check.parse("recall<-0.02")
    assert lower_recall.fails((-0.1, -0.03)) and not lower_recall.fails((-0.1, -0.01))


@pytest.mark.parametrize("args,message", [
    (("--fail-if", "fid>>1"), "malformed --fail-if"),
    (("--fail-if", "fid"), "malformed --fail-if"),
    (("--fail-if", "sharpness>1"), "unknown metric 'sharpness'"),
    (("--metrics", "fid", "--fail-if", "recall<-0.02"), "does not compute"),
    (("--bootstrap", "5"), "at least 10"),
    (("--metrics", "clip_score"), "does not take clip_score"),
    (("--num-samples", "30"), "only 20 images but --num-samples 30 were requested; pass --num-samples 20 or fewer"),
])
def test_bad_arguments_exit_2_with_one_line(small, args, message):
    result = run(str(small["a"]), str(small["b"]), "--ref", str(small["ref"]), *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_incompatible_references_exit_2(small, tmp_path):
    no_features = tmp_path / "no_features.npz"
    genmetrics.compute_stats(str(small["ref"]), no_features, progress=False)
    result = run(str(small["a"]), str(small["b"]), "--ref", str(no_features), "--metrics", "pr")
    assert result.exit_code == 2 and "hold no features" in result.stderr
    clean = tmp_path / "clean.npz"
    genmetrics.compute_stats(str(small["ref"]), clean, resize="clean", features=True, progress=False)
    result = run(str(small["a"]), str(small["b"]), "--ref", str(clean), "--metrics", "fid")
    assert result.exit_code == 2 and "resize 'clean' vs 'tf1'" in result.stderr


def test_api_rejects_a_check_on_a_metric_not_computed(small):
    with pytest.raises(ConfigError, match="does not compute"):
        compare(str(small["a"]), str(small["b"]), str(small["ref"]), "fid", fail_if=["kid>0"])


def test_a_checkpoint_needs_num_samples(small, tmp_path):
    import torch

    from genmetrics_models.checkpoint import save_checkpoint
    from genmetrics_models.registry import build_model

    (tmp_path / "run").mkdir()
    model = build_model("dcgan", {"width": 8, "z_dim": 8, "batch_size": 8}, generator=torch.Generator().manual_seed(0))
    save_checkpoint(tmp_path / "run", model, step=1, dataset="digits", seed=0, rng_state=torch.Generator().get_state())
    result = run(str(tmp_path / "run"), str(small["b"]), "--ref", str(small["ref"]))
    assert result.exit_code == 2 and "is a model checkpoint: pass --num-samples" in result.stderr
