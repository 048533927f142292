"""AE and VAE: the closed-form KL, the reparameterization, reconstruction, and sampling from the priors."""
from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal
from torch.distributions import kl_divergence as torch_kl

from genmetrics_models.registry import build_model
from genmetrics_models.vae import kl_divergence, reparameterize, squared_error
from tests.models.conftest import TINY, assert_uint8_images, seeded


def test_closed_form_kl_equals_torch_distributions():
    mu = torch.randn(6, 5, generator=seeded(0), dtype=torch.float64) * 2
    logvar = torch.randn(6, 5, generator=seeded(1), dtype=torch.float64) * 1.5
    expected = torch_kl(Normal(mu, (0.5 * logvar).exp()), Normal(torch.zeros(()), torch.ones(()))).sum(1)
    assert torch.allclose(kl_divergence(mu, logvar), expected, rtol=1e-12, atol=1e-12)
    assert kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)).tolist() == [0.0, 0.0]  # the prior itself


def test_gradients_flow_to_mu_and_sigma_through_the_sample():
    mu = torch.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, -2.0, 1.0]], requires_grad=True)
    z = reparameterize(mu, logvar, seeded(3))
    eps = torch.randn(1, 3, generator=seeded(3))
    assert torch.allclose(z, mu + (0.5 * logvar).exp() * eps)
    z.sum().backward()
    assert mu.grad.tolist() == [[1.0, 1.0, 1.0]]  # dz/dmu = 1
    assert torch.allclose(logvar.grad, 0.5 * (0.5 * logvar.detach()).exp() * eps)  # dz/dlogvar = sigma * eps / 2
    assert (logvar.grad != 0).all()


def test_vae_loss_is_reconstruction_plus_beta_kl(digit_batch):
    model = build_model("vae", {**TINY["vae"], "beta": 0.5}, generator=seeded(0))
    images = digit_batch[0][:8]
    with torch.no_grad():
        mu, logvar = model.encoder(images).chunk(2, dim=1)
        reconstruction = squared_error(model.decoder(reparameterize(mu, logvar, seeded(1))), images).item()
        kl = kl_divergence(mu, logvar).mean().item()
    losses = model.train_step(images, digit_batch[1][:8], seeded(1))
    assert losses["reconstruction"] == pytest.approx(reconstruction, rel=1e-5)
    assert losses["kl"] == pytest.approx(kl, rel=1e-5)
    assert losses["loss"] == pytest.approx(reconstruction + 0.5 * kl, rel=1e-5)


def test_vae_samples_decode_the_standard_normal_prior():
    model = build_model("vae", TINY["vae"], generator=seeded(0)).eval()
    samples = model.sample(4, seeded(2))
    assert_uint8_images(samples, 4)
    with torch.no_grad():
        decoded = model.decoder(torch.randn(4, 4, generator=seeded(2)))
    assert torch.equal(samples, ((decoded + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1))


def test_briefly_trained_ae_reconstructs_better_than_the_mean_image(digit_batch):
    images, labels = digit_batch
    model = build_model("ae", {"width": 8, "z_dim": 8, "batch_size": 32, "lr": 3e-3}, generator=seeded(0))
    generator = seeded(1)
    for step in range(150):
        index = torch.randperm(64, generator=generator)[:32]
        model.train_step(images[index], labels[index], generator)
    with torch.no_grad():
        error = squared_error(model.reconstruct(images), images).item()
    baseline = squared_error(images.mean(0, keepdim=True).expand_as(images), images).item()
    assert error < 0.5 * baseline


def test_ae_prior_tracks_the_codes_and_samples_from_it(digit_batch):
    model = build_model("ae", {**TINY["ae"], "prior_momentum": 1.0}, generator=seeded(0))
    images = digit_batch[0][:8]
    with torch.no_grad():
        codes = model.encoder(images)
    model.train_step(images, digit_batch[1][:8], seeded(1))
    # momentum 1: the prior is the last batch's codes (before that step's update)
    assert torch.allclose(model.prior_mean, codes.mean(0), atol=1e-6)
    assert torch.allclose(model.prior_cov, torch.cov(codes.T), atol=1e-6)
    model.eval()
    scale = torch.linalg.cholesky(model.prior_cov + 1e-5 * torch.eye(4))
    with torch.no_grad():
        decoded = model.decoder(model.prior_mean + torch.randn(3, 4, generator=seeded(5)) @ scale.T)
    expected = ((decoded + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    assert torch.equal(model.sample(3, seeded(5)), expected)
