"""sFID's spatial features: guided-diffusion's ``mixed_6/conv:0`` (Mixed_6d.branch1x1 after batch norm and ReLU),
first 7 channels, flattened H, W, C; taken from the fused trunk in the pool3 pass."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from genmetrics.features.extract import extract_features
from genmetrics.features.inception import torch_fidelity_state_dict
from genmetrics.config import SPATIAL_DIM
from genmetrics.io.images import open_source
from tests.helpers import random_images


@pytest.fixture(scope="module")
def hooked_torch_fidelity(tmp_path_factory, inception) -> tuple[FeatureExtractorInceptionV3, list[torch.Tensor]]:
    """torch-fidelity's own module with default_1's weights and a forward hook on Mixed_6d.branch1x1 (the
    independent path): the hook's outputs are appended to the returned list."""
    state, _ = torch_fidelity_state_dict(inception.weights)
    path = tmp_path_factory.mktemp("tfid") / "mapped.pth"
    torch.save(state, path)
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    seen: list[torch.Tensor] = []
    net.Mixed_6d.branch1x1.register_forward_hook(lambda module, args, output: seen.append(output.detach()))
    return net, seen


def _spatial_of(inception, images: np.ndarray, batch_size: int = 4) -> tuple[np.ndarray, np.ndarray]:
    inception.spatial = True
    try:
        rows = [inception.forward(torch.stack([inception.preprocess(image) for image in images[i:i + batch_size]]))
                for i in range(0, len(images), batch_size)]
    finally:
        inception.spatial = False
    return (torch.cat([row["spatial"] for row in rows]).numpy(), torch.cat([row["features"] for row in rows]).numpy())


def test_spatial_features_equal_the_hooked_torch_fidelity_module_in_hwc_order(inception, hooked_torch_fidelity):
    net, seen = hooked_torch_fidelity
    images = random_images(5, size=64, seed=31)
    spatial, pool3 = _spatial_of(inception, images)
    seen.clear()
    with torch.no_grad():
        theirs_pool3 = net(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())[0].numpy()
    mixed_6 = seen[0]  # (N, 192, 17, 17), after batch norm and ReLU
    assert mixed_6.shape == (5, 192, 17, 17) and spatial.shape == (5, SPATIAL_DIM) == (5, 2023)
    hwc = mixed_6[:, :7].permute(0, 2, 3, 1).reshape(5, -1).numpy()
    chw = mixed_6[:, :7].reshape(5, -1).numpy()
    assert np.abs(spatial - hwc).max() <= 1e-4
    assert np.abs(spatial - chw).max() > 1e-2  # the channel-first flatten is a different vector: order matters
    assert np.abs(pool3 - theirs_pool3).max() <= 1e-4  # the same pass still gives pool3


def test_spatial_features_do_not_change_pool3_and_do_not_depend_on_the_batch(inception):
    images = random_images(6, size=40, seed=5)
    plain = torch.cat([inception.forward(torch.stack([inception.preprocess(image) for image in images]))["features"]])
    spatial_one, pool3_one = _spatial_of(inception, images, batch_size=1)
    spatial_all, pool3_all = _spatial_of(inception, images, batch_size=6)
    assert np.array_equal(pool3_all, plain.numpy())
    assert np.abs(spatial_one - spatial_all).max() <= 1e-6 and np.abs(pool3_one - pool3_all).max() <= 1e-6


def test_extraction_keeps_spatial_features_and_the_cache_serves_both_kinds(inception, tmp_path):
    """A cache entry written with spatial features serves a plain run, and a plain entry is a miss for sFID."""
    from genmetrics.features.cache import FeatureCache

    images = random_images(3, size=32, seed=8)
    cache = FeatureCache(tmp_path, inception.spec)
    plain = extract_features(open_source(images), inception, progress=False, cache=cache)
    assert plain.spatial is None
    inception.spatial = True
    try:
        with_spatial = extract_features(open_source(images), inception, progress=False, cache=cache)
    finally:
        inception.spatial = False
    assert with_spatial.spatial.shape == (3, 2023) and with_spatial.spatial_stats.n == 3
    assert np.array_equal(with_spatial.features, plain.features)
    again = extract_features(open_source(images), inception, progress=False, cache=cache)
    assert np.array_equal(again.features, plain.features) and again.spatial is None
