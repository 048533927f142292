"""``genmetrics.Evaluator``: streaming evaluation equals ``genmetrics.score`` whatever the update batches."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import genmetrics
from genmetrics.errors import ConfigError, InputError
from tests.helpers import fashion_mnist_subset

METRICS = "is,fid,kid,pr,dc"
KWARGS = {"extractor": "fashion-cnn", "kid_subsets": 10, "kid_subset_size": 50, "seed": 3}


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    """(generated, reference): 120 and 200 distinct Fashion-MNIST test images, (N, 28, 28, 1) uint8."""
    test = fashion_mnist_subset("test")[0][..., None]
    return test[:120], test[1000:1200]


@pytest.fixture(scope="module")
def expected(images) -> genmetrics.Result:
    gen, ref = images
    return genmetrics.score(gen, ref, METRICS, progress=False, cache=False, **KWARGS)


@pytest.mark.parametrize("sizes", [[120], [1] * 7 + [113], [7] * 17 + [1], [64, 56]])
def test_updates_in_any_batches_equal_score(images, expected, sizes):
    gen, ref = images
    evaluator = genmetrics.Evaluator(ref, METRICS, **KWARGS)
    for chunk in np.split(gen, np.cumsum(sizes)[:-1]):
        evaluator.update(torch.tensor(chunk) if len(chunk) == 1 else chunk)
    result = evaluator.compute()
    assert evaluator.n == 120
    assert result.metrics.keys() == expected.metrics.keys()
    for key, value in expected.metrics.items():
        assert result.metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert result.provenance["extractor"] == expected.provenance["extractor"]
    assert result.provenance["generated"]["n"] == 120 and result.provenance["reference"]["n"] == 200


def test_reset_starts_a_new_evaluation_with_the_same_reference(images, expected):
    gen, ref = images
    evaluator = genmetrics.Evaluator(ref, METRICS, **KWARGS)
    evaluator.update(ref[:50])
    evaluator.reset()
    assert evaluator.n == 0
    evaluator.update(gen)
    assert evaluator.compute().metrics["fid"] == pytest.approx(expected.metrics["fid"], rel=1e-9)


def test_fid_only_keeps_no_feature_matrix(images, expected):
    gen, ref = images
    evaluator = genmetrics.Evaluator(ref, "fid", extractor="fashion-cnn")
    for chunk in np.split(gen, 4):
        evaluator.update(chunk)
    assert evaluator._features == []  # statistics only: memory does not grow with the samples
    assert evaluator.compute().metrics["fid"] == pytest.approx(expected.metrics["fid"], rel=1e-9)


def test_refusals(images):
    gen, ref = images
    with pytest.raises(ConfigError, match="clip_score"):
        genmetrics.Evaluator(ref, "clip_score")
    with pytest.raises(ConfigError, match="reference is needed for fid"):
        genmetrics.Evaluator(None, "fid", extractor="fashion-cnn")
    evaluator = genmetrics.Evaluator(ref, "fid", extractor="fashion-cnn")
    evaluator.update(gen[:1])
    with pytest.raises(InputError, match="at least 2 generated samples"):
        evaluator.compute()
