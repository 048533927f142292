"""DDPM: schedules, the forward process, Algorithm 1 and 2, DDIM, classifier-free and classifier guidance, on stub
networks where a formula is checked."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genmetrics.errors import ConfigError
from genmetrics_models.base import to_uint8
from genmetrics_models.diffusion import (
    Schedule,
    cfg_eps,
    classifier_grad,
    cosine_schedule,
    ddim_times,
    ddim_update,
    linear_schedule,
    q_sample,
)
from genmetrics_models.registry import build_model
from tests.models.conftest import TINY, assert_uint8_images, seeded


def _ddpm(**hparams):
    return build_model("ddpm", {**TINY["ddpm"], **hparams}, generator=seeded(0))


class StubEps(nn.Module):
    """eps(x, t, y) = 0.3 x + 0.01 t + 0.05 (y + 1) (y = 10: the null class); counts the samples it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.seen += len(x)
        shift = 0.01 * t.float() + (0.0 if labels is None else 0.05 * (labels.float() + 1))
        return 0.3 * x + shift[:, None, None, None]


class LinearClassifier(nn.Module):
    """logits = x.flatten(1) @ W: grad_x log softmax_y = W[:, y] - sum_k p_k W[:, k]."""

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.W = torch.randn(784, 10, generator=generator) * 0.01

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.W

    def grad_log_f(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        p = self.forward(x, None).softmax(1)
        return (self.W[:, labels].T - p @ self.W.T).reshape(x.shape)


@pytest.mark.parametrize("schedule", [linear_schedule(1000), cosine_schedule(1000)])
def test_closed_form_q_xt_given_x0_matches_iterating_the_forward_chain(schedule):
    """x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps, iterated from x0, has mean sqrt(abar_t) x0 and variance
    1 - abar_t, as does q_sample with eps ~ N(0, I) (20,000 seeded draws; 5 standard errors)."""
    x0 = torch.tensor([-1.0, -0.3, 0.5, 1.0], dtype=torch.float64).repeat(20_000, 1)
    generator = seeded(0)
    x = x0.clone()
    for t in range(1, 301):
        beta = schedule.beta(t)
        x = (1 - beta).sqrt() * x + beta.sqrt() * torch.randn(x.shape, generator=generator, dtype=torch.float64)
        if t in (1, 10, 100, 300):
            closed = q_sample(x0, torch.full((len(x0),), t), torch.randn(x0.shape, generator=generator,
                                                                        dtype=torch.float64), schedule)
            mean, var = schedule.alpha_bar(t).sqrt() * x0[0], 1 - schedule.alpha_bar(t)
            for draws in (x, closed):
                se_mean, se_var = (var / len(x0)).sqrt(), var * math.sqrt(2 / len(x0))
                assert ((draws.mean(0) - mean).abs() < 5 * se_mean).all(), t
                assert ((draws.var(0) - var).abs() < 5 * se_var).all(), t


def test_q_sample_is_the_closed_form_per_sample():
    schedule = cosine_schedule(50)
    x0, eps = torch.randn(3, 1, 2, 2, generator=seeded(0)), torch.randn(3, 1, 2, 2, generator=seeded(1))
    t = torch.tensor([1, 20, 50])
    expected = torch.stack([schedule.alpha_bar(int(k)).sqrt().float() * x0[i]
                            + (1 - schedule.alpha_bar(int(k))).sqrt().float() * eps[i] for i, k in enumerate(t)])
    torch.testing.assert_close(q_sample(x0, t, eps, schedule), expected)


@pytest.mark.parametrize("schedule", [linear_schedule(1000), cosine_schedule(1000), cosine_schedule(20)])
def test_posterior_variance(schedule):
    """beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t, and it is the variance of x_{t-1} given x_t and x0 in the
    joint Gaussian of the forward chain (Var x_{t-1} = 1 - abar_{t-1}, Cov = sqrt(alpha_t) (1 - abar_{t-1}))."""
    t = torch.arange(1, schedule.T + 1)
    abar, abar_prev, beta = schedule.alpha_bar(t), schedule.alpha_bar(t - 1), schedule.beta(t)
    torch.testing.assert_close(schedule.posterior_variance(t), (1 - abar_prev) / (1 - abar) * beta)
    conditioned = (1 - abar_prev) - (1 - beta) * (1 - abar_prev) ** 2 / (1 - abar)
    torch.testing.assert_close(schedule.posterior_variance(t), conditioned, rtol=1e-9, atol=1e-12)
    assert schedule.posterior_variance(1).item() == 0.0


def test_cosine_schedule_matches_its_formula():
    T, s = 1000, 0.008

    def f(t: int) -> float:
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    schedule = cosine_schedule(T)
    for t in (0, 1, 2, 100, 500, 900, 990, 998):
        assert schedule.alpha_bar(t).item() == pytest.approx(f(t) / f(0), rel=1e-9, abs=1e-15), t
    for t in (1, 500, 999):
        assert schedule.beta(t).item() == pytest.approx(1 - f(t) / f(t - 1), rel=1e-9), t
    assert schedule.beta(T).item() == 0.999  # f(T) = 0: beta_T = 1, clipped
    assert schedule.betas.max().item() == 0.999
    linear = linear_schedule(1000)
    assert (linear.beta(1).item(), linear.beta(1000).item()) == (pytest.approx(1e-4), pytest.approx(0.02))
    assert linear.alpha_bar(1000).item() == pytest.approx(math.prod(1 - b for b in linear.betas.tolist()))


def test_one_algorithm_2_step_with_a_stub_eps_model_is_the_formula():
    model = _ddpm()
    model.ema = StubEps()
    x, labels = torch.randn(4, 1, 28, 28, generator=seeded(1)), torch.tensor([0, 3, 3, 9])
    for t in (1, 5, 10):
        beta, abar = model.schedule.beta(t).item(), model.schedule.alpha_bar(t).item()
        eps = 0.3 * x + 0.01 * t + 0.05 * (labels.float() + 1)[:, None, None, None]
        mean = (x - (1 - (1 - beta)) / math.sqrt(1 - abar) * eps) / math.sqrt(1 - beta)
        generator = seeded(2)
        got = model.p_step(x, t, labels, generator)
        if t == 1:  # z = 0, nothing drawn
            torch.testing.assert_close(got, mean)
            assert torch.equal(generator.get_state(), seeded(2).get_state())
        else:
            torch.testing.assert_close(got, mean + math.sqrt(beta) * torch.randn(x.shape, generator=seeded(2)))
    posterior = _ddpm(variance="posterior")
    posterior.ema = StubEps()
    sigma = math.sqrt(posterior.schedule.posterior_variance(5).item())
    torch.testing.assert_close(posterior.p_step(x, 5, labels, seeded(2)) - model.p_step(x, 5, labels, seeded(2)),
                               (sigma - math.sqrt(model.schedule.beta(5).item())) * torch.randn(x.shape,
                                                                                               generator=seeded(2)))


def test_algorithm_2_runs_t_from_T_to_1_after_drawing_x_T():
    model = _ddpm()
    model.ema = StubEps()
    labels = torch.tensor([1, 2])
    generator = seeded(3)
    x = torch.randn(2, 1, 28, 28, generator=generator)
    for t in range(10, 0, -1):
        x = model.p_step(x, t, labels, generator)
    got = model.generate(2, seeded(3), labels, guidance=0.0, classifier_scale=0.0, sampling_steps=0)
    torch.testing.assert_close(got, x)
    assert torch.equal(model.sample(2, seeded(3), labels), to_uint8(x))  # sampling_steps=0 in TINY


def test_ddim_with_all_T_steps_is_deterministic_and_its_formula():
    model = _ddpm()
    model.ema = StubEps()
    labels = torch.tensor([4, 7])
    assert ddim_times(10, 10) == list(range(10, 0, -1))
    assert ddim_times(1000, 50)[:2] == [1000, 980] and ddim_times(1000, 50)[-1] == 20
    assert len(set(ddim_times(1000, 333))) == 333 and ddim_times(1000, 333)[-1] >= 1
    generator = seeded(4)
    got = model.generate(2, generator, labels, guidance=0.0, classifier_scale=0.0, sampling_steps=10)
    after_x_T = seeded(4)
    x = torch.randn(2, 1, 28, 28, generator=after_x_T)
    assert torch.equal(generator.get_state(), after_x_T.get_state())  # nothing drawn after x_T
    for t in range(10, 0, -1):
        abar, abar_next = model.schedule.alpha_bar(t).item(), model.schedule.alpha_bar(t - 1).item()
        eps = 0.3 * x + 0.01 * t + 0.05 * (labels.float() + 1)[:, None, None, None]
        x0 = ((x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)).clamp(-1, 1)
        eps = (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar)
        x = math.sqrt(abar_next) * x0 + math.sqrt(1 - abar_next) * eps
    torch.testing.assert_close(got, x)
    again = model.generate(2, seeded(4), labels, guidance=0.0, classifier_scale=0.0, sampling_steps=10)
    assert torch.equal(got, again)


def test_classifier_free_guidance_combines_conditional_and_unconditional_eps():
    model = _ddpm()
    model.ema = StubEps()
    x, labels = torch.randn(3, 1, 28, 28, generator=seeded(5)), torch.tensor([0, 5, 9])
    eps_c = 0.3 * x + 0.01 * 7 + 0.05 * (labels.float() + 1)[:, None, None, None]
    eps_u = 0.3 * x + 0.01 * 7 + 0.05 * 11
    for w in (-1.0, 0.0, 0.5, 2.0):
        model.ema.seen = 0
        got = model.predict_eps(x, 7, labels, w)
        torch.testing.assert_close(got, eps_u + (1 + w) * (eps_c - eps_u))  # = (1 + w) eps_c - w eps_u
        assert model.ema.seen == (3 if w in (0, -1) else 6)  # w = 0 / -1: the conditional / unconditional alone
    torch.testing.assert_close(cfg_eps(eps_c, eps_u, 2.0), 3 * eps_c - 2 * eps_u)


def test_classifier_guidance_shifts_the_mean_by_scale_variance_grad():
    model = _ddpm()
    model.ema = StubEps()
    model.classifier = LinearClassifier(seeded(6))
    x, labels = torch.randn(3, 1, 28, 28, generator=seeded(7)), torch.tensor([2, 2, 8])
    grad = model.classifier.grad_log_f(x, labels)
    torch.testing.assert_close(classifier_grad(model.classifier, x, torch.full((3,), 4), labels), grad)
    for t in (1, 4):
        plain = model.p_step(x, t, labels, seeded(8))
        guided = model.p_step(x, t, labels, seeded(8), classifier_scale=3.0)
        torch.testing.assert_close(guided - plain, 3.0 * model.schedule.beta(t).item() * grad)
    # DDIM: eps^ = eps - s sqrt(1 - abar_t) grad, then the DDIM update.
    abar, abar_next = model.schedule.alpha_bar(6).item(), model.schedule.alpha_bar(3).item()
    eps = model.predict_eps(x, 6, labels, 0.0) - 3.0 * math.sqrt(1 - abar) * grad
    x0 = ((x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)).clamp(-1, 1)
    eps = (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar)
    expected = math.sqrt(abar_next) * x0 + math.sqrt(1 - abar_next) * eps
    torch.testing.assert_close(model.ddim_step(x, 6, 3, labels, classifier_scale=3.0), expected)


def test_algorithm_1_training_step(digit_batch):
    """The reported loss is L_simple at t ~ U{1..T}, then eps, then the label dropout, drawn in that order."""
    model = _ddpm(p_uncond=0.5)
    images, labels = digit_batch[0][:8], digit_batch[1][:8]
    net_before = [p.clone() for p in model.net.parameters()]
    generator = seeded(9)
    t = torch.randint(1, 11, (8,), generator=generator)
    eps = torch.randn(images.shape, generator=generator)
    dropped = torch.rand(8, generator=generator) < 0.5
    assert 0 < dropped.sum() < 8
    x_t = model.schedule.alpha_bar(t).sqrt().float()[:, None, None, None] * images \
        + (1 - model.schedule.alpha_bar(t)).sqrt().float()[:, None, None, None] * eps
    with torch.no_grad():
        expected = (model.net(x_t, t, torch.where(dropped, 10, labels)) - eps).square().mean()
        classifier = F.cross_entropy(model.classifier(x_t, t), labels)
    losses = model.train_step(images, labels, seeded(9))
    assert losses["loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert losses["classifier_loss"] == pytest.approx(classifier.item(), rel=1e-5)
    # EMA after one update: decay min(0.999, 1/10) from the initial weights (= the net's).
    for average, before, after in zip(model.ema.parameters(), net_before, model.net.parameters()):
        torch.testing.assert_close(average, 0.1 * before + 0.9 * after)
    assert model.ema_updates.item() == 1


def test_sampling_options_and_conditioning_are_checked():
    model = _ddpm()
    assert model.conditional and model.net.label.num_embeddings == 11  # ten classes and the null class
    assert model.check_sample_options({}) == {"guidance": 0.0, "classifier_scale": 0.0, "sampling_steps": 0}
    assert model.check_sample_options({"guidance": 2, "sampling_steps": 5.0}) == {
        "guidance": 2.0, "classifier_scale": 0.0, "sampling_steps": 5}
    for options, message in [({"sampling_steps": 11}, r"sampling_steps=11 must lie in 0..10"),
                             ({"sampling_steps": 2.5}, r"sampling_steps=2.5 of model 'ddpm' must be an integer"),
                             ({"guidance": -2}, r"guidance=-2.0 must be a finite number >= -1"),
                             ({"classifier_scale": -1}, r"classifier_scale=-1.0 must be a finite number >= 0"),
                             ({"temperature": 1}, (r"model 'ddpm' has no sampling option temperature=\.\.\.; "
                                                   r"its options are guidance=\.\.\., classifier_scale=\.\.\., "
                                                   r"sampling_steps=\.\.\."))]:
        with pytest.raises(ConfigError, match=message):
            model.sample(2, **options)
    unconditional = _ddpm(conditional=False)
    assert unconditional.classifier is None and set(unconditional.optimizers) == {"denoiser"}
    with pytest.raises(ConfigError, match=r"this ddpm is unconditional: guidance and classifier_scale need a model "
                                          r"trained with hparams=\{'conditional': True\}"):
        unconditional.sample(2, guidance=1.0)
    assert_uint8_images(unconditional.sample(2, sampling_steps=3), 2)
    for hparams, message in [({"sampling_steps": 20}, r"sampling_steps=20 must lie in 0..10"),
                             ({"p_uncond": 1.5}, r"p_uncond=1.5 of model 'ddpm' must lie in \[0, 1\]"),
                             ({"ema_decay": 1.0}, r"ema_decay=1.0 of model 'ddpm' must lie in \[0, 1\)"),
                             ({"schedule": "quadratic"}, r"choose one of linear, cosine"),
                             ({"levels": 4}, r"levels=4 of model 'ddpm' must be 2 \(28x28 and 14x14\) or 3")]:
        with pytest.raises(ConfigError, match=message):
            _ddpm(**hparams)


def test_a_grown_three_level_unet_starts_as_the_two_level_one_it_grew_from(digit_batch):
    """levels=3 adds a 7x7 branch (with self-attention) whose output starts at zero: warm-started from a 2-level
    model, net and EMA compute what that model's did, for every label; one training step then moves the branch."""
    small = _ddpm()
    small.train_step(digit_batch[0][:8], digit_batch[1][:8], seeded(1))
    grown = _ddpm(levels=3)
    assert sum(p.numel() for p in grown.net.parameters()) > sum(p.numel() for p in small.net.parameters())
    grown.warm_start(small)
    x, t = torch.randn(11, 1, 28, 28, generator=seeded(2)), torch.arange(11) % 10 + 1
    labels = torch.arange(11)  # the ten classes and the null class
    with torch.no_grad():
        for name in ("net", "ema"):
            torch.testing.assert_close(getattr(grown, name)(x, t, labels), getattr(small, name)(x, t, labels))
    assert grown.ema_updates.item() == 1
    grown.train_step(digit_batch[0][:8], digit_batch[1][:8], seeded(1))
    assert grown.net.up_7[1].weight.abs().sum() > 0
    with pytest.raises(RuntimeError, match="size mismatch"):
        _ddpm(levels=3, channels=16).warm_start(small)
    with pytest.raises(RuntimeError, match=r"do not fit: \['net.label.weight'"):
        _ddpm(levels=3).warm_start(_ddpm(conditional=False))  # growing adds the 7x7 branch, nothing else
    with pytest.raises(RuntimeError):
        small.warm_start(grown)  # a 3-level net does not shrink


def test_a_scale_shift_norm_grown_onto_a_trained_unet_starts_as_that_unet(digit_batch):
    """scale_shift_norm multiplies each block's normalised activations by 1 + a projection of the embedding that
    starts at zero: grown onto a trained model (alone or with levels=3), net and EMA compute what its did, for every
    label; one training step then moves the scales, and they change the output."""
    small = _ddpm()
    small.train_step(digit_batch[0][:8], digit_batch[1][:8], seeded(1))
    x, t = torch.randn(11, 1, 28, 28, generator=seeded(2)), torch.arange(11) % 10 + 1
    labels = torch.arange(11)
    for hparams in ({"scale_shift_norm": True}, {"scale_shift_norm": True, "levels": 3}):
        grown = _ddpm(**hparams)
        grown.warm_start(small)
        with torch.no_grad():
            for name in ("net", "ema"):
                torch.testing.assert_close(getattr(grown, name)(x, t, labels), getattr(small, name)(x, t, labels))
    grown.train_step(digit_batch[0][:8], digit_batch[1][:8], seeded(1))
    assert grown.net.mid.scale[1].weight.abs().sum() > 0
    with torch.no_grad():
        moved = grown.net(x, t, labels)
        nn.init.zeros_(grown.net.mid.scale[1].weight)
        nn.init.zeros_(grown.net.mid.scale[1].bias)
        assert not torch.equal(moved, grown.net(x, t, labels))
    with pytest.raises(RuntimeError):
        small.warm_start(grown)  # the scales do not go away


def test_guided_conditional_samples_with_ddim():
    model = _ddpm()
    labels = [3, 3, 5]
    samples = model.sample(3, seeded(1), labels, guidance=2.0, classifier_scale=1.0, sampling_steps=4)
    assert_uint8_images(samples, 3)
    assert torch.equal(samples, model.sample(3, seeded(1), labels, guidance=2.0, classifier_scale=1.0,
                                             sampling_steps=4))
    assert not torch.equal(samples, model.sample(3, seeded(1), labels, sampling_steps=4))


def test_schedule_accessors_index_by_t():
    schedule = Schedule(torch.tensor([0.1, 0.2, 0.5]))
    assert schedule.T == 3 and schedule.alpha_bar(0).item() == 1.0
    assert schedule.alpha_bar(torch.tensor([1, 3])).tolist() == pytest.approx([0.9, 0.9 * 0.8 * 0.5])
    assert schedule.beta(2).item() == pytest.approx(0.2)


def test_ddim_recovers_x0_from_the_true_eps_and_clips_its_estimate_to_the_data_range():
    schedule = cosine_schedule(1000)
    x0 = torch.rand(4, 1, 28, 28, generator=seeded(11)) * 2 - 1
    eps = torch.randn(x0.shape, generator=seeded(12))
    x_t = q_sample(x0, torch.full((4,), 600), eps, schedule)
    torch.testing.assert_close(ddim_update(x_t, 600, 0, eps, schedule), x0, atol=1e-5, rtol=0)
    # At t = T, abar_T ~ 2e-9: an eps off by 0.01 would put x0^ ~ 200 away; clipped, x_980 stays near N(0, 1).
    x_T = torch.randn(x0.shape, generator=seeded(13))
    abar, abar_next = schedule.alpha_bar(1000).item(), schedule.alpha_bar(980).item()
    x_next = ddim_update(x_T, 1000, 980, x_T + 0.01, schedule)
    assert abar < 1e-8
    assert bool((x_next.abs() <= math.sqrt(abar_next) + math.sqrt(1 - abar_next) * x_T.abs() + 1e-4).all())


def test_ddim_moves_along_the_noise_its_clipped_estimate_implies():
    """Where the clip acts, the step uses eps^ = (x_t - sqrt(abar_t) x0^) / sqrt(1 - abar_t), so x_t = sqrt(abar_t)
    x0^ + sqrt(1 - abar_t) eps^ holds exactly (guided-diffusion's DDIM); mixing the clipped x0^ with the unclipped
    eps broke that and, under guidance, the class. Where it does not act, eps^ = eps."""
    schedule = cosine_schedule(1000)
    x_t = torch.randn(2, 1, 28, 28, generator=seeded(21)) * 1.5
    eps = torch.randn(x_t.shape, generator=seeded(22)) * 3  # a strongly guided eps: x0^ far outside [-1, 1]
    t, t_next = 700, 650
    abar, abar_next = schedule.alpha_bar(t).item(), schedule.alpha_bar(t_next).item()
    x0 = ((x_t - math.sqrt(1 - abar) * eps) / math.sqrt(abar)).clamp(-1, 1)
    implied = (x_t - math.sqrt(abar) * x0) / math.sqrt(1 - abar)
    expected = math.sqrt(abar_next) * x0 + math.sqrt(1 - abar_next) * implied
    torch.testing.assert_close(ddim_update(x_t, t, t_next, eps, schedule), expected, atol=1e-6, rtol=0)
    clipped = (x0.abs() == 1)
    assert 0.1 < clipped.float().mean() < 0.9
    assert torch.allclose(implied[~clipped], eps[~clipped], atol=1e-4)
    assert not torch.allclose(implied[clipped], eps[clipped], atol=1e-2)
