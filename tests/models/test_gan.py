"""GAN losses, one training step, the gradient penalty, weight clipping and conditional sampling."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from genmetrics.errors import ConfigError
from genmetrics_models.gan import discriminator_loss, generator_loss, gradient_penalty
from genmetrics_models.registry import build_model
from tests.models.conftest import TINY, assert_uint8_images, seeded


def test_losses_are_the_minimax_objective_and_its_non_saturating_variant():
    real, fake = torch.randn(7, generator=seeded(0)), torch.randn(7, generator=seeded(1))
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    value = (d_real.log() + (1 - d_fake).log()).mean()  # V = E log D(x) + E log(1 - D(G(z)))
    assert discriminator_loss(real, fake).item() == pytest.approx(-value.item(), rel=1e-6)
    assert generator_loss(fake, "saturating").item() == pytest.approx((1 - d_fake).log().mean().item(), rel=1e-6)
    assert generator_loss(fake, "non-saturating").item() == pytest.approx(-d_fake.log().mean().item(), rel=1e-6)
    # Where D confidently rejects the fakes, the saturating loss has almost no gradient; the default does.
    confident = torch.full((4,), -8.0, requires_grad=True)
    generator_loss(confident, "saturating").backward()
    saturating = confident.grad.abs().max().item()
    confident.grad = None
    generator_loss(confident, "non-saturating").backward()
    assert saturating < 1e-3
    assert confident.grad.abs().min().item() > 0.2


@pytest.mark.parametrize("gan_loss", ["non-saturating", "saturating"])
@pytest.mark.parametrize("name", ["dcgan", "cgan"])
def test_one_training_step_lowers_the_discriminator_loss_on_fixed_data(name, gan_loss, digit_batch):
    model = build_model(name, {**TINY[name], "gan_loss": gan_loss}, generator=seeded(0))
    real, labels = digit_batch[0][:8], digit_batch[1][:8]
    onehot = model.onehot(labels)
    with torch.no_grad():  # the fakes the step's D update sees: z is its first draw from the generator
        fake = model.G(model.noise(8, seeded(5), model.hparams["z_dim"]), onehot)

    def d_loss() -> float:
        with torch.no_grad():
            return discriminator_loss(model.D(real, onehot), model.D(fake, onehot)).item()

    before = d_loss()
    losses = model.train_step(real, labels, seeded(5))
    assert losses["d_loss"] == pytest.approx(before, rel=1e-5)  # the loss the step minimised, before updating
    assert d_loss() < before - 0.05


def test_wgan_clips_the_critic_and_takes_n_critic_batches(digit_batch):
    model = build_model("wgan", {**TINY["wgan"], "clip": 0.005}, generator=seeded(0))
    assert model.batches_per_step == 2
    generator_before = [p.clone() for p in model.G.parameters()]
    losses = model.train_step(digit_batch[0][:16], digit_batch[1][:16], seeded(1))
    assert set(losses) == {"d_loss", "g_loss"}
    assert max(p.abs().max().item() for p in model.D.parameters()) == pytest.approx(0.005)
    assert all(not torch.equal(a, b) for a, b in zip(generator_before, model.G.parameters()))
    assert model.optimizers["discriminator"].state_dict()["state"][0]["step"] == 2  # one update per batch
    assert model.optimizers["generator"].state_dict()["state"][0]["step"] == 1


def test_gradient_penalty_of_a_linear_critic_is_closed_form():
    """critic(x) = w . x has gradient w everywhere: the penalty is (|w| - 1)^2 for any interpolation."""
    weight = torch.tensor([3.0, 4.0, 0.0, 0.0], requires_grad=True)  # |w| = 5

    def critic(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ weight

    real, fake = torch.randn(6, 1, 2, 2, generator=seeded(0)), torch.randn(6, 1, 2, 2, generator=seeded(1))
    penalty = gradient_penalty(critic, real, fake, seeded(2))
    assert penalty.item() == pytest.approx(16.0, rel=1e-6)
    penalty.backward()  # d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w|
    assert weight.grad.tolist() == pytest.approx([4.8, 6.4, 0.0, 0.0], rel=1e-6)


def test_gradient_penalty_interpolates_with_the_generators_alpha():
    """critic(x) = |x|^2 / 2 has gradient x: the penalty is the mean of (|x_hat| - 1)^2 at the interpolates."""
    real, fake = torch.randn(5, 3, generator=seeded(0)), torch.randn(5, 3, generator=seeded(1))
    alpha = torch.rand(5, 1, generator=seeded(7))
    mixed = alpha * real + (1 - alpha) * fake
    expected = ((mixed.norm(dim=1) - 1) ** 2).mean()
    penalty = gradient_penalty(lambda x: 0.5 * x.square().sum(1), real, fake, seeded(7))
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-6)


def test_wgan_gp_critic_loss_adds_the_weighted_penalty(digit_batch):
    model = build_model("wgan-gp", {**TINY["wgan-gp"], "gp_weight": 3.0}, generator=seeded(0))
    real = digit_batch[0][:8]
    with torch.no_grad():
        fake = model.G(model.noise(8, seeded(1), model.hparams["z_dim"]))
    wasserstein = (model.D(fake).mean() - model.D(real).mean()).item()
    penalty = gradient_penalty(model.D, real, fake, seeded(2)).item()
    assert model.critic_loss(real, fake, seeded(2)).item() == pytest.approx(wasserstein + 3.0 * penalty, rel=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.D.modules())


def test_conditional_samples_follow_their_labels():
    model = build_model("cgan", TINY["cgan"], generator=seeded(0))
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 3])
    samples = model.sample(11, seeded(1), labels)
    assert_uint8_images(samples, 11)
    model.eval()  # what sample() computes: G(z, one-hot(labels)) with z the generator's first draw
    with torch.no_grad():
        expected = model.G(torch.randn(11, 8, generator=seeded(1)), F.one_hot(labels, 10).float())
    assert torch.equal(samples, ((expected + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1))
    same_noise = [model.sample(4, seeded(1), [k] * 4) for k in (2, 2, 7)]
    assert torch.equal(same_noise[0], same_noise[1]) and not torch.equal(same_noise[0], same_noise[2])
    # Without labels: uniform labels, the first draw from the generator (z comes next).
    generator = seeded(4)
    drawn = torch.randint(10, (6,), generator=generator)
    assert torch.equal(model.sample(6, seeded(4)), model.sample(6, generator, drawn))


@pytest.mark.parametrize("labels, message", [
    ([1, 2], r"labels must be 3 integers \(one per sample\), got shape \(2,\)"),
    ([[1, 2, 3]], r"got shape \(1, 3\)"),
    ([0.5, 1.0, 2.0], r"of dtype torch.float"),
    ([0, 10, 1], r"labels must lie in 0..9, got 0..10"),
    ([-1, 0, 1], r"got -1..1"),
])
def test_conditional_sampling_refuses_bad_labels(labels, message):
    with pytest.raises(ConfigError, match=message):
        build_model("cgan", TINY["cgan"]).sample(3, labels=labels)


@pytest.mark.parametrize("name", ["wgan", "wgan-gp"])
def test_under_bf16_the_generator_step_meets_the_critic_its_updates_left(name, digit_batch, monkeypatch):
    # bfloat16 autocast would, with its weight-cast cache, run every critic pass of a step (and the generator's
    # step) with the critic of the step's first forward: the loss the generator step reports must be
    # -E C(G(z)) with the critic as the n_critic updates left it and the generator as the step found it.
    wide_clip = {"clip": 1.0} if name == "wgan" else {}
    model = build_model(name, {**TINY[name], "lr": 0.05, **wide_clip, "precision": "bf16"}, generator=seeded(0))
    generator_before = copy.deepcopy(model.G)
    drawn: list[torch.Tensor] = []
    draw = model.noise

    def recorded_noise(*args: object) -> torch.Tensor:
        drawn.append(draw(*args))
        return drawn[-1]

    monkeypatch.setattr(model, "noise", recorded_noise)
    with model.precision_context():
        reported = model.train_step(digit_batch[0][:16], digit_batch[1][:16], seeded(1))["g_loss"]
    with torch.no_grad(), model.precision_context():
        stale_free = -model.D(generator_before(drawn[-1])).mean().item()  # the generator step's z: the last draw
    assert reported == pytest.approx(stale_free, rel=0.02, abs=1e-3)
