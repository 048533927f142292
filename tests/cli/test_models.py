"""`genmetrics train` and `genmetrics sample` end to end (digits, tiny models, the stand-in extractor)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from genmetrics_cli.main import cli

REPO = Path(__file__).resolve().parents[2]
TINY_DCGAN = ["-p", "width=8", "-p", "z_dim=8", "-p", "batch_size=8"]
TINY_DDPM = ["-p", "channels=8", "-p", "timesteps=10", "-p", "classifier_width=8", "-p", "batch_size=8", "-p",
             "sampling_steps=3"]


def run(*args: str):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def one_error_line(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A dcgan trained 3 steps on digits, without evaluation."""
    out = tmp_path_factory.mktemp("runs") / "dcgan"
    result = run("train", "dcgan", "--dataset", "digits", "--steps", 3, "--out", out, "--eval-samples", 0,
                 "--no-progress", *TINY_DCGAN)
    assert result.exit_code == 0, result.output
    return out


def test_train_evaluates_with_genmetrics_and_sample_reproduces_the_scored_images(tmp_path, tiny_extractor,
                                                                                 digits_reference):
    out = tmp_path / "run"
    result = run("train", "dcgan", "--dataset", "digits", "--steps", 4, "--out", out, "--eval-every", 2,
                 "--eval-samples", 30, "--eval-ref", digits_reference, "--eval-extractor", tiny_extractor,
                 "--seed", 5, "--gan-loss", "saturating", "--no-progress", *TINY_DCGAN)
    assert result.exit_code == 0, result.output
    history = json.loads((out / "history.json").read_text())
    assert [row["step"] for row in history["metrics"]] == [2, 4]
    last = history["metrics"][-1]
    assert result.stdout.strip() == "step 4: " + ", ".join(f"{k} {v:.6g}" for k, v in last.items() if k != "step")
    config = json.loads((out / "step-00000004.json").read_text())
    assert config["hparams"]["gan_loss"] == "saturating" and config["seed"] == 5 and config["dataset"] == "digits"
    for name in ("samples-00000002.png", "samples-00000004.png", "plot.png", "metrics.csv"):
        assert (out / name).is_file()
    # `sample --seed 5 -n 30` draws exactly what the last evaluation scored, in the digits' 8x8 format.
    samples = tmp_path / "s.npz"
    result = run("sample", out, "-n", 30, "-o", samples, "--seed", 5)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote 30 samples 8x8 of dcgan (step 4, seed 5) to {samples}"
    with np.load(samples) as archive:
        assert archive.files == ["images"] and archive["images"].shape == (30, 8, 8, 1)
    result = run("score", samples, digits_reference, "--extractor", tiny_extractor, "--seed", 5, "--json",
                 "--no-progress")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"] == {k: v for k, v in last.items() if k != "step"}


def test_training_resumes_from_the_last_checkpoint(trained):
    result = run("train", "dcgan", "--steps", 5, "--out", trained, "--eval-samples", 0, "--no-progress")
    assert result.exit_code == 0, result.output
    assert f"resuming {trained / 'step-00000003.json'} (step 3)" in result.stderr
    assert json.loads((trained / "step-00000005.json").read_text())["hparams"]["width"] == 8
    result = run("train", "dcgan", "--steps", 5, "--out", trained, "--eval-samples", 0, "--no-progress")
    assert "is already at step 5 (--steps 5): nothing to train" in result.stderr and result.exit_code == 0


def test_sample_writes_a_folder_of_pngs(trained, tmp_path):
    out = tmp_path / "pngs"
    assert run("sample", trained, "-n", 5, "-o", out).exit_code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{i:06d}.png" for i in range(5)]
    with Image.open(out / "000004.png") as image:
        assert image.mode == "L" and image.size == (8, 8)
    stacked = np.stack([np.asarray(Image.open(out / name)) for name in names])[..., None]
    with np.load(_sample_npz(trained, tmp_path, 5)) as archive:
        assert np.array_equal(stacked, archive["images"])
    one_error_line(run("sample", trained, "-n", 5, "-o", out), "exists and is not an empty folder")
    assert run("sample", trained, "-n", 5, "-o", tmp_path / "s.npy").exit_code == 0
    assert np.array_equal(np.load(tmp_path / "s.npy"), stacked)


def _sample_npz(checkpoint: Path, tmp_path: Path, n: int, *extra: str) -> Path:
    path = tmp_path / f"samples-{n}.npz"
    result = run("sample", checkpoint, "-n", n, "-o", path, *extra)
    assert result.exit_code == 0, result.output
    return path


def test_conditional_sampling_with_labels(tmp_path):
    out = tmp_path / "cgan"
    result = run("train", "cgan", "--dataset", "digits", "--steps", 1, "--out", out, "--eval-samples", 0,
                 "--no-progress", *TINY_DCGAN)
    assert result.exit_code == 0, result.output
    with np.load(_sample_npz(out, tmp_path, 7, "--labels", "3,1")) as archive:
        assert archive["labels"].tolist() == [3, 1, 3, 1, 3, 1, 3] and archive["images"].shape == (7, 8, 8, 1)
    one_error_line(run("sample", out, "-n", 2, "-o", tmp_path / "x.npz", "--labels", "10"),
                   "labels must lie in 0..9, got 10..10")
    one_error_line(run("sample", out, "-n", 2, "-o", tmp_path / "x.npz", "--labels", "a,b"),
                   "--labels 'a,b': expected comma-separated class indices")


def test_ddpm_trains_with_a_schedule_and_samples_with_labels_guidance_and_sampler_steps(tmp_path):
    out = tmp_path / "ddpm"
    result = run("train", "ddpm", "--dataset", "digits", "--schedule", "cosine", "--steps", 2, "--out", out,
                 "--eval-samples", 0, "--no-progress", *TINY_DDPM)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "step-00000002.json").read_text())
    assert config["hparams"]["schedule"] == "cosine" and config["hparams"]["conditional"] is True
    path = tmp_path / "s.npz"
    result = run("sample", out, "-n", 5, "--labels", 3, "--guidance", 2.0, "--sampling-steps", 4, "-o", path)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (f"wrote 5 samples 8x8 of ddpm (step 2, seed 0, guidance 2.0, sampling_steps 4) "
                                     f"to {path}")
    with np.load(path) as archive:
        assert archive["labels"].tolist() == [3] * 5 and archive["images"].shape == (5, 8, 8, 1)
        guided = archive["images"]
    with np.load(_sample_npz(out, tmp_path, 5, "--labels", "3", "--sampling-steps", "4")) as archive:
        assert not np.array_equal(archive["images"], guided)
    # Without options: the checkpoint's hyper-parameters (sampling_steps=3), as in training evaluations.
    with np.load(_sample_npz(out, tmp_path, 6)) as default, \
            np.load(_sample_npz(out, tmp_path, 6, "--sampling-steps", "3", "--guidance", "0")) as explicit:
        assert np.array_equal(default["images"], explicit["images"])
    assert run("sample", out, "-n", 2, "--sampling-steps", 0, "--classifier-scale", 1.5, "-o",
               tmp_path / "a2.npz").exit_code == 0
    one_error_line(run("sample", out, "-n", 2, "--sampling-steps", 11, "-o", tmp_path / "x.npz"),
                   "--sampling-steps 11 must lie in 0..10")
    one_error_line(run("sample", out, "-n", 2, "--guidance", -3, "-o", tmp_path / "x.npz"),
                   "--guidance -3.0 must be a finite number >= -1")
    assert not (tmp_path / "x.npz").exists()


def test_sampling_options_of_a_model_without_them_are_refused(trained, tmp_path):
    one_error_line(run("sample", trained, "-n", 2, "--guidance", 2.0, "--sampling-steps", 50, "-o",
                       tmp_path / "s.npz"),
                   "model 'dcgan' has no sampling option --guidance ..., --sampling-steps ...; it takes none")
    assert not (tmp_path / "s.npz").exists()


def test_sample_npz_is_accepted_by_score(trained, tmp_path, tiny_extractor, digits_reference):
    samples = _sample_npz(trained, tmp_path, 16)
    result = run("score", samples, digits_reference, "--extractor", tiny_extractor, "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    provenance = json.loads(result.stdout)["provenance"]
    assert provenance["generated"]["n"] == 16 and provenance["reference"]["n"] == 40


@pytest.mark.parametrize("args, fragments", [
    (["train", "gan", "--steps", 1, "--out", "{tmp}/x"], ["unknown model 'gan'; choose one of dcgan, cgan"]),
    (["train", "dcgan", "--dataset", "mnist", "--steps", 1, "--out", "{tmp}/x"], ["unknown dataset 'mnist'"]),
    (["train", "dcgan", "--steps", 1, "--out", "{tmp}/x", "--eval-ref", "fashion-mnist-val"],
     ["--eval-ref 'fashion-mnist-val' is not a shipped reference", "--eval-samples 0"]),
    (["train", "dcgan", "--steps", 1, "--out", "{tmp}/x", "--eval-ref", "{tmp}/missing.npz"],
     ["missing.npz' does not exist"]),
    (["train", "dcgan", "--steps", 1, "--out", "{tmp}/x", "--eval-metrics", "fid,xyz", "--eval-ref", "digits"],
     ["unknown metric(s) xyz"]),
    (["train", "dcgan", "--steps", 1, "--out", "{tmp}/x", "--eval-extractor", "resnet"],
     ["unknown --eval-extractor 'resnet'"]),
    (["train", "dcgan", "--steps", 1, "--out", "{tmp}/x", "--eval-samples", 1], ["at least 2"]),
    (["train", "ae", "--steps", 1, "--out", "{tmp}/x", "--eval-samples", 0, "--gan-loss", "saturating"],
     ["unknown hyper-parameter 'gan_loss' for model 'ae'"]),
    (["train", "dcgan", "--steps", 1, "--out", "{tmp}/x", "--eval-samples", 0, "-p", "lr"], ["expected KEY=VALUE"]),
    (["train", "dcgan", "--steps", 1, "--out", "{tmp}/x", "--eval-samples", 0, "--schedule", "cosine"],
     ["unknown hyper-parameter 'schedule' for model 'dcgan'"]),
    (["train", "ddpm", "--steps", 1, "--out", "{tmp}/x", "--eval-samples", 0, "-p", "conditional=maybe"],
     ["conditional='maybe' of model 'ddpm' must be true or false"]),
    (["sample", "{tmp}", "-n", 1, "-o", "{tmp}/s.npz"], ["no checkpoint (step-*.json) in folder"]),
])
def test_errors_are_one_line(tmp_path, args, fragments):
    result = run(*[str(a).replace("{tmp}", str(tmp_path)) for a in args])
    one_error_line(result, *fragments)
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_resuming_another_run_and_labels_for_an_unconditional_model(trained, tmp_path):
    one_error_line(run("train", "vae", "--steps", 9, "--out", trained, "--eval-samples", 0),
                   "holds a run with model 'dcgan'", "choose another folder (--out FOLDER)")
    one_error_line(run("sample", trained, "-n", 2, "-o", tmp_path / "s.npz", "--labels", "1"),
                   "model 'dcgan' is unconditional")


def test_missing_fashion_mnist_is_one_line_from_the_console(tmp_path):
    code = ("import sys, pathlib, genmetrics_models.data as d; d.FASHION_MNIST_DIR = pathlib.Path(sys.argv[1]); "
            "from genmetrics_cli.main import cli; cli(sys.argv[2:], prog_name='genmetrics')")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path), "train", "vae", "--steps", "1", "--out",
                           str(tmp_path / "run"), "--eval-samples", "0"], capture_output=True, text=True, cwd=REPO,
                          check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        (f"error: '{tmp_path}/train-images-idx3-ubyte.gz' is missing: install Debian's Fashion-MNIST package "
         "(apt-get install dataset-fashion-mnist)")]


def test_models_and_cli_come_from_this_repository():
    import genmetrics_cli as cli_package
    import genmetrics_models as models

    assert Path(models.__file__).resolve().parent == REPO / "models"
    assert Path(cli_package.__file__).resolve().parent == REPO / "cli"
