"""VQ-VAE: exact nearest codes, the straight-through gradient, which parameters each loss term moves, codebook
usage and dead-code restarts, sampling through the prior."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from genmetrics_models.registry import build_model
from genmetrics_models.vqvae import nearest_codes, perplexity, quantize
from tests.models.conftest import TINY, assert_uint8_images, seeded


def _model():
    return build_model("vqvae", TINY["vqvae"], generator=seeded(0))


def test_nearest_code_assignment_is_exact():
    codebook = torch.randn(16, 4, generator=seeded(0))
    z_e = torch.randn(3, 4, 5, 5, generator=seeded(1))
    z_e[0, :, 0, 0] = codebook[7]  # exactly on a code
    z_e[1, :, 2, 3] = (codebook[2] + codebook[9]) / 2 + 1e-3 * (codebook[9] - codebook[2])  # nearly halfway
    got = nearest_codes(z_e, codebook)
    assert got.shape == (3, 5, 5) and got[0, 0, 0] == 7 and got[1, 2, 3] == 9
    for n in range(3):
        for i in range(5):
            for j in range(5):
                distances = [sum((z_e[n, d, i, j].double() - codebook[k, d].double()) ** 2 for d in range(4))
                             for k in range(16)]
                assert got[n, i, j] == min(range(16), key=distances.__getitem__), (n, i, j)


def test_straight_through_gradient_reaches_the_encoder(digit_batch):
    model = _model()
    z_e = model.encoder(digit_batch[0][:4])
    z_st, codes, _, _ = quantize(z_e, model.codebook.weight)
    torch.testing.assert_close(z_st, model.codebook.weight[codes].permute(0, 3, 1, 2))  # the value is z_q
    recon = F.mse_loss(model.decoder(z_st), digit_batch[0][:4])
    encoder = list(model.encoder.parameters())
    grads = torch.autograd.grad(recon, [*encoder, model.codebook.weight], allow_unused=True)
    assert all(g is not None and g.abs().sum() > 0 for g in grads[:-1])  # copied from z_q to z_e
    assert grads[-1] is None  # the reconstruction does not move the codebook


def test_the_codebook_term_moves_the_codebook_and_the_commitment_term_the_encoder(digit_batch):
    model = _model()
    z_e = model.encoder(digit_batch[0][:4])
    _, codes, codebook_loss, commitment_loss = quantize(z_e, model.codebook.weight)
    z_q = model.codebook.weight[codes].permute(0, 3, 1, 2)
    assert codebook_loss.item() == pytest.approx((z_e - z_q).square().mean().item(), rel=1e-6)
    assert commitment_loss.item() == pytest.approx(codebook_loss.item(), rel=1e-6)  # equal values, other gradients
    parameters = [*model.encoder.parameters(), model.codebook.weight, *model.decoder.parameters()]
    encoder = len(list(model.encoder.parameters()))

    def moved(loss):
        grads = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
        return [g is not None and bool(g.abs().sum() > 0) for g in grads]

    by_codebook, by_commitment = moved(codebook_loss), moved(commitment_loss)
    assert by_codebook == [False] * encoder + [True] + [False] * (len(parameters) - encoder - 1)
    assert all(by_commitment[:encoder]) and not any(by_commitment[encoder:])
    # The codebook gradient moves each chosen code toward the mean of its latent vectors.
    (grad,) = torch.autograd.grad(codebook_loss, model.codebook.weight)
    flat, flat_codes = z_e.detach().permute(0, 2, 3, 1).reshape(-1, 4), codes.flatten()
    k = flat_codes[0]
    expected = 2 * (model.codebook.weight[k] - flat[flat_codes == k]).sum(0) / z_e.numel()
    torch.testing.assert_close(grad[k], expected.detach())


def test_perplexity_and_codebook_usage_are_logged(digit_batch):
    assert perplexity(torch.tensor([3, 3, 3]), 8) == pytest.approx(1.0)
    assert perplexity(torch.arange(8).repeat(2), 8) == pytest.approx(8.0)
    assert perplexity(torch.tensor([0, 0, 1, 2]), 8) == pytest.approx(math.exp(1.5 * math.log(2)))
    model = _model()
    losses = model.train_step(digit_batch[0][:8], digit_batch[1][:8], seeded(0))
    assert set(losses) == {"loss", "recon", "codebook", "commitment", "perplexity", "codes_used", "codes_reset",
                           "prior_bits"}
    assert losses["loss"] == pytest.approx(losses["recon"] + losses["codebook"] + 0.25 * losses["commitment"],
                                           rel=1e-5)
    assert 1 <= losses["perplexity"] <= losses["codes_used"] <= 16 and losses["codes_reset"] == 0


def test_codes_idle_for_dead_after_steps_restart_at_batch_latents(digit_batch):
    model = build_model("vqvae", {**TINY["vqvae"], "dead_after": 3}, generator=seeded(0))
    images = digit_batch[0][:8]
    with torch.no_grad():
        z_e = model.encoder(images)  # what the step's forward computes, before its update
        used = nearest_codes(z_e, model.codebook.weight).unique()
    unused = [k for k in range(16) if k not in used.tolist()]
    model.idle[unused[:2]] = 2  # one more idle step makes them dead
    losses = model.train_step(images, digit_batch[1][:8], seeded(0))
    assert losses["codes_reset"] == 2 and model.idle.max() < 3
    latents = z_e.permute(0, 2, 3, 1).reshape(-1, 4)
    for k in unused[:2]:
        assert (latents == model.codebook.weight[k]).all(1).any(), k
    assert all(model.idle[k] == 1 for k in unused[2:]) and all(model.idle[k] == 0 for k in used.tolist())


def test_the_prior_samples_code_grids_that_the_decoder_turns_into_images(digit_batch):
    model = _model()
    for _ in range(3):
        model.train_step(digit_batch[0][:8], digit_batch[1][:8], seeded(1))
    samples = model.sample(4, seeded(2))
    assert_uint8_images(samples, 4)
    logits = model.prior(model.encode_codes(torch.zeros(2, 7, 7, dtype=torch.long)))
    assert logits.shape == (2, 16, 7, 7)
