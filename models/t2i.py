"""Text-to-image latent diffusion: LDM (Rombach et al. 2022) on the shipped VQ-VAE's latents, conditioned on the
shipped fashion-clip text tower, with classifier-free guidance as in GLIDE (Nichol et al. 2022).

* Autoencoder (frozen): the encoder, codebook and decoder of the shipped ``vqvae`` checkpoint, copied into the
  model when it is created (and saved with it). An image (1, 28, 28) maps to its pre-quantisation latent z_e
  (16, 7, 7), scaled by ``latent_scale`` = 1 / std of the codebook's entries, the values the latents snap to
  (LDM's scale factor, which LDM takes from a first batch); a sampled latent is unscaled, snapped to its nearest
  codebook vectors and decoded (LDM's VQ-regularised decoder).
* Text (frozen): the fashion-clip text transformer (``genmetrics.ClipConfig(model="fashion-clip")``) gives each
  caption its final-norm token states (24, 128), their mask and its L2-normalised embedding (128). The pooled
  embedding is added to the time embedding; the token states are the context of cross-attention layers.
* Denoiser: eps_theta(z_t, t, caption) at 7x7: residual blocks (GroupNorm, SiLU, conv3x3, the embedding added per
  channel) with self-attention over the 49 positions and cross-attention to the caption's tokens between them.
* Training (DDPM Algorithm 1 on latents): each image gets a caption drawn from ``generator`` among the templates
  ``genmetrics.io.fashion_captions.allowed_templates`` allows for its class and measured attributes (split
  "train": held-out templates and combinations never appear), replaced by the empty caption with probability
  ``p_uncond``; EMA of the weights for sampling.
* Sampling: DDIM (eta 0, ``sampling_steps`` K) or Algorithm 2 (K = 0), with classifier-free guidance
  ``eps = (1 + w) eps(caption) - w eps("")`` (w = ``guidance``). Prompts come from ``prompts`` (one per sample);
  without them, each sample's label gives the class prompt "a photo of a {class}".
"""
from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

import genmetrics
from genmetrics.errors import ConfigError, spell
from genmetrics.io.fashion_captions import allowed_templates, attribute_words, attributes, class_prompt, fill
from genmetrics_models.base import Generator, to_uint8
from genmetrics_models.diffusion import (
    SCHEDULES,
    ResBlock,
    ancestral_update,
    cfg_eps,
    check_guidance,
    check_sampling_steps,
    ddim_times,
    ddim_update,
    q_sample,
    timestep_embedding,
    update_ema,
)
from genmetrics_models.vqvae import GRID, VQDecoder, VQEncoder, lookup, nearest_codes

TEXT_ENCODER = "fashion-clip"
NULL_CAPTION = ""


class Attention(nn.Module):
    """x (N, C, H, W) -> x + self-attention over the H*W positions + cross-attention to a caption's token states
    (N, L, D) where their mask (N, L) is true; each after a GroupNorm (self) or LayerNorm (cross)."""

    def __init__(self, channels: int, context_dim: int, heads: int = 4) -> None:
        super().__init__()
        self.norm_self = nn.GroupNorm(8, channels)
        self.self_attention = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm_cross = nn.LayerNorm(channels)
        self.cross_attention = nn.MultiheadAttention(channels, heads, kdim=context_dim, vdim=context_dim,
                                                     batch_first=True)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = self.norm_self(x).flatten(2).transpose(1, 2)  # (N, HW, C)
        seq = x.flatten(2).transpose(1, 2) + self.self_attention(q, q, q, need_weights=False)[0]
        seq = seq + self.cross_attention(self.norm_cross(seq), context, context, key_padding_mask=~mask,
                                         need_weights=False)[0]
        return seq.transpose(1, 2).reshape(n, c, h, w)


class LatentDenoiser(nn.Module):
    """eps_theta: z_t (N, Z, 7, 7), t (N,), caption token states (N, L, D), mask (N, L), pooled (N, E) -> (N, Z, 7, 7).
    Three residual blocks of ``channels`` with an attention layer after each of the first two."""

    def __init__(self, latent_channels: int, channels: int, context_dim: int, embed_dim: int) -> None:
        super().__init__()
        e = 4 * channels
        self.channels = channels
        self.time = nn.Sequential(nn.Linear(channels, e), nn.SiLU(), nn.Linear(e, e))
        self.text = nn.Linear(embed_dim, e)
        self.inp = nn.Conv2d(latent_channels, channels, 3, padding=1)
        self.blocks = nn.ModuleList([ResBlock(channels, channels, e) for _ in range(3)])
        self.attention = nn.ModuleList([Attention(channels, context_dim) for _ in range(2)])
        self.out = nn.Sequential(nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, latent_channels, 3,
                                                                                 padding=1))

    def forward(self, z: torch.Tensor, t: torch.Tensor, context: torch.Tensor, mask: torch.Tensor,
                pooled: torch.Tensor) -> torch.Tensor:
        embedding = self.time(timestep_embedding(t, self.channels)) + self.text(pooled)
        h = self.inp(z)
        for i, block in enumerate(self.blocks):
            h = block(h, embedding)
            if i < len(self.attention):
                h = self.attention[i](h, context, mask)
        return self.out(h)


@functools.cache
def _text_encoder() -> Any:
    """The shipped fashion-clip extractor (its text tower conditions the model), sha256 checked; loaded once per
    process and shared by every t2i model (it is frozen and only encodes), with real tensors even while a model is
    built on the meta device (to count its parameters)."""
    with torch.device("cpu"):
        return genmetrics.ClipConfig(model=TEXT_ENCODER).build()


@functools.cache
def _shipped_autoencoder() -> dict[str, dict[str, torch.Tensor]]:
    """The state dicts of the shipped vqvae's encoder, decoder and codebook (read once per process)."""
    from genmetrics_models.checkpoint import load_checkpoint, pretrained  # checkpoint imports the registry

    with torch.device("cpu"):
        vqvae = load_checkpoint(pretrained("vqvae"))
    return {name: getattr(vqvae, name).state_dict() for name in ("encoder", "decoder", "codebook")}


class T2I(Generator):
    """Caption-conditioned latent diffusion (see the module docstring): denoiser with Adam and its EMA; the VQ-VAE
    and the text tower frozen.

    Sampling options: ``guidance`` w >= -1 (0: the captioned model alone, -1: the empty caption alone),
    ``sampling_steps`` 0 (Algorithm 2) or 1..T (DDIM), ``prompts`` (one non-empty string per sample)."""

    name = "t2i"
    conditional = True
    datasets = ("fashion-mnist",)  # its captions describe Fashion-MNIST images
    defaults: ClassVar[dict[str, Any]] = {
        "channels": 96, "timesteps": 1000, "schedule": "linear", "p_uncond": 0.1, "batch_size": 128, "lr": 3e-4,
        "grad_clip": 1.0, "ema_decay": 0.999, "guidance": 2.0, "sampling_steps": 50, "text_encoder": TEXT_ENCODER,
    }
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"schedule": tuple(SCHEDULES), "text_encoder": (TEXT_ENCODER,)}
    nonnegative: ClassVar[tuple[str, ...]] = ("sampling_steps",)
    sample_options: ClassVar[dict[str, type]] = {"guidance": float, "sampling_steps": int, "prompts": tuple}

    def __init__(self, hparams: Mapping[str, Any] | None = None, *, num_classes: int = 10,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(hparams, num_classes=num_classes, generator=generator)
        self.ema.load_state_dict(self.net.state_dict())
        self._load_autoencoder()

    def build(self) -> None:
        from genmetrics_models.checkpoint import pretrained, read_config  # checkpoint imports the registry

        hp = self.hparams
        if not 0 <= hp["p_uncond"] <= 1 or not 0 <= hp["ema_decay"] < 1:
            raise ConfigError("hyper-parameters of model 't2i': p_uncond must lie in [0, 1] and ema_decay in [0, 1)")
        vq = read_config(pretrained("vqvae"))["hparams"]
        self.encoder, self.decoder = VQEncoder(vq["width"], vq["code_dim"]), VQDecoder(vq["width"], vq["code_dim"])
        self.codebook = nn.Embedding(vq["codes"], vq["code_dim"])
        for part in (self.encoder, self.decoder, self.codebook):
            part.requires_grad_(False)
        self.text_encoder = _text_encoder()  # not a submodule: its weights are the shipped file's, never saved here
        self.schedule = SCHEDULES[hp["schedule"]](hp["timesteps"])
        cfg = self.text_encoder.config.model_cfg
        dims = (vq["code_dim"], hp["channels"], cfg["text_cfg"]["width"], cfg["embed_dim"])
        self.net, self.ema = LatentDenoiser(*dims), LatentDenoiser(*dims).requires_grad_(False)
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("latent_scale", torch.ones(()))  # set from the codebook with the autoencoder
        self._text_cache: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.check_sample_options({})

    def _load_autoencoder(self) -> None:
        if self.codebook.weight.is_meta:  # built on the meta device to count parameters: nothing to copy
            return
        for name, state in _shipped_autoencoder().items():
            getattr(self, name).load_state_dict(state)
        self.latent_scale.fill_(1 / self.codebook.weight.std().item())

    def config(self) -> dict[str, Any]:
        """Generator.config plus the text encoder's weights sha256 (the frozen tower the model was trained with)."""
        return {**super().config(), "text_encoder_sha256": self.text_encoder.spec.weights_sha256}

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"denoiser": torch.optim.Adam(self.net.parameters(), self.hparams["lr"])}

    def check_sample_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """guidance and sampling_steps (given or the hyper-parameters) and prompts (None or a tuple of strings)."""
        given = {key: value for key, value in options.items() if value is not None}
        prompts = given.pop("prompts", None)
        if prompts is not None and (isinstance(prompts, str) or not all(
                isinstance(p, str) and p.strip() for p in prompts)):
            raise ConfigError(f"{spell('prompts', '...')} must be a list of non-empty strings, one per sample")
        resolved = {**{key: self.hparams[key] for key in ("guidance", "sampling_steps")},
                    **super().check_sample_options(given)}
        check_guidance(resolved["guidance"])
        check_sampling_steps(resolved["sampling_steps"], self.hparams["timesteps"])
        return {**resolved, "prompts": None if prompts is None else tuple(prompts)}

    def encode_captions(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Captions -> token states (N, L, D), mask (N, L), pooled (N, E) on the model's device (cached per text)."""
        missing = sorted({c for c in captions if c not in self._text_cache})
        if missing:
            states, mask, pooled = self.text_encoder.encode_text_tokens(missing)
            for i, caption in enumerate(missing):
                self._text_cache[caption] = (states[i].cpu(), mask[i].cpu(), pooled[i].cpu())
        parts = zip(*(self._text_cache[c] for c in captions))
        return tuple(torch.stack(part).to(self.device) for part in parts)  # type: ignore[return-value]

    def training_captions(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> list[str]:
        """A caption for each (N, 1, 28, 28) image in [-1, 1]: a template drawn from ``generator`` among those allowed
        for its class and measured attributes, or (with probability p_uncond) the empty caption."""
        pixels, classes = to_uint8(images).cpu().numpy(), labels.cpu().numpy()
        found = attributes(pixels, classes)
        draws = torch.randint(0, 2 ** 31, (len(classes),), generator=generator).tolist()
        dropped = (torch.rand(len(classes), generator=generator) < self.hparams["p_uncond"]).tolist()
        out = []
        for i, label in enumerate(classes.tolist()):
            words = attribute_words(found, i)
            templates = allowed_templates(label, words, "train")
            out.append(NULL_CAPTION if dropped[i] else fill(templates[draws[i] % len(templates)], label, words))
        return out

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) in [-1, 1] -> scaled latents (N, Z, 7, 7)."""
        return self.encoder(images) * self.latent_scale

    @torch.no_grad()
    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents (N, Z, 7, 7) -> images (N, 1, 28, 28) in [-1, 1]: unscaled, quantised, decoded."""
        return self.decoder(lookup(nearest_codes(z / self.latent_scale, self.codebook.weight), self.codebook.weight))

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        """Algorithm 1 on the batch's latents with drawn captions (captions, then t, then eps from ``generator``)."""
        context = self.encode_captions(self.training_captions(images, labels, generator))
        z0 = self.encode_images(images)
        t = torch.randint(1, self.schedule.T + 1, (len(z0),), generator=generator)
        eps = torch.randn(z0.shape, generator=generator).to(z0.device)
        loss = (self.net(q_sample(z0, t, eps, self.schedule), t.to(z0.device), *context) - eps).square().mean()
        optimizer = self.optimizers["denoiser"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.hparams["grad_clip"] > 0:
            nn.utils.clip_grad_norm_(self.net.parameters(), self.hparams["grad_clip"])
        optimizer.step()
        update_ema(self.ema, self.net, self.ema_updates, self.hparams["ema_decay"])
        return {"loss": loss.item()}

    def predict_eps(self, z: torch.Tensor, t: int, context: tuple[torch.Tensor, ...],
                    null: tuple[torch.Tensor, ...], guidance: float) -> torch.Tensor:
        """The EMA's eps at z (N, Z, 7, 7), time t, with guidance weight w against the empty caption ``null``."""
        times = torch.full((len(z),), t, dtype=torch.long, device=z.device)
        if guidance == 0 or guidance == -1:
            return self.ema(z, times, *(context if guidance == 0 else null))
        both = [torch.cat([c, u]) for c, u in zip(context, null)]
        eps_c, eps_u = self.ema(torch.cat([z, z]), torch.cat([times, times]), *both).chunk(2)
        return cfg_eps(eps_c, eps_u, guidance)

    def generate(self, n: int, generator: torch.Generator, labels: torch.Tensor | None, *, guidance: float,
                 sampling_steps: int, prompts: tuple[str, ...] | None = None) -> torch.Tensor:
        """z_T from ``generator``, DDIM (or Algorithm 2 for sampling_steps 0) on latents, decoded -> (n, 1, 28, 28)."""
        if prompts is not None and len(prompts) != n:
            raise ConfigError(f"{len(prompts)} prompts for {n} samples; give one prompt per sample")
        texts = list(prompts) if prompts is not None else [class_prompt(int(label)) for label in labels.tolist()]
        context, null = self.encode_captions(texts), self.encode_captions([NULL_CAPTION] * n)
        z = torch.randn((n, self.codebook.embedding_dim, GRID, GRID), generator=generator).to(self.device)
        if sampling_steps == 0:
            for t in range(self.schedule.T, 0, -1):
                noise = torch.randn(z.shape, generator=generator).to(z.device) if t > 1 else None
                z = ancestral_update(z, t, self.predict_eps(z, t, context, null, guidance), self.schedule, noise)
        else:
            times = ddim_times(self.schedule.T, sampling_steps)
            for t, t_next in zip(times, [*times[1:], 0]):
                z = ddim_update(z, t, t_next, self.predict_eps(z, t, context, null, guidance), self.schedule,
                                clip=False)
        return self.decode_latents(z)

