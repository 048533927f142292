"""The open_clip extractor: offline loading through --clip-weights, open_clip parity, refusals."""
from __future__ import annotations

import json
import socket
import time

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import genmetrics
from genmetrics.errors import ConfigError, StatsError, WeightsError
from genmetrics.features.clip import CLIP_WEIGHTS_ENV, ClipExtractor
from genmetrics.features.extract import extract_features
from genmetrics.features.weights import sha256_file
from genmetrics.io.images import open_source
from tests.clip_model import TINY_CLIP_CONFIG, open_clip_reference, save_tiny_clip
from tests.helpers import random_images

LONG_CAPTION = " ".join(f"word{i % 37}" for i in range(500))


@pytest.fixture(scope="module")
def clip(tiny_clip) -> ClipExtractor:
    return ClipExtractor(*tiny_clip)


def test_spec_records_architecture_weights_sha_and_preprocessing(clip, tiny_clip):
    spec = clip.spec
    assert spec.name.startswith("clip-tiny-clip-") and spec.dim == 16 and spec.image_size == 32
    assert spec.weights_sha256 == sha256_file(tiny_clip[1]) and spec.resize == "clip-preprocess"
    assert not clip.has_logits and clip.context_length == 16


def test_image_features_are_open_clips_normalised_embeddings(clip, tiny_clip, monkeypatch):
    model, preprocess, _ = open_clip_reference(*tiny_clip, monkeypatch)
    images = random_images(5, size=48, seed=3)  # resized and centre-cropped to 32 by the model's transform
    ours = extract_features(open_source(images), clip, batch_size=2, progress=False).features
    with torch.no_grad():
        theirs = model.encode_image(torch.stack([preprocess(Image.fromarray(x)) for x in images]))
    assert np.allclose(ours, torch.nn.functional.normalize(theirs, dim=-1).numpy(), atol=1e-6)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)


def test_results_do_not_depend_on_batch_size_or_workers(clip):
    images = random_images(7, size=32, seed=4)
    one = extract_features(open_source(images), clip, batch_size=1, progress=False).features
    many = extract_features(open_source(images), clip, batch_size=7, workers=1, progress=False).features
    assert np.allclose(one, many, atol=1e-6)
    captions = [f"caption number {i}" for i in range(5)]
    assert np.allclose(clip.encode_text(captions, batch_size=1), clip.encode_text(captions, batch_size=4), atol=1e-6)


def test_long_captions_are_truncated_and_unicode_works(clip):
    assert clip.is_truncated(LONG_CAPTION) and not clip.is_truncated("a short caption")
    embeds = clip.encode_text([LONG_CAPTION, "日本語 ünïcödé 🐱"])
    assert embeds.shape == (2, 16) and np.isfinite(embeds).all()
    # truncation keeps the start: only the first context_length - 2 tokens count
    assert np.allclose(embeds[0], clip.encode_text([LONG_CAPTION + " more words"])[0], atol=1e-6)


def test_weights_from_the_environment(tiny_clip, monkeypatch):
    monkeypatch.setenv(CLIP_WEIGHTS_ENV, tiny_clip[1])
    assert ClipExtractor(tiny_clip[0]).weights_path == tiny_clip[1]
    monkeypatch.delenv(CLIP_WEIGHTS_ENV)
    with pytest.raises(WeightsError, match=r"no CLIP weights given: pass clip_weights=PATH .*GENMETRICS_CLIP"):
        ClipExtractor(tiny_clip[0])


@pytest.mark.parametrize("tag", ["openai", "laion2b_s34b_b79k", "hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K"])
def test_a_pretrained_tag_fails_at_once_without_asking_open_clip(tag, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("open_clip's download machinery or the network was used")

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", refuse)
    monkeypatch.setattr(open_clip, "create_model", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    start = time.monotonic()
    with pytest.raises(WeightsError, match=f"{tag}.*never downloads.*clip_weights=PATH"):
        ClipExtractor("ViT-B-32", tag)
    assert time.monotonic() - start < 5


def test_missing_and_foreign_weight_files(tmp_path, tiny_clip):
    with pytest.raises(WeightsError, match=r"nope\.pt.*\(from clip_weights=\.\.\.\) do not exist"):
        ClipExtractor(tiny_clip[0], str(tmp_path / "nope.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match=r"cannot load CLIP weights .*junk\.pt"):
        ClipExtractor(tiny_clip[0], str(junk))
    other = {**TINY_CLIP_CONFIG, "embed_dim": 8}
    other_config, _ = save_tiny_clip(tmp_path, config=other, name="other")
    with pytest.raises(WeightsError, match=r"into clip_model='.*other\.json'.*size mismatch"):
        ClipExtractor(str(other_config), tiny_clip[1])


def test_wrapped_prefixed_and_safetensors_checkpoints_load_the_same(tmp_path, tiny_clip, clip):
    state = torch.load(tiny_clip[1], weights_only=True)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, wrapped)
    safetensors = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(safetensors))
    images = random_images(3, seed=5)
    expected = extract_features(open_source(images), clip, progress=False).features
    for path in (wrapped, safetensors):
        other = ClipExtractor(tiny_clip[0], str(path))
        assert other.spec.weights_sha256 == sha256_file(path) != clip.spec.weights_sha256
        assert np.allclose(extract_features(open_source(images), other, progress=False).features, expected, atol=1e-6)


def test_model_names_and_configs_that_cannot_work_offline(tmp_path, tiny_clip):
    with pytest.raises(ConfigError, match="'ViT-X-99' is neither an open_clip architecture nor a JSON"):
        ClipExtractor("ViT-X-99", tiny_clip[1])
    with pytest.raises(ConfigError, match="Hugging Face text model/tokenizer"):
        ClipExtractor("ViT-B-16-SigLIP", tiny_clip[1])
    with pytest.raises(ConfigError, match="hub/folder schemas are not used"):
        ClipExtractor("hf-hub:timm/ViT-B-16-SigLIP", tiny_clip[1])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"embed_dim": 4, "vision_cfg": {"image_size": 32}}))
    with pytest.raises(ConfigError, match="lacks text_cfg"):
        ClipExtractor(str(bad), tiny_clip[1])


def test_open_clip_config_json_with_its_own_preprocessing(tmp_path, tiny_clip, clip):
    config = tmp_path / "open_clip_config.json"
    preprocess = {"mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear"}
    config.write_text(json.dumps({"model_cfg": TINY_CLIP_CONFIG, "preprocess_cfg": preprocess}))
    other = ClipExtractor(str(config), tiny_clip[1])
    assert other.spec.resize.startswith("clip-preprocess-") and other.preprocess_cfg["mean"] == [0.5] * 3
    image = random_images(1, size=40, seed=6)[0]
    assert not torch.allclose(other.preprocess(image), clip.preprocess(image))


def test_stats_of_another_clip_model_are_refused(tmp_path, tiny_clip):
    images = random_images(6, seed=7)
    stats = tmp_path / "ref.npz"
    genmetrics.compute_stats(images, stats, extractor="clip", clip_model=tiny_clip[0], clip_weights=tiny_clip[1],
                             progress=False)
    same = genmetrics.score(images, str(stats), "fid", extractor="clip", clip_model=tiny_clip[0],
                            clip_weights=tiny_clip[1], progress=False)
    assert abs(same.metrics["fid"]) < 1e-6
    config, weights = save_tiny_clip(tmp_path / "b", seed=1)  # same architecture, other weights
    with pytest.raises(StatsError, match="weights_sha256"):
        genmetrics.score(images, str(stats), "fid", extractor="clip", clip_model=str(config), clip_weights=str(weights),
                         progress=False)
    config, weights = save_tiny_clip(tmp_path / "c", config={**TINY_CLIP_CONFIG, "embed_dim": 8})
    with pytest.raises(StatsError, match="another extractor setup.*name 'clip-tiny-clip-.*dim 16 vs 8"):
        genmetrics.score(images, str(stats), "fid", extractor="clip", clip_model=str(config), clip_weights=str(weights),
                         progress=False)
