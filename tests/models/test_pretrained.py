"""The shipped checkpoints of the README's results table (models/pretrained): each loads and samples."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

from genmetrics_cli.main import cli
from genmetrics.errors import InputError
from genmetrics_models.checkpoint import PRETRAINED_DIR, load_checkpoint, pretrained, read_config
from benchmarks.class_fidelity import class_fidelity
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


def test_the_shipped_conditional_gan_draws_the_class_it_is_given():
    labels = torch.arange(200) % 10
    images = load_checkpoint(pretrained("cgan")).sample(200, seeded(1), labels)
    assert class_fidelity(images.numpy(), labels.numpy()).accuracy > 0.85  # measured: 0.890 (0.9045 on the 10,000)


def test_guidance_makes_the_shipped_ddpm_more_faithful_to_the_class_not_less():
    """Fashion-cnn's accuracy on 100 samples (10 per class, 10 DDIM steps) rises with the classifier-free weight w,
    as do its IS (Ho & Salimans); with the old DDIM step (clipped x0 mixed with the unclipped eps) w = 2 had
    collapsed the classes (README, "Guidance")."""
    model = load_checkpoint(pretrained("ddpm"))
    labels = torch.arange(100) % 10
    fidelity = {w: class_fidelity(model.sample(100, seeded(2), labels, guidance=w, sampling_steps=10).numpy(),
                                  labels.numpy()) for w in (0.0, 1.0, 2.0)}
    accuracy = [fidelity[w].accuracy for w in (0.0, 1.0, 2.0)]  # measured: 0.83, 0.98, 1.00
    assert accuracy[0] > 0.75 and accuracy[1] >= 0.95 and accuracy[2] >= accuracy[1]
    assert fidelity[0.0].inception_score < fidelity[1.0].inception_score < fidelity[2.0].inception_score


def test_guided_dresses_are_dresses_to_an_independent_pixel_classifier(tmp_path):
    """The generators issue's check: `genmetrics sample models/pretrained/ddpm -n 20 --labels 3 --guidance 2.0`
    gives images a pixel logistic regression (not fashion-cnn; 1,500 test-subset images, ~82% on the other 500)
    calls Dress."""
    images, labels = fashion_mnist_subset("test")
    pixels = images.reshape(len(images), -1) / 255.0
    classifier = LogisticRegression(C=0.1, max_iter=300).fit(pixels[:1500], labels[:1500])
    assert (classifier.predict(pixels[1500:]) == labels[1500:]).mean() > 0.78
    out = tmp_path / "dresses.npz"
    result = CliRunner().invoke(cli, ["sample", str(pretrained("ddpm")), "-n", "20", "--labels", "3", "--guidance",
                                      "2.0", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with np.load(out) as data:
        dresses = data["images"].reshape(20, -1) / 255.0
    assert (classifier.predict(dresses) == 3).sum() >= 17  # measured: 19 of 20


def test_sample_cli_takes_a_shipped_folder(tmp_path):
    out = tmp_path / "s.npz"
    result = CliRunner().invoke(cli, ["sample", str(pretrained("dcgan")), "-n", "5", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with np.load(out) as data:
        assert_uint8_images(next(iter(data.values())), 5)


def test_an_unshipped_model_is_named_with_the_shipped_ones():
    with pytest.raises(InputError, match=r"no shipped checkpoint for model 'gan'; shipped: ae, cgan, dcgan"):
        pretrained("gan")
