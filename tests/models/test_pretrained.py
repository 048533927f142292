"""The shipped checkpoints of the README's results table (models/pretrained): each loads and samples."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from genmetrics_cli.main import cli
from genmetrics.errors import InputError
from genmetrics.features.fashion_cnn import FashionCNNExtractor
from genmetrics_models.checkpoint import PRETRAINED_DIR, load_checkpoint, pretrained, read_config
from tests.helpers import fashion_mnist_subset
from tests.models.conftest import assert_uint8_images, seeded

SHIPPED = ["dcgan", "cgan", "wgan", "wgan-gp", "ae", "vae", "pixelcnn", "vqvae", "ddpm"]


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_checkpoint_loads_and_samples(name):
    folder = pretrained(name)
    config = read_config(folder)
    assert (config["model"], config["dataset"], config["optimizers"]) == (name, "fashion-mnist", {})
    assert sum(path.stat().st_size for path in folder.iterdir()) < 4_000_000  # small: weights only
    model = load_checkpoint(folder)
    labels = list(range(8)) if model.conditional else None
    images = model.sample(8, seeded(0), labels)
    assert_uint8_images(images, 8)
    assert torch.equal(images, model.sample(8, seeded(0), labels))  # seeded
    assert images.float().std() > 20  # not a constant image
    assert (folder / "samples.png").is_file()


def test_results_list_every_shipped_model_at_10000_samples():
    rows = json.loads((PRETRAINED_DIR / "results.json").read_text())
    assert list(dict.fromkeys(row["checkpoint"] for row in rows)) == SHIPPED  # rows of one run share its folder
    for row in rows:
        assert row["step"] == read_config(pretrained(row["checkpoint"]))["step"]
        if row["inception"] is not None:  # None: not measured (the README says which and why)
            assert {"fid", "kid_mean", "precision", "recall"} <= row["inception"].keys()
        assert {"is_mean", "fid", "kid_mean", "precision", "recall"} <= row["fashion_cnn"].keys()


def test_the_shipped_pixelcnn_has_the_test_bits_per_dim_of_its_results_row():
    """The row's figure is over the 10,000 test images; the first 500 of them give nearly the same mean."""
    row = next(row for row in json.loads((PRETRAINED_DIR / "results.json").read_text()) if row["model"] == "pixelcnn")
    images, _ = fashion_mnist_subset("test")
    bits = load_checkpoint(pretrained("pixelcnn")).test_bits_per_dim(torch.tensor(images[:500]))
    assert 2 < row["test_bits_per_dim"] < 8 and bits == pytest.approx(row["test_bits_per_dim"], abs=0.1)


def label_agreement(images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of (N, 28, 28, 1) uint8 images that fashion-cnn classifies as their label (N,)."""
    extractor = FashionCNNExtractor()
    batch = torch.stack([extractor.preprocess(image) for image in images.numpy()])
    return (extractor.forward(batch)["logits"].argmax(1) == labels).float().mean().item()


def test_the_shipped_conditional_gan_draws_the_class_it_is_given():
    labels = torch.arange(200) % 10
    assert label_agreement(load_checkpoint(pretrained("cgan")).sample(200, seeded(1), labels), labels) > 0.8


def test_the_shipped_ddpm_draws_the_class_it_is_given_more_often_with_guidance():
    model = load_checkpoint(pretrained("ddpm"))
    labels = torch.arange(60) % 10
    agreement = {w: label_agreement(model.sample(60, seeded(2), labels, guidance=w, sampling_steps=10), labels)
                 for w in (0.0, 2.0)}
    assert agreement[0.0] > 0.5 and agreement[2.0] > max(0.7, agreement[0.0])  # measured: 0.67 and 0.75


def test_sample_cli_takes_a_shipped_folder(tmp_path):
    out = tmp_path / "s.npz"
    result = CliRunner().invoke(cli, ["sample", str(pretrained("dcgan")), "-n", "5", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with np.load(out) as data:
        assert_uint8_images(next(iter(data.values())), 5)


def test_an_unshipped_model_is_named_with_the_shipped_ones():
    with pytest.raises(InputError, match=r"no shipped checkpoint for model 'gan'; shipped: ae, cgan, dcgan"):
        pretrained("gan")
