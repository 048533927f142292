"""DDPM (Ho et al. 2020) with class conditioning, classifier-free and classifier guidance, and a DDIM sampler.

Forward process over t = 1..T: ``q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)``, so with
``alpha_t = 1 - beta_t`` and ``abar_t = prod_{s<=t} alpha_s``: ``q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)``.

* Schedules: ``linear`` (Ho et al.: beta from 1e-4 to 0.02, meant for T = 1000) and ``cosine`` (Nichol & Dhariwal
  2021: ``abar_t = f(t) / f(0)``, ``f(t) = cos^2((t/T + s) / (1 + s) * pi/2)``, s = 0.008, beta clipped at 0.999).
* Training, Algorithm 1: t ~ Uniform{1..T}, eps ~ N(0, I), one step on
  ``L_simple = ||eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t)||^2`` (mean over pixels), gradients
  clipped to norm ``grad_clip`` (0: none); the sampler uses an exponential moving average of the weights
  (``ema_decay``, warmed up as ``min(ema_decay, (1 + n) / (10 + n))`` after n updates).
* Sampling, Algorithm 2 (``sampling_steps=0``): x_T ~ N(0, I), then for t = T..1
  ``x_{t-1} = (x_t - (1 - alpha_t) / sqrt(1 - abar_t) eps_theta(x_t, t)) / sqrt(alpha_t) + sigma_t z`` with
  z ~ N(0, I) (z = 0 at t = 1) and ``sigma_t^2 = beta_t`` (``variance=beta``) or the posterior variance
  ``beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t`` (``variance=posterior``).
* DDIM (Song et al. 2021), eta = 0 (``sampling_steps=K``, 1 <= K <= T): deterministic after x_T, over the K times
  ``tau_i = floor(i T / K)``: ``x0^ = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)`` clipped to [-1, 1], the noise it
  implies ``eps^ = (x_t - sqrt(abar_t) x0^) / sqrt(1 - abar_t)``, ``x_{t'} = sqrt(abar_{t'}) x0^ + sqrt(1 - abar_{t'})
  eps^`` for the next time t' (abar_0 = 1 at the end).
* Class conditioning (``conditional=true``, the default): a label embedding is added to the time embedding; in
  training each label is replaced by a null class with probability ``p_uncond``, so that one network gives both
  eps_c = eps(x_t, t, y) and eps_u = eps(x_t, t, null). The embedding shifts each block's activations;
  ``scale_shift_norm=true`` (ADM's adaptive GroupNorm) also scales them.
* Classifier-free guidance (Ho & Salimans 2022), weight w (``guidance``):
  ``eps~ = (1 + w) eps_c - w eps_u = eps_u + (1 + w)(eps_c - eps_u)``. w = 0: the conditional model without
  guidance (one network call per step); w = -1: the unconditional model (one call, on the null label); w > 0:
  guided. (The ``eps_u + s (eps_c - eps_u)`` form's scale is s = 1 + w.)
* Classifier guidance (Dhariwal & Nichol 2021), scale s (``classifier_scale``): a noise-aware classifier
  f(y | x_t, t), a small CNN with its own time embedding, is trained alongside (same step, same x_t and t, true
  labels, its own Adam). Algorithm 2 shifts the mean by ``s sigma_t^2 grad_{x_t} log f(y | x_t, t)``; DDIM uses
  ``eps^ = eps - s sqrt(1 - abar_t) grad_{x_t} log f(y | x_t, t)``. It combines with classifier-free guidance
  (e.g. w = -1 for classifier guidance of the unconditional model).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from genmetrics.errors import ConfigError, phrase, spell
from genmetrics_models.base import PRECISIONS, Generator, spell_hparam


class Schedule:
    """A noise schedule of T steps: ``betas`` (T,) float64 for t = 1..T, and its derived quantities by t."""

    def __init__(self, betas: torch.Tensor) -> None:
        self.betas = betas.double()
        self.alpha_bars = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - self.betas, 0)])
        """(T + 1,): abar_t at index t, abar_0 = 1."""

    @property
    def T(self) -> int:
        return len(self.betas)

    def beta(self, t: int | torch.Tensor) -> torch.Tensor:
        """beta_t for t in 1..T (int or long tensor) -> float64 of t's shape."""
        return self.betas[torch.as_tensor(t) - 1]

    def alpha_bar(self, t: int | torch.Tensor) -> torch.Tensor:
        """abar_t for t in 0..T (abar_0 = 1) -> float64 of t's shape."""
        return self.alpha_bars[torch.as_tensor(t)]

    def posterior_variance(self, t: int | torch.Tensor) -> torch.Tensor:
        """``beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t``, the variance of q(x_{t-1} | x_t, x_0), t in 1..T."""
        t = torch.as_tensor(t)
        return (1 - self.alpha_bar(t - 1)) / (1 - self.alpha_bar(t)) * self.beta(t)


def linear_schedule(timesteps: int, start: float = 1e-4, end: float = 0.02) -> Schedule:
    """Ho et al.'s betas, linear from ``start`` to ``end`` over ``timesteps`` steps."""
    return Schedule(torch.linspace(start, end, timesteps, dtype=torch.float64))


def cosine_schedule(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Nichol & Dhariwal's schedule: ``abar_t = f(t) / f(0)``, ``f(t) = cos^2((t / T + s) / (1 + s) * pi / 2)``,
    ``beta_t = 1 - abar_t / abar_{t-1}`` clipped at ``max_beta``."""
    t = torch.arange(timesteps + 1, dtype=torch.float64)
    f = torch.cos((t / timesteps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return Schedule((1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta))


SCHEDULES = {"linear": linear_schedule, "cosine": cosine_schedule}


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """float64 (N,) or scalar -> like's dtype and device, shaped (N, 1, 1, 1) to broadcast over images."""
    return values.to(like.dtype).to(like.device).reshape(-1, *([1] * (like.dim() - 1)))


def q_sample(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """A draw of q(x_t | x_0) given its noise: ``sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``; x0, eps (N, ...),
    t (N,) long in 1..T."""
    alpha_bar = schedule.alpha_bar(t.cpu())
    return _per_sample(alpha_bar.sqrt(), x0) * x0 + _per_sample((1 - alpha_bar).sqrt(), x0) * eps


def ancestral_update(x_t: torch.Tensor, t: int, eps: torch.Tensor, schedule: Schedule, z: torch.Tensor | None,
                   variance: str = "beta", grad_log_f: torch.Tensor | None = None) -> torch.Tensor:
    """One step of Algorithm 2 at time t (1..T): x_t, eps (N, ...) -> x_{t-1} (N, ...).

    ``mean = (x_t - (1 - alpha_t) / sqrt(1 - abar_t) eps) / sqrt(alpha_t)`` [``+ sigma_t^2 grad_log_f``, the
    classifier guidance shift, already scaled by s]; ``x_{t-1} = mean + sigma_t z`` for t > 1 and ``mean`` at t = 1
    (z unused). ``sigma_t^2``: beta_t (``variance="beta"``) or beta~_t (``"posterior"``).
    """
    beta = schedule.beta(t).item()
    mean = (x_t - beta / math.sqrt(1 - schedule.alpha_bar(t).item()) * eps) / math.sqrt(1 - beta)
    sigma2 = beta if variance == "beta" else schedule.posterior_variance(t).item()
    if grad_log_f is not None:
        mean = mean + sigma2 * grad_log_f
    return mean if t == 1 else mean + math.sqrt(sigma2) * z


def ddim_times(timesteps: int, steps: int) -> list[int]:
    """The K = ``steps`` DDIM times ``floor(i T / K)`` for i = K..1, descending from T (distinct for K <= T)."""
    return [i * timesteps // steps for i in range(steps, 0, -1)]


def ddim_update(x_t: torch.Tensor, t: int, t_next: int, eps: torch.Tensor, schedule: Schedule,
                clip: bool = True) -> torch.Tensor:
    """DDIM with eta = 0 from time t to t_next < t (t_next = 0: the final image): x_t, eps (N, ...) -> x_{t_next}:
    ``sqrt(abar_{t_next}) x0^ + sqrt(1 - abar_{t_next}) eps^``, where ``x0^ = (x_t - sqrt(1 - abar_t) eps) /
    sqrt(abar_t)`` clipped to the data range [-1, 1] and ``eps^ = (x_t - sqrt(abar_t) x0^) / sqrt(1 - abar_t)`` the
    noise that clipped estimate implies (guided-diffusion's ``_predict_eps_from_xstart``). Without the clip, the
    cosine schedule's abar_T ~ 2e-9 turns an eps error of 0.01 at t = T into an x0^ error of ~200. Without the
    recomputed eps^, the step mixes a clipped x0^ with the unclipped eps, inconsistent with x_t wherever the clip
    acts: with classifier-free guidance w = 2 that drove 58% of the shipped model's samples out of their class
    (README, "Guidance"). ``clip=False`` (latents, which have no data range): x0^ unclipped, eps^ = eps."""
    alpha_bar, alpha_bar_next = schedule.alpha_bar(t).item(), schedule.alpha_bar(t_next).item()
    x0 = (x_t - math.sqrt(1 - alpha_bar) * eps) / math.sqrt(alpha_bar)
    if clip:
        x0 = x0.clamp(-1, 1)
        eps = (x_t - math.sqrt(alpha_bar) * x0) / math.sqrt(1 - alpha_bar)
    return math.sqrt(alpha_bar_next) * x0 + math.sqrt(1 - alpha_bar_next) * eps


def cfg_eps(eps_c: torch.Tensor, eps_u: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance with Ho & Salimans' weight w: ``(1 + w) eps_c - w eps_u``."""
    return eps_c + w * (eps_c - eps_u)


def classifier_grad(classifier: nn.Module, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``grad_{x_t} log f(y | x_t, t)`` for each sample: x_t (N, ...), t (N,), labels (N,) -> (N, ...), from
    ``classifier(x_t, t)`` logits (N, K) (whose samples must not interact, as here: no batch norm)."""
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        log_f = F.log_softmax(classifier(x, t), 1).gather(1, labels[:, None]).sum()
        (grad,) = torch.autograd.grad(log_f, x)
    return grad


def check_guidance(guidance: float) -> None:
    """ConfigError unless the classifier-free guidance weight w is finite and >= -1."""
    if not -1 <= guidance < math.inf:
        raise ConfigError(f"{spell('guidance', repr(guidance))} must be a finite number >= -1 (0: no guidance)")


def check_sampling_steps(steps: int, timesteps: int) -> None:
    """ConfigError unless ``steps`` lies in 0 (Algorithm 2) .. ``timesteps`` (DDIM)."""
    if not 0 <= steps <= timesteps:
        raise ConfigError(f"{spell('sampling_steps', repr(steps))} must lie in 0..{timesteps} (the model's "
                          "timesteps; 0: Algorithm 2 with all of them)")


def update_ema(ema: nn.Module, net: nn.Module, updates: torch.Tensor, ema_decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * net, ``decay = min(ema_decay, (1 + n) / (10 + n))`` after n = ``updates``
    updates (a long scalar buffer, incremented)."""
    n = updates.item()
    decay = min(ema_decay, (1 + n) / (10 + n))
    with torch.no_grad():
        for average, parameter in zip(ema.parameters(), net.parameters()):
            average.lerp_(parameter, 1 - decay)
    updates += 1


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-style sinusoidal embedding: t (N,) -> (N, dim) ``[sin(t w_k), cos(t w_k)]``,
    ``w_k = 10000^(-k / (dim / 2))``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], 1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(8 if channels % 8 == 0 else 1, channels)


class ResBlock(nn.Module):
    """(N, in, H, W), embedding (N, E) -> (N, out, H, W): GroupNorm-SiLU-conv3x3, plus a per-channel projection of the
    embedding, GroupNorm-SiLU-conv3x3, plus the input (through a 1x1 conv when in != out). ``scale_shift_norm``
    (ADM's adaptive GroupNorm, Dhariwal & Nichol 2021) also scales the second GroupNorm's output by 1 + a second
    projection of the embedding, which starts at zero (:meth:`zero_scale`)."""

    def __init__(self, in_channels: int, out_channels: int, embedding_dim: int, scale_shift_norm: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(_norm(in_channels), nn.SiLU(), nn.Conv2d(in_channels, out_channels, 3, padding=1))
        self.embedding = nn.Sequential(nn.SiLU(), nn.Linear(embedding_dim, out_channels))
        self.scale = nn.Sequential(nn.SiLU(), nn.Linear(embedding_dim, out_channels)) if scale_shift_norm else None
        self.conv2 = nn.Sequential(_norm(out_channels), nn.SiLU(), nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def zero_scale(self) -> None:
        """Set the scale projection (``scale_shift_norm``) to zero: the block computes what it did without it."""
        if self.scale is not None:
            nn.init.zeros_(self.scale[1].weight)
            nn.init.zeros_(self.scale[1].bias)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x) + self.embedding(embedding)[:, :, None, None]
        if self.scale is None:
            return self.skip(x) + self.conv2(h)
        h = self.conv2[0](h) * (1 + self.scale(embedding)[:, :, None, None])
        return self.skip(x) + self.conv2[2](self.conv2[1](h))


class SelfAttention(nn.Module):
    """x (N, C, H, W) -> x + multi-head self-attention over the H*W positions of GroupNorm(x) (Ho et al. 2020 use it
    at 16x16)."""

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = self.norm(x).flatten(2).transpose(1, 2)  # (N, HW, C)
        return x + self.attention(q, q, q, need_weights=False)[0].transpose(1, 2).reshape(n, c, h, w)


class UNet(nn.Module):
    """eps_theta: x_t (N, 1, 28, 28), t (N,) in 1..T [, labels (N,) in 0..K, K the null class] -> (N, 1, 28, 28).

    ``levels=2``: ``channels`` at 28x28, twice that at 14x14 (a residual block down, one in the middle, one up, with
    skip connections). ``levels=3`` adds a 7x7 branch of twice ``channels`` beside the middle block (down, a block,
    self-attention over the whole 7x7 map, a block with a skip, up), whose output is added to the middle block's; its
    last convolution starts at zero, so a grown net computes what its 2-level weights did (:meth:`DDPM.warm_start`).
    Every block gets the sinusoidal time embedding through an MLP, plus the label embedding for a conditional net
    (``num_classes`` > 0), as a shift of its activations; ``scale_shift_norm`` adds a scale (:class:`ResBlock`), which
    starts at zero, so a net grown with it also computes what it did before.
    """

    BRANCH_7X7: ClassVar[tuple[str, ...]] = ("down_7", "down3", "attention", "mid_7", "up_7")

    def __init__(self, channels: int, num_classes: int = 0, levels: int = 2, scale_shift_norm: bool = False) -> None:
        super().__init__()
        c, e = channels, 4 * channels

        def block(in_channels: int, out_channels: int) -> ResBlock:
            return ResBlock(in_channels, out_channels, e, scale_shift_norm)

        self.channels = c
        self.time = nn.Sequential(nn.Linear(c, e), nn.SiLU(), nn.Linear(e, e))
        self.label = nn.Embedding(num_classes + 1, e) if num_classes else None
        self.inp = nn.Conv2d(1, c, 3, padding=1)
        self.down1 = block(c, c)
        self.down = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.down2 = block(c, 2 * c)
        self.mid = block(2 * c, 2 * c)
        if levels == 3:
            self.down_7 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1)
            self.down3 = block(2 * c, 2 * c)
            self.attention = SelfAttention(2 * c)
            self.mid_7 = block(4 * c, 2 * c)
            self.up_7 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                      nn.Conv2d(2 * c, 2 * c, 3, padding=1))
        self.levels = levels
        self.up2 = block(4 * c, 2 * c)
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * c, c, 3, padding=1))
        self.up1 = block(2 * c, c)
        self.out = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, 1, 3, padding=1))

    def zero_growable_parts(self) -> None:
        """Set what a warm start may grow onto a smaller net to zero: the 7x7 branch's last convolution (levels=3)
        and every block's scale projection (``scale_shift_norm``), so that they add nothing yet."""
        if self.levels == 3:
            nn.init.zeros_(self.up_7[1].weight)
            nn.init.zeros_(self.up_7[1].bias)
        for module in self.modules():
            if isinstance(module, ResBlock):
                module.zero_scale()

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        embedding = self.time(timestep_embedding(t, self.channels))
        if self.label is not None:
            embedding = embedding + self.label(labels)
        h1 = self.down1(self.inp(x), embedding)  # (N, c, 28, 28)
        h2 = self.down2(self.down(h1), embedding)  # (N, 2c, 14, 14)
        h = self.mid(h2, embedding)
        if self.levels == 3:
            h3 = self.down3(self.down_7(h2), embedding)  # (N, 2c, 7, 7)
            h = h + self.up_7(self.mid_7(torch.cat([self.attention(h3), h3], 1), embedding))  # (N, 2c, 14, 14)
        h = self.up2(torch.cat([h, h2], 1), embedding)
        return self.out(self.up1(torch.cat([self.up(h), h1], 1), embedding))


class NoisyClassifier(nn.Module):
    """f(y | x_t, t): x_t (N, 1, 28, 28), t (N,) -> logits (N, num_classes). Convolutions 28 -> 14 -> 7 (GroupNorm,
    SiLU), the time embedding (sinusoidal, MLP) added per channel after the first, global average pool, linear."""

    def __init__(self, width: int, num_classes: int) -> None:
        super().__init__()
        self.width = width
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.inp = nn.Conv2d(1, width, 3, padding=1)
        self.body = nn.Sequential(
            nn.SiLU(), nn.Conv2d(width, 2 * width, 4, 2, 1), _norm(2 * width),
            nn.SiLU(), nn.Conv2d(2 * width, 2 * width, 4, 2, 1), _norm(2 * width),
            nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.body(self.inp(x) + self.time(timestep_embedding(t, self.width))[:, :, None, None])


class DDPM(Generator):
    """Denoising diffusion probabilistic model (see the module docstring): U-Net eps_theta with Adam, its EMA for
    sampling, and (conditional) a noise-aware classifier with its own Adam.

    Sampling options (``sample(..., guidance=, classifier_scale=, sampling_steps=)``; their defaults are the
    hyper-parameters of the same names, used by training evaluations and sample grids): ``guidance`` w >= -1,
    ``classifier_scale`` s >= 0, ``sampling_steps`` 0 (Algorithm 2, all T steps) or 1..T (DDIM).
    """

    name = "ddpm"
    defaults: ClassVar[dict[str, Any]] = {
        "channels": 32, "levels": 2, "scale_shift_norm": False, "timesteps": 1000, "schedule": "linear",
        "variance": "beta", "conditional": True, "p_uncond": 0.1, "classifier_width": 32, "batch_size": 64, "lr": 5e-4,
        "grad_clip": 1.0, "ema_decay": 0.999, "guidance": 0.0, "classifier_scale": 0.0, "sampling_steps": 50,
        "precision": "bf16",
    }
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"schedule": tuple(SCHEDULES), "variance": ("beta", "posterior"),
                                                     "precision": PRECISIONS}
    nonnegative: ClassVar[tuple[str, ...]] = ("sampling_steps",)
    legacy_hparams: ClassVar[dict[str, Any]] = {**Generator.legacy_hparams, "levels": 2, "scale_shift_norm": False}
    sample_options: ClassVar[dict[str, type]] = {"guidance": float, "classifier_scale": float, "sampling_steps": int}

    def __init__(self, hparams: Mapping[str, Any] | None = None, *, num_classes: int = 10,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(hparams, num_classes=num_classes, generator=generator)
        self.net.zero_growable_parts()
        self.ema.load_state_dict(self.net.state_dict())  # the average starts at the initial weights

    def build(self) -> None:
        hp = self.hparams
        if hp["p_uncond"] > 1:
            raise ConfigError(f"hyper-parameter p_uncond={hp['p_uncond']!r} of model 'ddpm' must lie in [0, 1]")
        if hp["levels"] not in (2, 3):
            raise ConfigError(f"hyper-parameter levels={hp['levels']!r} of model 'ddpm' must be 2 (28x28 and 14x14) or "
                              "3 (down to 7x7, with self-attention there)")
        if hp["ema_decay"] >= 1:
            raise ConfigError(f"hyper-parameter ema_decay={hp['ema_decay']!r} of model 'ddpm' must lie in [0, 1)")
        self.conditional = hp["conditional"]
        self.schedule = SCHEDULES[hp["schedule"]](hp["timesteps"])
        classes = self.num_classes if self.conditional else 0
        self.net = UNet(hp["channels"], classes, hp["levels"], hp["scale_shift_norm"])
        self.ema = UNet(hp["channels"], classes, hp["levels"], hp["scale_shift_norm"]).requires_grad_(False)
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self.classifier = NoisyClassifier(hp["classifier_width"], self.num_classes) if self.conditional else None
        self.check_sample_options({})  # the hyper-parameters that are sampling defaults

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizers = {"denoiser": torch.optim.Adam(self.net.parameters(), self.hparams["lr"])}
        if self.classifier is not None:
            optimizers["classifier"] = torch.optim.Adam(self.classifier.parameters(), self.hparams["lr"])
        return optimizers

    def check_sample_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """All three options, the given ones over the hyper-parameters; ConfigError for a value out of range or
        guidance on an unconditional model."""
        given = super().check_sample_options(options)
        resolved = {key: given.get(key, self.hparams[key]) for key in self.sample_options}
        guidance, scale, steps = resolved["guidance"], resolved["classifier_scale"], resolved["sampling_steps"]
        check_guidance(guidance)
        if not 0 <= scale < math.inf:
            raise ConfigError(f"{spell('classifier_scale', repr(scale))} must be a finite number >= 0 (0: no "
                              "classifier guidance)")
        check_sampling_steps(steps, self.hparams["timesteps"])
        if not self.conditional and (guidance or scale):
            raise ConfigError("this ddpm is unconditional: guidance and classifier_scale need a model trained with "
                              f"{spell_hparam('conditional', phrase('True', 'true'))}")
        return resolved

    def generate(self, n: int, generator: torch.Generator, labels: torch.Tensor | None, *, guidance: float,
                 classifier_scale: float, sampling_steps: int) -> torch.Tensor:
        """x_T from ``generator``, then Algorithm 2 (``sampling_steps=0``, one z per step from ``generator``) or
        DDIM over ``sampling_steps`` times (nothing more drawn) -> x_0 (n, 1, 28, 28)."""
        x = torch.randn((n, 1, 28, 28), generator=generator).to(self.device)
        if sampling_steps == 0:
            for t in range(self.schedule.T, 0, -1):
                x = self.p_step(x, t, labels, generator, guidance, classifier_scale)
            return x
        times = ddim_times(self.schedule.T, sampling_steps)
        for t, t_next in zip(times, [*times[1:], 0]):
            x = self.ddim_step(x, t, t_next, labels, guidance, classifier_scale)
        return x

    def predict_eps(self, x: torch.Tensor, t: int, labels: torch.Tensor | None, guidance: float) -> torch.Tensor:
        """The sampler's (EMA) eps at x (N, 1, 28, 28) and time t, with classifier-free guidance weight w =
        ``guidance`` for a conditional model (w = 0: eps_c alone) -> (N, 1, 28, 28)."""
        times = torch.full((len(x),), t, dtype=torch.long, device=x.device)
        if not self.conditional or guidance == 0:
            return self.ema(x, times, labels)
        null = torch.full_like(labels, self.num_classes)
        if guidance == -1:  # eps_u alone: one network call
            return self.ema(x, times, null)
        eps_c, eps_u = self.ema(torch.cat([x, x]), torch.cat([times, times]), torch.cat([labels, null])).chunk(2)
        return cfg_eps(eps_c, eps_u, guidance)

    def guidance_grad(self, x: torch.Tensor, t: int, labels: torch.Tensor | None,
                      classifier_scale: float) -> torch.Tensor | None:
        """``s grad_x log f(y | x, t)`` (N, 1, 28, 28) for s = ``classifier_scale`` > 0; None for s = 0."""
        if not classifier_scale:
            return None
        times = torch.full((len(x),), t, dtype=torch.long, device=x.device)
        return classifier_scale * classifier_grad(self.classifier, x, times, labels)

    def p_step(self, x: torch.Tensor, t: int, labels: torch.Tensor | None, generator: torch.Generator,
               guidance: float = 0.0, classifier_scale: float = 0.0) -> torch.Tensor:
        """Algorithm 2 from x_t (N, 1, 28, 28) to x_{t-1}; z is drawn from ``generator`` for t > 1 only."""
        eps = self.predict_eps(x, t, labels, guidance)
        z = torch.randn(x.shape, generator=generator).to(x.device) if t > 1 else None
        return ancestral_update(x, t, eps, self.schedule, z, self.hparams["variance"],
                              self.guidance_grad(x, t, labels, classifier_scale))

    def ddim_step(self, x: torch.Tensor, t: int, t_next: int, labels: torch.Tensor | None, guidance: float = 0.0,
                  classifier_scale: float = 0.0) -> torch.Tensor:
        """DDIM (eta = 0) from x_t to x_{t_next} (N, 1, 28, 28), classifier guidance applied to eps."""
        eps = self.predict_eps(x, t, labels, guidance)
        grad = self.guidance_grad(x, t, labels, classifier_scale)
        if grad is not None:
            eps = eps - math.sqrt(1 - self.schedule.alpha_bar(t).item()) * grad
        return ddim_update(x, t, t_next, eps, self.schedule)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        """Algorithm 1 on the batch (t, then eps, then the label dropout drawn from ``generator``), the EMA update,
        and (conditional) one classifier step on the same x_t, t and the true labels."""
        n, device = len(images), images.device
        t = torch.randint(1, self.schedule.T + 1, (n,), generator=generator)
        eps = torch.randn(images.shape, generator=generator).to(device)
        x_t = q_sample(images, t, eps, self.schedule)
        t = t.to(device)
        conditioning = None
        if self.conditional:
            dropped = (torch.rand(n, generator=generator) < self.hparams["p_uncond"]).to(device)
            conditioning = torch.where(dropped, self.num_classes, labels)
        loss = (self.net(x_t, t, conditioning) - eps).square().mean()
        self._update("denoiser", loss, self.net.parameters())
        self.update_ema()
        losses = {"loss": loss.item()}
        if self.classifier is not None:
            classifier_loss = F.cross_entropy(self.classifier(x_t, t), labels)
            self._update("classifier", classifier_loss, self.classifier.parameters())
            losses["classifier_loss"] = classifier_loss.item()
        return losses

    def warm_start(self, source: Generator) -> None:
        """:meth:`Generator.warm_start`, which may also grow the U-Net: from 2 to 3 levels (the 7x7 branch starts at
        zero) and/or from a shift to a scale-shift norm (the scales start at zero), so the grown model samples what
        ``source`` did until training moves it."""
        grows_levels = (source.hparams["levels"], self.hparams["levels"]) == (2, 3)
        grows_scales = not source.hparams["scale_shift_norm"] and self.hparams["scale_shift_norm"]
        if not (grows_levels or grows_scales):
            return super().warm_start(source)
        missing, unexpected = self.load_state_dict(source.state_dict(), strict=False)
        grown = [key for key in missing
                 if not (grows_levels and key.split(".")[1] in UNet.BRANCH_7X7 or grows_scales and ".scale." in key)]
        if unexpected or grown:
            raise RuntimeError(f"weights that do not fit: {[*unexpected, *grown]}")

    def update_ema(self) -> None:
        """One step of the weights' moving average (:func:`update_ema`)."""
        update_ema(self.ema, self.net, self.ema_updates, self.hparams["ema_decay"])

    def _update(self, name: str, loss: torch.Tensor, parameters: Any) -> None:
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.hparams["grad_clip"] > 0:
            nn.utils.clip_grad_norm_(parameters, self.hparams["grad_clip"])
        optimizer.step()
