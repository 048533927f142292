"""VQ-VAE (van den Oord et al. 2017) with a PixelCNN prior over its code indices.

The encoder maps an image to a 7x7 grid of ``code_dim`` vectors ``z_e(x)``; each is replaced by its nearest codebook
vector ``z_q(x) = e_k``, ``k = argmin_j ||z_e - e_j||``, and the decoder reconstructs the image from ``z_q``. The
quantisation has no gradient, so the decoder's gradient is copied from ``z_q`` to ``z_e`` (straight-through:
``z_e + sg[z_q - z_e]``). The loss is

    recon + ||sg[z_e] - z_q||^2 + beta ||z_e - sg[z_q]||^2

with recon the mean squared error per pixel (images in [-1, 1]) and the two vector-quantisation terms means over the
latent grid's elements: the codebook term moves only the codebook, the commitment term only the encoder.

Dead codes: a code not chosen by any latent vector for ``dead_after`` consecutive training steps is re-initialised
to a latent vector ``z_e`` of the current batch drawn at random (from the training generator), so that it lands
where the encoder's outputs are; ``codes_reset`` in the logged losses counts them. ``perplexity``
(``exp(-sum_k p_k log p_k)``, p the batch's code frequencies) and ``codes_used`` (distinct codes in the batch) show the
codebook usage.

The prior is a small PixelCNN over the K-way code grid (one-hot inputs, raster order), trained in the same
``train_step`` (its own Adam) on the batch's code indices, detached; ``prior_bits`` is its NLL in bits per code.
Early in training it chases codes that still move; it catches up as they settle. ``sample(n)`` draws a code grid
from the prior and decodes it.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from genmetrics_models.base import Generator
from genmetrics_models.pixelcnn import PixelCNNNet, sample_autoregressive

GRID = 7
"""The latent grid is GRID x GRID (28 / 4)."""


class VQEncoder(nn.Module):
    """images (N, 1, 28, 28) -> z_e (N, code_dim, 7, 7); 28 -> 14 -> 7."""

    def __init__(self, width: int, code_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(2 * width, code_dim, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class VQDecoder(nn.Module):
    """z_q (N, code_dim, 7, 7) -> images (N, 1, 28, 28) in [-1, 1]; 7 -> 14 -> 28."""

    def __init__(self, width: int, code_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(code_dim, 2 * width, 3, 1, 1), nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def nearest_codes(z_e: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook vector (Euclidean) for each latent vector: z_e (N, D, H, W), codebook (K, D) ->
    (N, H, W) long. Distances are the summed squared differences themselves (not ``|a|^2 - 2ab + |b|^2``, whose
    cancellation can pick a farther code); ties go to the lowest index."""
    flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
    distances = (flat[:, None, :] - codebook.detach()[None]).square().sum(-1)
    return distances.argmin(1).reshape(z_e.shape[0], *z_e.shape[2:])


def lookup(indices: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Codebook vectors of ``indices`` (N, H, W) long: (K, D) -> (N, D, H, W), differentiable w.r.t. the codebook."""
    return codebook[indices].permute(0, 3, 1, 2)


def quantize(z_e: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Vector quantisation of z_e (N, D, H, W) with codebook (K, D) -> (z_st, indices, codebook_loss, commitment_loss).

    ``z_st = z_e + sg[z_q - z_e]`` (N, D, H, W) equals z_q and passes gradients to z_e only (straight-through);
    ``indices`` (N, H, W); ``codebook_loss = mean (sg[z_e] - z_q)^2`` (gradient to the codebook only),
    ``commitment_loss = mean (z_e - sg[z_q])^2`` (gradient to z_e only).
    """
    indices = nearest_codes(z_e, codebook)
    z_q = lookup(indices, codebook)
    codebook_loss = F.mse_loss(z_q, z_e.detach())
    commitment_loss = F.mse_loss(z_e, z_q.detach())
    return z_e + (z_q - z_e).detach(), indices, codebook_loss, commitment_loss


def perplexity(indices: torch.Tensor, codes: int) -> float:
    """``exp(entropy)`` of the code frequencies in ``indices`` (any shape): 1 (one code) .. ``codes`` (uniform)."""
    p = torch.bincount(indices.flatten(), minlength=codes).double() / indices.numel()
    return math.exp(-(p[p > 0] * p[p > 0].log()).sum().item())


class VQVAE(Generator):
    """VQ-VAE with a PixelCNN prior (see the module docstring): Adam for encoder, decoder and codebook; Adam for the
    prior."""

    name = "vqvae"
    defaults: ClassVar[dict[str, Any]] = {"width": 32, "codes": 128, "code_dim": 16, "beta": 0.25, "dead_after": 50,
                                          "batch_size": 64, "lr": 1e-3, "prior_channels": 32, "prior_layers": 5,
                                          "prior_lr": 1e-3}

    def build(self) -> None:
        width, codes, code_dim = self.hparams["width"], self.hparams["codes"], self.hparams["code_dim"]
        self.encoder = VQEncoder(width, code_dim)
        self.decoder = VQDecoder(width, code_dim)
        self.codebook = nn.Embedding(codes, code_dim)
        self.prior = PixelCNNNet(codes, self.hparams["prior_channels"], self.hparams["prior_layers"], codes)
        self.register_buffer("idle", torch.zeros(codes, dtype=torch.long))  # training steps since last chosen

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        autoencoder = [*self.encoder.parameters(), *self.decoder.parameters(), *self.codebook.parameters()]
        return {"autoencoder": torch.optim.Adam(autoencoder, self.hparams["lr"]),
                "prior": torch.optim.Adam(self.prior.parameters(), self.hparams["prior_lr"])}

    def encode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Code indices (N, H, W) long -> the prior's one-hot inputs (N, K, H, W) float."""
        return F.one_hot(codes, self.hparams["codes"]).permute(0, 3, 1, 2).float()

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) float in [-1, 1] -> decoder(z_q(x)), same shape."""
        z_st, _, _, _ = quantize(self.encoder(images), self.codebook.weight)
        return self.decoder(z_st)

    def generate(self, n: int, generator: torch.Generator, labels: torch.Tensor | None) -> torch.Tensor:
        codes = sample_autoregressive(self.prior, (n, GRID, GRID), self.encode_codes, generator)
        return self.decoder(lookup(codes, self.codebook.weight))

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        """One Adam step of the VQ-VAE loss, one of the prior on the batch's codes, then the dead-code restarts."""
        z_e = self.encoder(images)
        z_st, codes, codebook_loss, commitment_loss = quantize(z_e, self.codebook.weight)
        recon = F.mse_loss(self.decoder(z_st), images)
        loss = recon + codebook_loss + self.hparams["beta"] * commitment_loss
        self._update("autoencoder", loss)
        prior_bits = F.cross_entropy(self.prior(self.encode_codes(codes)), codes) / math.log(2)
        self._update("prior", prior_bits)
        reset = self.restart_dead_codes(codes, z_e.detach(), generator)
        return {"loss": loss.item(), "recon": recon.item(), "codebook": codebook_loss.item(),
                "commitment": commitment_loss.item(), "perplexity": perplexity(codes, self.hparams["codes"]),
                "codes_used": float(codes.unique().numel()), "codes_reset": float(reset), "prior_bits": prior_bits.item()}

    def restart_dead_codes(self, codes: torch.Tensor, z_e: torch.Tensor, generator: torch.Generator) -> int:
        """Count a step for every code, reset the counters of those in ``codes`` (N, H, W), and move each code idle
        for ``dead_after`` steps to a latent vector of ``z_e`` (N, D, H, W) drawn from ``generator``; returns how many
        were moved."""
        with torch.no_grad():
            self.idle += 1
            self.idle[codes.unique()] = 0
            dead = (self.idle >= self.hparams["dead_after"]).nonzero()[:, 0]
            if len(dead):
                flat = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
                picks = torch.randint(len(flat), (len(dead),), generator=generator).to(flat.device)
                self.codebook.weight[dead] = flat[picks]
                self.idle[dead] = 0
        return len(dead)

    def _update(self, name: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
