"""Autoencoder (AE) and variational autoencoder (VAE) for (28, 28, 1) images.

Reconstruction error is the squared error summed over pixels (images in [-1, 1]), averaged over the batch.
The VAE's encoder outputs ``mu`` and ``log sigma^2``; ``z = mu + sigma * eps`` with ``eps ~ N(0, I)``; its loss
adds ``beta`` times the closed-form ``KL(N(mu, sigma^2) || N(0, I)) = -1/2 sum(1 + log sigma^2 - mu^2 - sigma^2)``,
and it samples by decoding ``z ~ N(0, I)``. A plain AE has no prior: it samples by decoding ``z ~ N(m, C)``,
where ``m`` and ``C`` are exponential moving averages (momentum ``prior_momentum``) of the mean and covariance
of its training batches' latent codes (buffers saved with the weights).
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from genmetrics_models.base import Generator


class Encoder(nn.Module):
    """images (N, 1, 28, 28) -> (N, out_dim); 28 -> 14 -> 7."""

    def __init__(self, width: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(2 * width * 7 * 7, out_dim),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class Decoder(nn.Module):
    """z (N, z_dim) -> images (N, 1, 28, 28) in [-1, 1]; 7 -> 14 -> 28."""

    def __init__(self, z_dim: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(z_dim, 2 * width * 7 * 7), nn.ReLU(), nn.Unflatten(1, (2 * width, 7, 7)),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def squared_error(reconstruction: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Squared error summed over each image's pixels, averaged over the batch: (N, ...) x 2 -> scalar."""
    return (reconstruction - images).square().flatten(1).sum(1).mean()


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` per sample, closed form: (N, D) x 2 -> (N,)."""
    return -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``z = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)`` drawn on the CPU from ``generator``: differentiable in
    ``mu`` and ``logvar``; (N, D) x 2 -> (N, D)."""
    eps = torch.randn(mu.shape, generator=generator).to(mu.device)
    return mu + (0.5 * logvar).exp() * eps


class _Autoencoder(Generator):
    """Encoder, decoder and one Adam optimizer; ``encoder_outputs`` values per latent dimension."""

    encoder_outputs: int  # 1: the code (AE); 2: mu and log sigma^2 (VAE)

    def build(self) -> None:
        self.encoder = Encoder(self.hparams["width"], self.encoder_outputs * self.hparams["z_dim"])
        self.decoder = Decoder(self.hparams["z_dim"], self.hparams["width"])

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"autoencoder": torch.optim.Adam(self.parameters(), self.hparams["lr"])}

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) float in [-1, 1] -> its reconstruction, same shape (the VAE decodes ``mu``)."""
        return self.decoder(self.encoder(images)[:, :self.hparams["z_dim"]])

    def _update(self, loss: torch.Tensor) -> None:
        optimizer = self.optimizers["autoencoder"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


class AE(_Autoencoder):
    """Deterministic autoencoder trained on the squared error; samples decode codes drawn from a Gaussian fitted
    to the training codes (see the module docstring)."""

    name = "ae"
    defaults: ClassVar[dict[str, Any]] = {"z_dim": 16, "width": 32, "batch_size": 64, "lr": 1e-3, "prior_momentum": 0.05}
    encoder_outputs = 1

    def build(self) -> None:
        super().build()
        self.register_buffer("prior_mean", torch.zeros(self.hparams["z_dim"]))
        self.register_buffer("prior_cov", torch.eye(self.hparams["z_dim"]))

    def generate(self, n: int, generator: torch.Generator, labels: torch.Tensor | None) -> torch.Tensor:
        z_dim = self.hparams["z_dim"]
        scale = torch.linalg.cholesky(self.prior_cov + 1e-5 * torch.eye(z_dim, device=self.device))
        return self.decoder(self.prior_mean + self.noise(n, generator, z_dim) @ scale.T)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        """One Adam step on the squared error; then the codes' batch mean and covariance update the prior."""
        codes = self.encoder(images)
        loss = squared_error(self.decoder(codes), images)
        self._update(loss)
        with torch.no_grad():
            momentum = self.hparams["prior_momentum"]
            self.prior_mean.lerp_(codes.mean(0), momentum)
            self.prior_cov.lerp_(torch.cov(codes.T), momentum)
        return {"loss": loss.item()}


class VAE(_Autoencoder):
    """Variational autoencoder (Kingma & Welling 2014) with a N(0, I) prior; loss ``squared error + beta * KL``."""

    name = "vae"
    defaults: ClassVar[dict[str, Any]] = {"z_dim": 16, "width": 32, "batch_size": 64, "lr": 1e-3, "beta": 1.0}
    encoder_outputs = 2

    def generate(self, n: int, generator: torch.Generator, labels: torch.Tensor | None) -> torch.Tensor:
        return self.decoder(self.noise(n, generator, self.hparams["z_dim"]))

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        """One Adam step on ``squared error + beta * KL`` with ``z`` reparameterized (eps from ``generator``)."""
        mu, logvar = self.encoder(images).chunk(2, dim=1)
        reconstruction = squared_error(self.decoder(reparameterize(mu, logvar, generator)), images)
        kl = kl_divergence(mu, logvar).mean()
        loss = reconstruction + self.hparams["beta"] * kl
        self._update(loss)
        return {"loss": loss.item(), "reconstruction": reconstruction.item(), "kl": kl.item()}
