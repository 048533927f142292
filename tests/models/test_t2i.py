"""t2i: caption-conditioned latent diffusion on the shipped VQ-VAE latents with the fashion-clip text tower."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import genmetrics
from genmetrics.errors import ConfigError
from genmetrics.io import fashion_captions as fc
from genmetrics_models.base import to_float
from genmetrics_models.checkpoint import load_checkpoint, pretrained
from genmetrics_models.data import Dataset
from genmetrics_models.diffusion import cfg_eps
from genmetrics_models.registry import build_model
from genmetrics_models.t2i import NULL_CAPTION
from genmetrics_models.train import TrainOptions, draw, train
from tests.helpers import fashion_mnist_subset
from tests.models.conftest import TINY, assert_uint8_images, seeded


@pytest.fixture(scope="module")
def fashion_batch() -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = fashion_mnist_subset("train")
    return to_float(torch.from_numpy(np.array(images[:32, :, :, None]))), torch.from_numpy(labels[:32].astype(np.int64))


@pytest.fixture(scope="module")
def tiny_t2i():
    return build_model("t2i", TINY["t2i"], generator=seeded(0))


def test_training_captions_are_allowed_train_captions_drawn_from_the_generator(tiny_t2i, fashion_batch):
    images, labels = fashion_batch
    captions = tiny_t2i.training_captions(images, labels, seeded(5))
    assert captions == tiny_t2i.training_captions(images, labels, seeded(5))
    assert captions != tiny_t2i.training_captions(images, labels, seeded(6))
    pixels = np.array(fashion_mnist_subset("train")[0][:32])
    found = fc.attributes(pixels, labels.numpy())
    for i, caption in enumerate(captions):
        words = fc.attribute_words(found, i)
        allowed = {fc.fill(t, int(labels[i]), words) for t in fc.allowed_templates(int(labels[i]), words, "train")}
        assert caption in allowed | {NULL_CAPTION}
    dropped = build_model("t2i", {**TINY["t2i"], "p_uncond": 1.0})
    assert set(dropped.training_captions(images, labels, seeded(5))) == {NULL_CAPTION}


def test_latents_decode_to_the_vqvae_reconstruction(fashion_batch):
    model = build_model("t2i", TINY["t2i"])
    images, _ = fashion_batch
    z = model.encode_images(images)
    vqvae = load_checkpoint(pretrained("vqvae"))
    assert z.shape == (32, 16, 7, 7)
    assert model.latent_scale.item() == pytest.approx(1 / vqvae.codebook.weight.std().item(), rel=1e-6)
    assert 0.7 < z.std().item() < 1.3  # about unit variance, LDM's aim
    assert torch.allclose(model.decode_latents(z), vqvae.reconstruct(images), atol=1e-5)


def test_guidance_combines_the_captioned_and_empty_caption_eps(tiny_t2i):
    z = torch.randn(3, 16, 7, 7, generator=seeded(1))
    context = tiny_t2i.encode_captions(["a photo of a dress", "a dark bag", "a small, plain sneaker"])
    null = tiny_t2i.encode_captions([NULL_CAPTION] * 3)
    eps_c, eps_u = (tiny_t2i.predict_eps(z, 5, context, null, w) for w in (0.0, -1.0))
    assert not torch.allclose(eps_c, eps_u, atol=1e-4)  # the caption reaches the denoiser
    assert torch.allclose(tiny_t2i.predict_eps(z, 5, null, null, 0.0), eps_u)
    for w in (0.5, 3.0):
        assert torch.allclose(tiny_t2i.predict_eps(z, 5, context, null, w), cfg_eps(eps_c, eps_u, w), atol=1e-5)


def test_labels_mean_class_prompts_and_prompts_are_checked(tiny_t2i):
    labels = [0, 3, 8, 9]
    prompts = tuple(fc.class_prompt(label) for label in labels)
    by_label = tiny_t2i.sample(4, seeded(2), labels)
    assert_uint8_images(by_label, 4)
    assert torch.equal(by_label, tiny_t2i.sample(4, seeded(2), labels, prompts=prompts))
    with pytest.raises(ConfigError, match="3 prompts for 4 samples"):
        tiny_t2i.sample(4, seeded(2), prompts=prompts[:3])
    with pytest.raises(ConfigError, match="list of non-empty strings"):
        tiny_t2i.sample(2, prompts=("a bag", " "))
    with pytest.raises(ConfigError, match="list of non-empty strings"):
        tiny_t2i.sample(2, prompts="a bag")
    with pytest.raises(ConfigError, match="has no sampling option prompts"):
        build_model("ddpm", TINY["ddpm"]).sample(2, prompts=("a bag", "a dress"))


def test_training_a_few_steps_writes_a_checkpoint_that_samples_its_prompts(tmp_path, monkeypatch):
    images, labels = fashion_mnist_subset("train")
    subset = Dataset("fashion-mnist", np.array(images[:64, :, :, None]), labels[:64].astype(np.int64),
                     fc.CLASS_NAMES)
    monkeypatch.setattr("genmetrics_models.train.load_dataset", lambda name: subset)
    train("t2i", tmp_path / "run", TrainOptions(steps=3, eval_samples=0, progress=False), hparams=TINY["t2i"])
    model = load_checkpoint(tmp_path / "run")
    drawn, _ = draw(model, "fashion-mnist", 5, seed=1, prompts=["a photo of a dress", "a dark bag"])
    assert_uint8_images(drawn, 5)
    again, _ = draw(model, "fashion-mnist", 5, seed=1, prompts=["a photo of a dress", "a dark bag"])
    assert np.array_equal(drawn, again)
    with pytest.raises(ConfigError, match="trains on fashion-mnist only"):
        train("t2i", tmp_path / "digits", TrainOptions(steps=1, eval_samples=0, progress=False), dataset="digits",
              hparams=TINY["t2i"])



@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(pretrained("t2i"))


def test_the_shipped_checkpoint_follows_tone_prompts(shipped):
    labels = np.arange(40) % 10
    found = {}
    for tone in ("dark", "light"):
        prompts = tuple(fc.fill("a photo of a {tone} {cls}", int(label), {"tone": tone}) for label in labels)
        images = shipped.sample(40, seeded(0), prompts=prompts, sampling_steps=25).numpy()
        found[tone] = np.bincount(fc.attributes(images, labels)["tone"], minlength=3) / 40
    assert found["dark"][0] >= 0.75 and found["light"][2] >= 0.8  # measured: 92.5% dark, 97.5% light
    assert found["dark"][2] <= 0.1 and found["light"][0] <= 0.1


def test_clipscore_of_shipped_samples_separates_their_prompts_from_shuffled_ones(shipped, tmp_path):
    suite = fc.prompt_suite()[::3]  # 30 prompts of every category
    images, _ = draw(shipped, "fashion-mnist", len(suite), seed=0, prompts=[p.text for p in suite],
                     sampling_steps=25)
    texts = [p.text for p in suite]
    shuffled = [texts[i] for i in np.random.default_rng(0).permutation(len(texts))]
    matched, other = (genmetrics.clip_score(images, t, clip_model="fashion-clip", progress=False, cache=False)
                      .metrics["clip_score_mean"] for t in (texts, shuffled))
    assert matched > other + 0.5  # measured: 1.374 vs 0.498
