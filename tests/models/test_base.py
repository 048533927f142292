"""The Generator interface shared by every model: hyper-parameters, seeding, sampling, labels."""
from __future__ import annotations

import pytest
import torch

from genmetrics.errors import ConfigError
from genmetrics_models.base import resolve_hparams, to_float, to_uint8
from genmetrics_models.registry import MODELS, build_model
from tests.models.conftest import TINY, assert_uint8_images, seeded


def test_registry_names_are_the_contract():
    assert list(MODELS) == ["dcgan", "cgan", "wgan", "wgan-gp", "ae", "vae", "pixelcnn", "vqvae", "ddpm", "t2i"]
    with pytest.raises(ConfigError, match=r"unknown model 'gan'; choose one of dcgan, cgan, wgan, wgan-gp, ae, vae, "
                                          r"pixelcnn, vqvae, ddpm"):
        build_model("gan")


def test_uint8_conversion_round_trips_and_clips():
    images = torch.arange(256, dtype=torch.uint8).reshape(4, 8, 8, 1)
    assert torch.equal(to_uint8(to_float(images)), images)
    assert to_float(images).shape == (4, 1, 8, 8) and to_float(images).min() == -1 and to_float(images).max() == 1
    assert to_uint8(torch.tensor([-3.0, -1.0, 0.0, 1.0, 5.0]).reshape(1, 1, 1, 5)).flatten().tolist() == [0, 0, 128,
                                                                                                           255, 255]


def test_hyper_parameters_are_checked_and_converted():
    defaults, choices = {"width": 64, "lr": 2e-4, "gan_loss": "non-saturating"}, {"gan_loss": ("non-saturating",
                                                                                              "saturating")}
    assert resolve_hparams("m", defaults, choices, {"width": 32.0, "lr": 1}) == {"width": 32, "lr": 1.0,
                                                                                 "gan_loss": "non-saturating"}
    for overrides, message in [({"depth": 3}, r"unknown hyper-parameter 'depth' for model 'm'; it has width=64"),
                               ({"width": 2.5}, r"width=2.5 of model 'm' must be an integer"),
                               ({"width": "wide"}, r"width='wide' of model 'm' must be an integer"),
                               ({"width": 0}, r"must be a positive integer"),
                               ({"lr": -1e-3}, r"must be a finite number >= 0"),
                               ({"gan_loss": "hinge"}, r"choose one of non-saturating, saturating")]:
        with pytest.raises(ConfigError, match=message):
            resolve_hparams("m", defaults, choices, overrides)


def test_boolean_and_nonnegative_hyper_parameters():
    defaults = {"conditional": False, "steps": 50}
    for value, expected in [(True, True), ("true", True), ("Yes", True), (1, True), ("1", True), (False, False),
                            ("false", False), ("no", False), (0, False)]:
        assert resolve_hparams("m", defaults, {}, {"conditional": value})["conditional"] is expected
    with pytest.raises(ConfigError, match=r"conditional='maybe' of model 'm' must be true or false"):
        resolve_hparams("m", defaults, {}, {"conditional": "maybe"})
    assert resolve_hparams("m", defaults, {}, {"steps": 0}, nonnegative=("steps",))["steps"] == 0
    with pytest.raises(ConfigError, match=r"steps=-1 of model 'm' must be an integer >= 0"):
        resolve_hparams("m", defaults, {}, {"steps": -1}, nonnegative=("steps",))
    with pytest.raises(ConfigError, match=r"must be a positive integer"):
        resolve_hparams("m", defaults, {}, {"steps": 0})


@pytest.mark.parametrize("name", ["dcgan", "vae", "pixelcnn", "vqvae"])
def test_models_without_sampling_options_refuse_them(name):
    model = build_model(name, TINY[name])
    assert model.check_sample_options({"guidance": None}) == {}  # None: not given
    with pytest.raises(ConfigError, match=rf"model '{name}' has no sampling option guidance=\.\.\., "
                                          r"sampling_steps=\.\.\.; it takes none"):
        model.sample(2, guidance=2.0, sampling_steps=50)


@pytest.mark.parametrize("name", list(MODELS))
def test_weights_and_samples_are_determined_by_the_generators(name):
    first = build_model(name, TINY[name], generator=seeded(3))
    again = build_model(name, TINY[name], generator=seeded(3))
    other = build_model(name, TINY[name], generator=seeded(4))
    for (key, a), b, c in zip(first.state_dict().items(), again.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b), key
    assert any(not torch.equal(a, c) for a, c in zip(first.parameters(), other.parameters()))
    samples = first.sample(5, seeded(1))
    assert_uint8_images(samples, 5)
    assert torch.equal(samples, again.sample(5, seeded(1)))
    assert not torch.equal(samples, first.sample(5, seeded(2)))
    assert torch.equal(first.sample(3), first.sample(3, seeded(0)))  # default generator: seed 0
    assert first.training  # sample() restores the mode


@pytest.mark.parametrize("name, hparams", [("dcgan", {}), ("wgan", {}), ("wgan-gp", {}), ("ae", {}), ("vae", {}),
                                           ("pixelcnn", {}), ("vqvae", {}), ("ddpm", {"conditional": False})])
def test_unconditional_models_refuse_labels(name, hparams):
    model = build_model(name, {**TINY[name], **hparams})
    with pytest.raises(ConfigError, match=rf"model '{name}' is unconditional and takes no labels"):
        model.sample(2, labels=[0, 1])


def test_sample_count_must_be_positive():
    with pytest.raises(ConfigError, match="at least 1, got 0"):
        build_model("dcgan", TINY["dcgan"]).sample(0)
