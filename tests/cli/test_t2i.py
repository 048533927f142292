"""`genmetrics train t2i` / `genmetrics sample --prompt/--prompts` / `genmetrics clipscore` on the sample file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from genmetrics.io import fashion_captions as fc
from genmetrics_cli.main import cli
from genmetrics_models.data import Dataset
from tests.helpers import fashion_mnist_subset

REPO = Path(__file__).resolve().parents[2]
TINY_T2I = ["-p", "channels=8", "-p", "timesteps=10", "-p", "batch_size=8", "-p", "sampling_steps=3"]
LONG_PROMPT = "a photo of a " + " ".join(["very"] * 40) + " dark bag"


def run(*args: str):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def t2i_run(tmp_path_factory) -> Path:
    """A tiny t2i trained 2 steps on 64 Fashion-MNIST training images (the shipped subset)."""
    images, labels = fashion_mnist_subset("train")
    subset = Dataset("fashion-mnist", np.array(images[:64, :, :, None]), labels[:64].astype(np.int64),
                     fc.CLASS_NAMES)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("genmetrics_models.train.load_dataset", lambda name: subset)
        out = tmp_path_factory.mktemp("runs") / "t2i"
        result = run("train", "t2i", "--steps", 2, "--out", out, "--eval-samples", 0, "--no-progress", *TINY_T2I)
    assert result.exit_code == 0, result.output
    return out


def test_sample_keeps_each_prompt_and_clipscore_reads_them(t2i_run, tmp_path):
    out = tmp_path / "s.npz"
    result = run("sample", t2i_run, "-n", 5, "-o", out, "--prompt", "a photo of a dress", "--prompt", "a dark bag",
                 "--guidance", 1.5)
    assert result.exit_code == 0, result.output
    with np.load(out) as saved:
        assert saved["images"].shape == (5, 28, 28, 1)
        assert saved["prompts"].tolist() == ["a photo of a dress", "a dark bag"] * 2 + ["a photo of a dress"]
    scored = run("clipscore", out, "--clip-model", "fashion-clip", "--json")
    assert scored.exit_code == 0, scored.output
    assert '"clip_score_mean"' in scored.stdout


def test_prompts_file_and_folder_output_write_captions_beside_images(t2i_run, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of an ankle boot\n\n  a small, plain bag  \n", encoding="utf-8")
    folder = tmp_path / "samples"
    result = run("sample", t2i_run, "-n", 3, "-o", folder, "--prompts", prompts)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["000000.png", "000000.txt", "000001.png", "000001.txt",
                                                        "000002.png", "000002.txt"]
    assert (folder / "000001.txt").read_text(encoding="utf-8") == "a small, plain bag\n"
    scored = run("clipscore", folder, folder, "--clip-model", "fashion-clip")
    assert scored.exit_code == 0, scored.output


def test_prompt_errors_and_truncation_warning(t2i_run, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n", encoding="utf-8")
    result = run("sample", t2i_run, "-n", 2, "-o", tmp_path / "a.npz", "--prompts", empty)
    assert result.exit_code == 2 and "has no prompts; put one prompt per line" in result.stderr
    both = run("sample", t2i_run, "-n", 2, "-o", tmp_path / "b.npz", "--prompt", "a bag", "--prompts", empty)
    assert both.exit_code == 2 and "not both" in both.stderr
    npy = run("sample", t2i_run, "-n", 2, "-o", tmp_path / "c.npy", "--prompt", "a bag")
    assert npy.exit_code == 2 and "a .npy holds images only" in npy.stderr
    assert not any(tmp_path.glob("[abc].np*"))
    long = run("sample", t2i_run, "-n", 1, "-o", tmp_path / "d.npz", "--prompt", LONG_PROMPT)
    assert long.exit_code == 0, long.output
    assert "1 prompt(s) longer than the 24-token text context are truncated" in long.stderr
    ddpm = run("sample", REPO / "models" / "pretrained" / "ddpm", "-n", 1, "-o", tmp_path / "e.npz", "--prompt", "a bag")
    assert ddpm.exit_code == 2 and "model 'ddpm' has no sampling option --prompts" in ddpm.stderr
