"""GANs for (28, 28, 1) images: DCGAN, conditional GAN, WGAN (weight clipping) and WGAN-GP.

The DCGAN discriminator D and generator G play the minimax game ``min_G max_D V``, with
``V = E log D(x) + E log(1 - D(G(z)))`` and ``D = sigmoid(logit)``; they are updated alternately, D first.
D minimises ``-V = softplus(-logit(x)) + softplus(logit(G(z)))``. G minimises either the saturating
``E log(1 - D(G(z))) = -E softplus(logit(G(z)))`` (the minimax objective itself) or, by default, the
non-saturating ``-E log D(G(z)) = E softplus(-logit(G(z)))``, whose gradient does not vanish while D wins.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from genmetrics_models.base import PRECISIONS, Generator


class GeneratorNet(nn.Module):
    """z (N, z_dim) [+ one-hot labels (N, K)] -> images (N, 1, 28, 28) in [-1, 1]; 7x7 -> 14x14 -> 28x28."""

    def __init__(self, z_dim: int, width: int, num_classes: int = 0) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Linear(z_dim + num_classes, 2 * width * 7 * 7, bias=False),
                                     nn.BatchNorm1d(2 * width * 7 * 7), nn.ReLU(),
                                     nn.Unflatten(1, (2 * width, 7, 7)))
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, onehot: torch.Tensor | None = None) -> torch.Tensor:
        return self.upsample(self.project(z if onehot is None else torch.cat([z, onehot], 1)))


class DiscriminatorNet(nn.Module):
    """images (N, 1, 28, 28) [+ labels as K constant one-hot planes] -> logits (N,); 28 -> 14 -> 7.

    ``batch_norm=False`` for WGAN-GP, whose per-sample gradient penalty batch norm would mix across samples.
    """

    def __init__(self, width: int, num_classes: int = 0, batch_norm: bool = True) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1 + num_classes, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=not batch_norm),
            nn.BatchNorm2d(2 * width) if batch_norm else nn.Identity(), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(2 * width * 7 * 7, 1),
        )

    def forward(self, images: torch.Tensor, onehot: torch.Tensor | None = None) -> torch.Tensor:
        if onehot is not None:
            planes = onehot[:, :, None, None].expand(-1, -1, *images.shape[2:])
            images = torch.cat([images, planes], 1)
        return self.net(images).squeeze(1)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``-V = -E log D(x) - E log(1 - D(G(z)))`` from logits (N,) -> scalar."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """``saturating``: ``E log(1 - D(G(z)))``; ``non-saturating``: ``-E log D(G(z))``; logits (N,) -> scalar."""
    return -F.softplus(fake_logits).mean() if kind == "saturating" else F.softplus(-fake_logits).mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator) -> torch.Tensor:
    """``E (||grad critic(x_hat)||_2 - 1)^2`` at ``x_hat = a * real + (1 - a) * fake``, ``a ~ U[0, 1]`` per sample
    (drawn from ``generator``); ``real``, ``fake`` (N, ...) -> scalar, differentiable w.r.t. the critic's
    parameters (Gulrajani et al. 2017, without the weight lambda)."""
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), generator=generator).to(real.device)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


class DCGAN(Generator):
    """Unconditional DCGAN: Adam(lr, (beta1, 0.999)) for both networks, N(0, 0.02) initialisation."""

    name = "dcgan"
    defaults: ClassVar[dict[str, Any]] = {"z_dim": 64, "width": 64, "batch_size": 64, "lr": 2e-4, "beta1": 0.5,
                                          "gan_loss": "non-saturating", "precision": "bf16"}
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"gan_loss": ("non-saturating", "saturating"),
                                                     "precision": PRECISIONS}
    init_std = 0.02
    critic_batch_norm = True

    def build(self) -> None:
        classes = self.num_classes if self.conditional else 0
        self.G = GeneratorNet(self.hparams["z_dim"], self.hparams["width"], classes)
        self.D = DiscriminatorNet(self.hparams["width"], classes, batch_norm=self.critic_batch_norm)

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = (self.hparams["beta1"], 0.999)
        return {"generator": torch.optim.Adam(self.G.parameters(), self.hparams["lr"], betas=betas),
                "discriminator": torch.optim.Adam(self.D.parameters(), self.hparams["lr"], betas=betas)}

    def onehot(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        """(N,) long -> (N, num_classes) float for a conditional model; None otherwise."""
        return F.one_hot(labels, self.num_classes).float() if self.conditional else None

    def generate(self, n: int, generator: torch.Generator, labels: torch.Tensor | None) -> torch.Tensor:
        return self.G(self.noise(n, generator, self.hparams["z_dim"]), self.onehot(labels))

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        """D step on ``images`` and G(z) (z drawn first from ``generator``; conditional fakes get the batch's
        labels), then a G step on the same z against the updated D."""
        onehot = self.onehot(labels)
        fake = self.G(self.noise(len(images), generator, self.hparams["z_dim"]), onehot)
        d_loss = discriminator_loss(self.D(images, onehot), self.D(fake.detach(), onehot))
        self._update("discriminator", d_loss)
        g_loss = generator_loss(self.D(fake, onehot), self.hparams["gan_loss"])
        self._update("generator", g_loss)
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}

    def _update(self, name: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


class CGAN(DCGAN):
    """Conditional DCGAN (Mirza & Osindero 2014): the one-hot label is appended to z in G and as constant planes
    to the image in D."""

    name = "cgan"
    conditional = True


class WGAN(DCGAN):
    """Wasserstein GAN (Arjovsky et al. 2017): critic loss ``E C(G(z)) - E C(x)``, generator loss ``-E C(G(z))``,
    ``n_critic`` critic updates (each on its own batch) per generator update, critic weights clipped to
    ``[-clip, clip]`` after each, RMSprop."""

    name = "wgan"
    defaults: ClassVar[dict[str, Any]] = {"z_dim": 64, "width": 64, "batch_size": 64, "lr": 5e-5, "n_critic": 5, "clip": 0.01,
                                          "precision": "bf16"}
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"precision": PRECISIONS}

    @property
    def batches_per_step(self) -> int:
        return self.hparams["n_critic"]

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": torch.optim.RMSprop(self.G.parameters(), self.hparams["lr"]),
                "discriminator": torch.optim.RMSprop(self.D.parameters(), self.hparams["lr"])}

    def critic_loss(self, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``E C(G(z)) - E C(x)`` (the negated Wasserstein estimate) -> scalar."""
        return self.D(fake).mean() - self.D(real).mean()

    def after_critic_step(self) -> None:
        """Clip every critic parameter to ``[-clip, clip]`` (the Lipschitz constraint of WGAN)."""
        with torch.no_grad():
            for parameter in self.D.parameters():
                parameter.clamp_(-self.hparams["clip"], self.hparams["clip"])

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        """``n_critic`` critic steps on the ``batch_size`` chunks of ``images``, then one generator step."""
        z_dim, batch = self.hparams["z_dim"], self.hparams["batch_size"]
        for real in images.split(batch):
            with torch.no_grad():
                fake = self.G(self.noise(len(real), generator, z_dim))
            d_loss = self.critic_loss(real, fake, generator)
            self._update("discriminator", d_loss)
            self.after_critic_step()
        g_loss = -self.D(self.G(self.noise(batch, generator, z_dim))).mean()
        self._update("generator", g_loss)
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}


class WGANGP(WGAN):
    """WGAN-GP (Gulrajani et al. 2017): the WGAN losses plus ``gp_weight * gradient_penalty``, no clipping, a
    critic without batch norm, Adam(lr, (beta1, beta2))."""

    name = "wgan-gp"
    defaults: ClassVar[dict[str, Any]] = {"z_dim": 64, "width": 64, "batch_size": 64, "lr": 1e-4, "beta1": 0.0, "beta2": 0.9,
                "n_critic": 5, "gp_weight": 10.0, "precision": "bf16"}
    critic_batch_norm = False

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = (self.hparams["beta1"], self.hparams["beta2"])
        return {"generator": torch.optim.Adam(self.G.parameters(), self.hparams["lr"], betas=betas),
                "discriminator": torch.optim.Adam(self.D.parameters(), self.hparams["lr"], betas=betas)}

    def critic_loss(self, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``E C(G(z)) - E C(x) + gp_weight * gradient_penalty`` -> scalar."""
        penalty = gradient_penalty(self.D, real, fake, generator)
        return super().critic_loss(real, fake, generator) + self.hparams["gp_weight"] * penalty

    def after_critic_step(self) -> None:
        """Nothing: the gradient penalty replaces clipping."""
