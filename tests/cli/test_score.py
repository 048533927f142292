"""`genmetrics score` / `genmetrics stats` end to end on small images, through the CLI and the API."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import genmetrics
from genmetrics_cli.main import cli
from genmetrics.errors import ConfigError, WeightsError
from genmetrics.metrics.fid import fid_from_features
from genmetrics.metrics.inception_score import inception_score
from tests.helpers import fashion_mnist_subset, random_images, write_folder

REPO = Path(__file__).resolve().parents[2]


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("imgs") / "x"
    write_folder(path, random_images(12, size=32, seed=10))
    return path


def test_same_folder_gives_zero_fid_and_full_precision_recall(folder):
    result = run("score", str(folder), str(folder), "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"metrics", "provenance"}
    assert set(out["metrics"]) == {"fid", "kid_mean", "kid_std", "precision", "recall"}
    assert abs(out["metrics"]["fid"]) < 1e-3
    assert out["metrics"]["precision"] == 1.0 and out["metrics"]["recall"] == 1.0
    prov = out["provenance"]
    assert prov["extractor"]["resize"] == "tf1" and prov["extractor"]["name"] == "inception-v3-tf"
    assert len(prov["extractor"]["weights_sha256"]) == 64
    assert prov["generated"]["n"] == 12 and prov["reference"]["n"] == 12
    assert prov["generated"]["content_hash"] == prov["reference"]["content_hash"]
    assert any("singular" in w for w in prov["warnings"])  # N=12 <= 2048
    assert "torch-fidelity" in prov["versions"]


def test_nothing_touches_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("genmetrics tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    result = genmetrics.score(random_images(8, seed=1), random_images(8, seed=2), "fid,kid,pr,dc", progress=False)
    assert set(result.metrics) == {"fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage"}
    assert result.metrics["fid"] > 0


def test_stats_file_reference_gives_the_same_numbers_as_the_source(tmp_path, folder):
    gen = random_images(10, size=32, seed=11)
    stats_path = tmp_path / "ref.npz"
    result = run("stats", str(folder), "-o", str(stats_path), "--features", "--no-progress")
    assert result.exit_code == 0, result.output
    from_stats = genmetrics.score(gen, str(stats_path), "fid,kid,pr", progress=False).metrics
    from_source = genmetrics.score(gen, str(folder), "fid,kid,pr", progress=False).metrics
    assert from_stats == pytest.approx(from_source, rel=1e-12, abs=1e-12)
    stats = genmetrics.load_stats(stats_path)
    assert stats.n == 12 and stats.features.shape == (12, 2048)
    assert stats.meta["content_hash"] and stats.meta["versions"]["genmetrics"] == genmetrics.__version__
    # FID itself equals the closed formula on the raw features.
    gen_feats = genmetrics.compute_stats(gen, features=True, progress=False).features
    assert from_stats["fid"] == pytest.approx(fid_from_features(gen_feats, stats.features), rel=1e-9)


def test_stats_without_features_cannot_serve_kid(tmp_path, folder):
    stats_path = tmp_path / "ref.npz"
    assert run("stats", str(folder), "-o", str(stats_path), "--no-progress").exit_code == 0
    result = run("score", str(folder), str(stats_path), "--metrics", "kid", "--no-progress")
    assert result.exit_code == 2
    assert "hold no features" in result.stderr and "--features" in result.stderr
    fid_only = run("score", str(folder), str(stats_path), "--metrics", "fid", "--json", "--no-progress")
    assert abs(json.loads(fid_only.stdout)["metrics"]["fid"]) < 1e-3


def test_reference_with_another_resize_is_refused(tmp_path, folder):
    stats_path = tmp_path / "clean.npz"
    assert run("stats", str(folder), "-o", str(stats_path), "--resize", "clean", "--no-progress").exit_code == 0
    result = run("score", str(folder), str(stats_path), "--metrics", "fid", "--no-progress")
    assert result.exit_code == 2
    assert "resize 'clean' vs 'tf1'" in result.stderr


def test_inception_score_needs_logits_and_matches_the_formula(logits_weights):
    images = random_images(20, size=32, seed=5)
    with pytest.raises(WeightsError, match="needs classifier logits.*weights-inception-2015-12-05"):
        genmetrics.score(images, None, "is", progress=False)
    result = genmetrics.score(images, None, "is", inception_weights=logits_weights, trust_weights=True,
                              progress=False)
    from genmetrics.features.extract import extract_features
    from genmetrics.features.inception import InceptionExtractor
    from genmetrics.io.images import open_source

    logits = extract_features(open_source(images), InceptionExtractor(logits_weights, trust_weights=True),
                              progress=False).logits
    assert (result.metrics["is_mean"], result.metrics["is_std"]) == pytest.approx(inception_score(logits, splits=10))


def test_unknown_metric_and_missing_reference_are_config_errors():
    with pytest.raises(ConfigError, match="unknown metric.*fidd"):
        genmetrics.score(random_images(4), random_images(4), "fidd", progress=False)
    with pytest.raises(ConfigError, match="reference is needed for fid"):
        genmetrics.score(random_images(4), None, "fid", progress=False)


def test_corrupt_image_strict_then_skipped(tmp_path):
    folder = tmp_path / "mixed"
    write_folder(folder, random_images(5, seed=3))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    strict = run("score", str(folder), str(folder), "--metrics", "fid", "--no-progress")
    assert strict.exit_code == 2 and "broken.png" in strict.stderr and "--skip-bad" in strict.stderr
    skipped = run("score", str(folder), str(folder), "--metrics", "fid", "--skip-bad", "--json", "--no-progress")
    assert skipped.exit_code == 0, skipped.output
    generated = json.loads(skipped.stdout)["provenance"]["generated"]
    assert generated["n"] == 5 and generated["n_skipped"] == 1 and generated["skipped"][0].endswith("broken.png")


def test_single_image_and_bad_output_leave_no_file(tmp_path):
    one = tmp_path / "one.npy"
    np.save(one, random_images(1))
    out = tmp_path / "s.npz"
    result = run("stats", str(one), "-o", str(out), "--no-progress")
    assert result.exit_code == 2 and "at least 2" in result.stderr
    assert not out.exists()


def test_console_script_prints_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "genmetrics_cli", "score", str(tmp_path / "missing"), str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "missing" in lines[0]
    assert "Traceback" not in proc.stderr


def test_warnings_are_one_line(tmp_path):
    """A library warning (here bf16 on a CPU taken to have no native bf16) prints as one `warning:` line."""
    np.save(tmp_path / "two.npy", random_images(2, size=32, seed=4))
    script = ("import genmetrics.features.inception as inception; inception.native_cpu_bf16 = lambda: False; "
              "from genmetrics_cli.main import cli; cli()")
    proc = subprocess.run([sys.executable, "-c", script, "stats", str(tmp_path / "two.npy"), "-o",
                           str(tmp_path / "s.npz"), "--precision", "bf16", "--no-progress", "--no-cache"],
                          capture_output=True, text=True, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "bf16" in line]
    assert warning == ["warning: this CPU has no native bf16 (AVX-512 BF16 or AMX): --precision bf16 is emulated and "
                       "runs several times slower than the default fp32 here"]


def test_cli_and_genmetrics_come_from_this_repository():
    import genmetrics_cli as cli_package

    assert Path(cli_package.__file__).resolve().parent == REPO / "cli"
    assert Path(genmetrics.__file__).resolve().parent == REPO / "genmetrics"


def test_stats_list_shows_the_shipped_references():
    result = run("stats", "--list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "N", "features", "extractor", "weights", "sha256", "resize", "file", "sha256",
                                "source"]
    rows = {tuple(line.split()[:4]) for line in lines[1:]}
    assert {("fashion-mnist-train", "60000", "10000", "inception-v3-tf"),
            ("fashion-mnist-test", "10000", "10000", "inception-v3-tf"),
            ("digits", "1797", "1797", "inception-v3-tf"),
            ("fashion-mnist-test", "10000", "10000", "fashion-cnn")} <= rows


def test_demo_runs_without_arguments():
    """README command 1: `genmetrics score` on the embedded default prints FID, KID, precision, recall."""
    proc = subprocess.run([sys.executable, "-m", "genmetrics_cli", "score", "--no-progress"], capture_output=True, text=True,
                          cwd=REPO, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    for label in ("FID", "KID (mean)", "precision", "recall"):
        assert label in proc.stdout
    assert "fashion-mnist-train: stats of" in proc.stdout and "N=300" in proc.stdout and "N=60000" in proc.stdout


def test_fashion_cnn_scores_against_the_shipped_reference_name(tmp_path):
    """`genmetrics score samples/ fashion-mnist-test --extractor fashion-cnn --metrics is,fid` resolves the name to
    the fashion-cnn statistics of the test split."""
    write_folder(tmp_path / "samples", fashion_mnist_subset("train")[0][:64])
    result = run("score", str(tmp_path / "samples"), "fashion-mnist-test", "--extractor", "fashion-cnn",
                 "--metrics", "is,fid", "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["provenance"]["extractor"]["name"] == "fashion-cnn"
    assert out["provenance"]["reference"]["name"] == "fashion-mnist-test"
    assert out["provenance"]["reference"]["stats_file"].endswith("fashion-mnist-test.fashion-cnn.npz")
    assert 1.0 < out["metrics"]["is_mean"] <= 10.0 and 0.0 < out["metrics"]["fid"] < 50.0
