"""Parity of our TF-Inception features with torch-fidelity's own module on identical weights and images."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from genmetrics.errors import ConfigError, WeightsError
from genmetrics.features.extract import extract_features
from genmetrics.features.inception import (
    InceptionExtractor,
    load_torch_fidelity_inception,
    resize_tf1,
    torch_fidelity_state_dict,
    trunk_input,
)
from genmetrics.features.inception_fused import FusedInceptionTrunk, run_on_cpu
from genmetrics.io.images import open_source
from tests.helpers import fashion_mnist_subset, random_images


@pytest.fixture(scope="module")
def torch_fidelity_net(tmp_path_factory, inception) -> FeatureExtractorInceptionV3:
    """torch-fidelity's class, built by its own constructor from default_1's tensors mapped to its names."""
    state, _ = torch_fidelity_state_dict(inception.weights)
    path = tmp_path_factory.mktemp("tfid") / "mapped.pth"
    torch.save(state, path)
    return FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))


@pytest.mark.parametrize("size", [299, 32])
def test_features_match_torch_fidelity(inception, torch_fidelity_net, size):
    images = random_images(6, size=size, seed=size)
    ours = extract_features(open_source(images), inception, batch_size=4, progress=False).features
    with torch.no_grad():
        theirs = torch_fidelity_net(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())[0].numpy()
    assert ours.shape == (6, 2048)
    assert np.abs(ours - theirs).max() <= 1e-4


def test_mapping_matches_fid_helper_torchscript(inception):
    """The name mapping is right: features equal the TorchScript original's on a 299x299 input."""
    images = random_images(2, size=299, seed=1)
    ours = inception.forward(torch.stack([inception.preprocess(image) for image in images]))["features"]
    script = torch.jit.load(str(inception.weights.path), map_location="cpu").eval()
    with torch.no_grad():
        original = script((torch.from_numpy(images).permute(0, 3, 1, 2).float() - 128) / 128)
    assert torch.allclose(ours, original, atol=1e-4)


@pytest.mark.parametrize("height, width", [(28, 28), (32, 32), (64, 48), (17, 300), (300, 17), (1, 2000),
                                           (299, 299), (512, 512)])
def test_tf1_resize_is_torch_fidelity_bit_for_bit(height, width):
    """Rows or columns gathered first, from uint8 or float32: the same bits as torch-fidelity."""
    image = torch.from_numpy(random_images(1, size=max(height, width), seed=height)[0, :height, :width])
    chw = image.permute(2, 0, 1).float()
    theirs = interpolate_bilinear_2d_like_tensorflow1x(chw[None], size=(299, 299), align_corners=False)[0]
    assert torch.equal(resize_tf1(chw, 299), theirs)
    from_uint8 = resize_tf1(image.permute(2, 0, 1), 299)
    assert from_uint8.dtype == torch.float32 and torch.equal(from_uint8, theirs)


def test_fused_trunk_general_path_matches_onednn_path(inception):
    """The F.conv2d path (GPU, bf16/fp16), here in float64, gives the fp32 oneDNN path's features."""
    net, _ = load_torch_fidelity_inception(inception.weights)
    trunk = FusedInceptionTrunk(net, torch.float64)
    images = torch.stack([inception.preprocess(image) for image in random_images(2, size=64, seed=9)])
    with torch.inference_mode():
        exact = trunk(trunk_input(images).double())
    assert torch.allclose(inception.forward(images)["features"].double(), exact, rtol=0, atol=1e-4)


def test_parallel_chunks_give_the_features_of_one_call(inception):
    """run_on_cpu's single-threaded workers (3 chunks on 2 of them) give the trunk's features for the whole batch
    in one call on both threads."""
    images = torch.stack([inception.preprocess(image) for image in random_images(9, size=32, seed=12)])
    x = trunk_input(images)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.inference_mode():
            parallel, whole = run_on_cpu(inception.trunk, x, 4), inception.trunk(x)
    finally:
        torch.set_num_threads(threads)
    assert torch.allclose(parallel, whole, rtol=0, atol=1e-6 * float(whole.abs().max()))


def test_features_do_not_depend_on_batch_size(inception):
    images = random_images(5, size=40, seed=3)
    one = extract_features(open_source(images), inception, batch_size=1, progress=False).features
    three = extract_features(open_source(images), inception, batch_size=3, progress=False).features
    assert np.abs(one - three).max() <= 1e-6


def test_logits_match_torch_fidelity_unbiased_logits(logits_weights):
    extractor = InceptionExtractor(logits_weights, trust_weights=True)
    assert extractor.has_logits
    reference = FeatureExtractorInceptionV3("x", ["logits_unbiased"], feature_extractor_weights_path=logits_weights)
    images = random_images(3, size=64, seed=4)
    ours = extract_features(open_source(images), extractor, progress=False).logits
    with torch.no_grad():
        theirs = reference(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())[0].numpy()
    assert ours.shape == (3, 1008)
    assert np.abs(ours - theirs).max() <= 1e-4


def test_clean_resize_is_pil_bicubic_on_float_channels(inception):
    clean = InceptionExtractor(resize="clean")
    image = random_images(1, size=28, seed=5)[0]
    resized = clean.preprocess(image)
    assert resized.shape == (3, 299, 299) and resized.dtype == torch.float32
    assert clean.spec.resize == "clean" and inception.spec.resize == "tf1"
    # Bicubic differs from TF1 bilinear, and both stay close to the original range.
    assert not torch.allclose(resized, inception.preprocess(image))
    assert float(resized.min()) >= 0 and float(resized.max()) <= 255


def test_bf16_keeps_the_stem_and_pool3_in_fp32(inception):
    """bf16 runs the stem on the fp32 input in fp32, the rest in bf16: on Fashion-MNIST its features are within
    1.8% relative RMS of fp32 (measured 1.1%; 2.9% with every conv in bf16, whose FID was 1.0% off)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bf16 is emulated on CPUs without it
        bf16 = InceptionExtractor(precision="bf16")
    assert stem_and_rest_dtypes(bf16.trunk) == (torch.float32, torch.bfloat16)
    images = fashion_mnist_batch(inception, 4)
    exact, fast = inception.forward(images)["features"], bf16.forward(images)["features"]
    assert fast.dtype == torch.float32
    assert float((fast - exact).norm() / exact.norm()) < 0.018


def test_fp16_keeps_the_stem_in_fp16(inception):
    """fp16's 11-bit mantissa needs no fp32 stem (simulated FID deviation 0.02% with every conv in fp16): its
    features (fp16 convs run on the CPU here, GPU-only in the extractor) are within 0.6% RMS of fp32 (measured
    0.29%)."""
    net, _ = load_torch_fidelity_inception(inception.weights)
    fp16 = FusedInceptionTrunk(net, torch.float16)
    assert stem_and_rest_dtypes(fp16) == (torch.float16, torch.float16)
    images = fashion_mnist_batch(inception, 2)
    exact = inception.forward(images)["features"]
    with torch.inference_mode():
        fast = fp16(trunk_input(images))
    assert fast.dtype == torch.float32
    assert float((fast - exact).norm() / exact.norm()) < 0.006


def fashion_mnist_batch(inception: InceptionExtractor, n: int) -> torch.Tensor:
    """The first ``n`` Fashion-MNIST test images as RGB, preprocessed: (n, 3, 299, 299)."""
    return torch.stack([inception.preprocess(np.repeat(image[:, :, None], 3, axis=2))
                        for image in fashion_mnist_subset("test")[0][:n]])


def stem_and_rest_dtypes(trunk: FusedInceptionTrunk) -> tuple[torch.dtype, torch.dtype]:
    """The one weight dtype of the five stem convs and the one of all later convs."""
    stem = [*trunk.stem, *trunk.stem_2]
    (stem_dtype,) = {conv.weight.dtype for conv in stem}
    (rest_dtype,) = {conv.weight.dtype for conv in trunk.convs[len(stem):]}
    return stem_dtype, rest_dtype


def test_fp32_convs_run_without_tf32(inception, monkeypatch):
    """cuDNN's TF32 default is off while the trunk runs (exact fp32 on GPUs) and restored afterwards."""
    trunk, seen = inception.trunk, []

    def spy(x: torch.Tensor, spatial: bool = False) -> torch.Tensor:
        seen.append(torch.backends.cudnn.allow_tf32)
        return trunk(x, spatial)

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    monkeypatch.setattr(inception, "trunk", spy)
    inception.forward(torch.stack([inception.preprocess(image) for image in random_images(1, size=32, seed=2)]))
    assert seen == [False] and torch.backends.cudnn.allow_tf32


def test_bf16_warns_on_a_cpu_without_native_bf16(monkeypatch):
    monkeypatch.setattr("genmetrics.features.inception.native_cpu_bf16", lambda: False)
    with pytest.warns(UserWarning, match="no native bf16 .* emulated"):
        InceptionExtractor(precision="bf16")


def test_unknown_resize_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown resize mode 'nearest'"):
        InceptionExtractor(resize="nearest")


def test_untrusted_weights_are_refused(logits_weights):
    with pytest.raises(WeightsError, match="matches no known TF-Inception release.*trust_weights=True"):
        InceptionExtractor(logits_weights)
