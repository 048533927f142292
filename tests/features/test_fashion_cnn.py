"""The shipped Fashion-MNIST classifier (``--extractor fashion-cnn``): weights, accuracy, IS, CLI, refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

import genmetrics
from genmetrics_cli.main import cli
from genmetrics.errors import ConfigError, StatsError, WeightsError
from genmetrics.features.cache import spec_digest
from genmetrics.features.extract import FeatureSet, extract_features
from genmetrics.features.fashion_cnn import (
    FASHION_CNN_NAME,
    FEATURE_DIM,
    RESIZE,
    WEIGHTS_PATH,
    WEIGHTS_SHA256,
    FashionCNNExtractor,
    to_gray28,
)
from genmetrics.features.registry import build_extractor
from genmetrics.features.weights import sha256_file
from genmetrics.io.images import open_source
from genmetrics.metrics.inception_score import inception_score
from tests.helpers import fashion_mnist_subset, random_images, write_folder


@pytest.fixture(scope="module")
def fashion_cnn() -> FashionCNNExtractor:
    return FashionCNNExtractor()


@pytest.fixture(scope="module")
def test_images() -> np.ndarray:
    """The first 2,000 Fashion-MNIST test images, (N, 28, 28) uint8."""
    return fashion_mnist_subset("test")[0]


@pytest.fixture(scope="module")
def test_feats(fashion_cnn, test_images) -> FeatureSet:
    """Features and logits of all test images, through the extraction engine (decode to RGB, preprocess)."""
    return extract_features(open_source(test_images), fashion_cnn, batch_size=500, progress=False)


def test_shipped_weights_match_their_sha256_and_are_small():
    assert sha256_file(WEIGHTS_PATH) == WEIGHTS_SHA256
    assert WEIGHTS_PATH.stat().st_size < 500_000


def test_spec_names_the_extractor_and_differs_from_inceptions(fashion_cnn, inception):
    spec = fashion_cnn.spec
    assert (spec.name, spec.weights_sha256, spec.resize, spec.image_size, spec.dim, spec.precision) == \
        (FASHION_CNN_NAME, WEIGHTS_SHA256, RESIZE, 28, FEATURE_DIM, "float64")
    assert fashion_cnn.has_logits and fashion_cnn.weights_path == str(WEIGHTS_PATH)
    assert spec_digest(spec) != spec_digest(inception.spec)  # separate feature-cache folders
    assert isinstance(build_extractor("fashion-cnn"), FashionCNNExtractor)
    for option, value in (("resize", "clean"), ("precision", "bf16"), ("inception_weights", "/nonexistent")):
        with pytest.raises(ConfigError, match=f"^{option}=... does not apply to extractor=fashion-cnn: drop it"):
            build_extractor("fashion-cnn", **{option: value})


def test_test_set_accuracy_is_at_least_90_percent(test_feats):
    labels = fashion_mnist_subset("test")[1]
    assert test_feats.logits.shape == (2000, 10) and test_feats.features.shape == (2000, FEATURE_DIM)
    accuracy = float((test_feats.logits.argmax(1) == labels).mean())
    assert accuracy >= 0.90, accuracy


def test_inception_score_of_the_real_test_set(test_feats, test_images):
    is_mean, is_std = inception_score(test_feats.logits)
    assert 7.0 < is_mean < 10.0 and 0 <= is_std < 0.5  # 10 balanced classes, confidently classified
    result = genmetrics.score(test_images[:1000], metrics="is", extractor="fashion-cnn", progress=False, cache=False)
    expected = inception_score(test_feats.logits[:1000])
    assert result.metrics["is_mean"] == pytest.approx(expected[0], rel=1e-6)
    assert result.metrics["is_std"] == pytest.approx(expected[1], rel=1e-5, abs=1e-9)
    assert result.provenance["extractor"]["name"] == FASHION_CNN_NAME


def test_outputs_do_not_depend_on_batch_size(fashion_cnn, test_images, tmp_path):
    write_folder(tmp_path / "real", test_images[:40])  # 28x28 grayscale PNGs
    write_folder(tmp_path / "other", random_images(30, size=40, seed=3))  # 40x40 colour, resized
    images = open_source(tmp_path)
    runs = [extract_features(images, fashion_cnn, batch_size=size, progress=False) for size in (1, 7, 64)]
    for run in runs[1:]:
        np.testing.assert_allclose(run.features, runs[0].features, rtol=0, atol=1e-6)
        np.testing.assert_allclose(run.logits, runs[0].logits, rtol=0, atol=1e-6)


def test_preprocessing_luma_and_resize():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    for same in (gray, gray[:, :, None], np.repeat(gray[:, :, None], 3, axis=2)):
        np.testing.assert_array_equal(to_gray28(same), gray.astype(np.float32))  # untouched: exact
    colour = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
    luma = colour.astype(np.float64) @ [0.299, 0.587, 0.114]
    np.testing.assert_allclose(to_gray28(colour), luma, atol=1e-4)
    rgba = np.concatenate([colour, rng.integers(0, 256, (28, 28, 1), dtype=np.uint8)], axis=2)
    np.testing.assert_array_equal(to_gray28(rgba), to_gray28(colour))
    for shape in ((112, 112, 3), (20, 50, 3)):  # shrunk (antialiased) or enlarged, aspect ratio not kept
        resized = to_gray28(rng.integers(0, 256, shape, dtype=np.uint8))
        assert resized.shape == (28, 28) and resized.dtype == np.float32
        assert 0 <= resized.min() and resized.max() <= 255
    np.testing.assert_allclose(to_gray28(np.full((112, 90, 3), 77, np.uint8)), 77, atol=1e-3)


def test_cli_score_is_and_fid_from_folders(tmp_path, test_images):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    write_folder(gen, test_images[:40])
    write_folder(ref, test_images[40:80])
    result = CliRunner().invoke(cli, ["score", str(gen), str(ref), "--extractor", "fashion-cnn", "--metrics",
                                      "is,fid", "--json", "--no-progress", "--batch-size", "16"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out["metrics"]) == {"is_mean", "is_std", "fid"}
    assert out["metrics"]["is_mean"] > 1 and out["metrics"]["fid"] > 0
    extractor = out["provenance"]["extractor"]
    assert extractor["name"] == FASHION_CNN_NAME and extractor["weights_sha256"] == WEIGHTS_SHA256
    assert extractor["resize"] == RESIZE and extractor["dim"] == FEATURE_DIM
    assert out["provenance"]["weights_file"] == str(WEIGHTS_PATH)


def test_cli_stats_with_features_then_score_against_them(tmp_path, test_images):
    src, ref = tmp_path / "images.npy", tmp_path / "ref.npz"
    np.save(src, test_images[:300])
    result = CliRunner().invoke(cli, ["stats", str(src), "-o", str(ref),
                                      "--extractor", "fashion-cnn", "--features", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "dim=128" in result.stdout and f"resize={RESIZE}" in result.stdout
    scored = genmetrics.score(test_images[300:500], str(ref), "fid,kid,pr,is", extractor="fashion-cnn",
                              progress=False)
    assert scored.metrics["fid"] > 0 and 0 < scored.metrics["precision"] <= 1
    assert scored.provenance["reference"]["stats_file"] == str(ref)


def test_unknown_extractor_is_refused_naming_the_registered_ones(tmp_path):
    result = CliRunner().invoke(cli, ["stats", str(tmp_path), "-o", str(tmp_path / "out.npz"), "--extractor",
                                      "fashion"])
    assert result.exit_code == 2
    assert "unknown extractor 'fashion'; choose one of inception, clip, fashion-cnn" in result.output


def test_bad_weights_files_are_weights_errors(tmp_path):
    changed = tmp_path / "changed.safetensors"
    data = bytearray(WEIGHTS_PATH.read_bytes())
    data[-1] ^= 1  # a bit of the last tensor
    changed.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"sha256 [0-9a-f]{64}, expected .*trust_weights=True"):
        FashionCNNExtractor(changed)
    trusted = FashionCNNExtractor(changed, trust_weights=True)
    assert trusted.spec.weights_sha256 == sha256_file(changed) != WEIGHTS_SHA256
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="not a safetensors file of this network"):
        FashionCNNExtractor(garbage, trust_weights=True)
    other = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, other)
    with pytest.raises(WeightsError, match="not a safetensors file of this network"):
        FashionCNNExtractor(other, trust_weights=True)
    with pytest.raises(WeightsError, match="cannot be read"):
        FashionCNNExtractor(tmp_path / "missing.safetensors")


def test_shipped_weights_file_edited_in_place_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / WEIGHTS_PATH.name
    data = bytearray(WEIGHTS_PATH.read_bytes())
    data[-1] ^= 1
    copy.write_bytes(bytes(data))
    monkeypatch.setattr("genmetrics.features.fashion_cnn.WEIGHTS_PATH", copy)
    with pytest.raises(WeightsError, match="trust_weights=True"):
        genmetrics.score(random_images(20), metrics="is", extractor="fashion-cnn", progress=False)
    result = genmetrics.score(random_images(20), metrics="is", extractor="fashion-cnn", trust_weights=True,
                              progress=False, cache=False)
    assert result.provenance["extractor"]["weights_sha256"] == sha256_file(copy)


def test_inception_reference_stats_are_refused(tmp_path, test_images):
    ref = tmp_path / "inception.npz"
    genmetrics.compute_stats(test_images[:3], ref, extractor="inception", progress=False)
    with pytest.raises(StatsError, match=r"name 'inception-v3-tf' vs 'fashion-cnn'"):
        genmetrics.score(test_images[:20], str(ref), "fid", extractor="fashion-cnn", progress=False)
