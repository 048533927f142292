"""fashion-clip: the shipped domain CLIP (config in the package, safetensors weights with a checked sha256)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import genmetrics
import genmetrics.features.clip as clip_module
from genmetrics.errors import WeightsError
from genmetrics.features.clip import FASHION_CLIP_SHA256, FASHION_CLIP_WEIGHTS, ClipExtractor
from genmetrics.features.weights import sha256_file
from genmetrics.io import fashion_captions as fc
from genmetrics.metrics.fid import fid_from_features
from tests.helpers import fashion_mnist_subset

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fashion_clip() -> ClipExtractor:
    return genmetrics.ClipConfig(model="fashion-clip").build()


@pytest.fixture(scope="module")
def test_subset() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images, labels = fashion_mnist_subset("test")
    images, labels = np.array(images[:1000]), labels[:1000].astype(np.int64)
    return images, labels, np.repeat(images[..., None], 3, axis=3)


def _embed(clip: ClipExtractor, rgb: np.ndarray) -> np.ndarray:
    return clip.forward(torch.stack([clip.preprocess(image) for image in rgb]))["features"].numpy()


def test_needs_no_weights_and_records_the_shipped_file(fashion_clip):
    assert sha256_file(FASHION_CLIP_WEIGHTS) == FASHION_CLIP_SHA256 and fashion_clip.weights.verified
    spec = fashion_clip.spec
    assert (spec.name, spec.dim, spec.image_size, spec.weights_sha256) == ("clip-fashion-clip", 128, 28,
                                                                           FASHION_CLIP_SHA256)
    assert fashion_clip.context_length == 24 and fashion_clip.provenance()["model"] == "fashion-clip"


def test_a_changed_weights_file_is_refused(monkeypatch):
    monkeypatch.setattr(clip_module, "FASHION_CLIP_SHA256", "0" * 64)
    with pytest.raises(WeightsError, match=r"fashion-clip weights .* have sha256 [0-9a-f]{64}, expected 0{64}; "
                                           "reinstall genmetrics"):
        genmetrics.ClipConfig(model="fashion-clip").build()


def test_preprocessing_equals_the_training_normalisation(fashion_clip, test_subset):
    sys.path.insert(0, str(REPO / "data_stats"))
    try:
        from train_fashion_clip import normalised
    finally:
        sys.path.remove(str(REPO / "data_stats"))
    images, _, rgb = test_subset
    config = json.loads(clip_module.FASHION_CLIP_CONFIG.read_text())["preprocess_cfg"]
    ours = torch.stack([fashion_clip.preprocess(image) for image in rgb[:16]])
    assert torch.allclose(ours, normalised(images[:16], config["mean"][0], config["std"][0]), atol=1e-6)


def test_token_states_pool_to_the_text_embeddings(fashion_clip):
    captions = ["a photo of an ankle boot", "a small, plain bag", ""]
    states, mask, pooled = fashion_clip.encode_text_tokens(captions)
    assert states.shape == (3, 24, 128) and mask.shape == (3, 24)
    assert mask.sum(1).tolist() == [len(fashion_clip.tokenizer.encode(c)) + 2 for c in captions]
    assert np.allclose(pooled.numpy(), fashion_clip.encode_text(captions), atol=1e-6)


def test_zero_shot_class_accuracy_on_the_test_subset(fashion_clip, test_subset):
    _, labels, rgb = test_subset
    text = fashion_clip.encode_text([fc.class_prompt(c) for c in range(10)])
    accuracy = ((_embed(fashion_clip, rgb) @ text.T).argmax(1) == labels).mean()
    assert accuracy >= 0.85


def test_clipscore_separates_matched_from_shuffled_captions(test_subset):
    images, labels, _ = test_subset
    captions = fc.captions(images, labels, "test")
    shuffled = [captions[i] for i in np.random.default_rng(0).permutation(len(captions))]
    matched, other = (genmetrics.clip_score(images, texts, clip_model="fashion-clip", progress=False, cache=False)
                      for texts in (captions, shuffled))
    assert matched.metrics["clip_score_mean"] > other.metrics["clip_score_mean"] + 0.3
    assert matched.provenance.extractor.name == "clip-fashion-clip"


def test_clip_space_metrics_and_compare_with_fashion_clip(test_subset, fashion_clip):
    images, _, rgb = test_subset
    real, other = images[:300], images[300:600]
    blurred = np.clip(other.astype(np.int16) // 64 * 64 + 32, 0, 255).astype(np.uint8)  # posterised: a worse set
    result = genmetrics.score(other, real, "fid,cmmd", extractor="clip", clip_model="fashion-clip", progress=False,
                              cache=False)
    feats = [_embed(fashion_clip, np.repeat(x[..., None], 3, axis=3)) for x in (other, real)]
    assert result.metrics["fid"] == pytest.approx(fid_from_features(*(f.astype(np.float64) for f in feats)), rel=1e-4)
    assert result.provenance.extractor.name == "clip-fashion-clip"
    worse = genmetrics.score(blurred, real, "fid,cmmd", extractor="clip", clip_model="fashion-clip", progress=False,
                             cache=False)
    assert worse.metrics["fid"] > result.metrics["fid"] and worse.metrics["cmmd"] > result.metrics["cmmd"]
    comparison = genmetrics.compare(other, blurred, real, "fid", extractor="clip", clip_model="fashion-clip",
                                    bootstrap_replicates=20, progress=False, cache=False)
    row = comparison.rows[0]
    assert row.metric == "fid" and row.baseline == pytest.approx(result.metrics["fid"], rel=1e-6)
    assert row.candidate == pytest.approx(worse.metrics["fid"], rel=1e-6)
