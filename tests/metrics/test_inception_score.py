"""Inception Score: parity with torch-fidelity (with and without its shuffle), closed forms, errors."""
import numpy as np
import pytest
import torch
from torch_fidelity.metric_isc import isc_features_to_metric

from genmetrics.errors import MetricError
from genmetrics.metrics.inception_score import inception_score


def _logits(n: int = 503, classes: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, classes)) * 3.0 + np.linspace(0.0, 2.0, n)[:, None] * rng.standard_normal(classes)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("splits", [1, 10])
def test_parity_with_torch_fidelity(shuffle, splits):
    logits = _logits()
    theirs = isc_features_to_metric(torch.from_numpy(logits), splits=splits, shuffle=shuffle, rng_seed=7)
    ours = inception_score(logits, splits, shuffle=shuffle, seed=7)
    assert ours[0] > 2.0
    assert ours == pytest.approx((theirs["inception_score_mean"], theirs["inception_score_std"]), rel=1e-6)


def test_default_equals_torch_fidelitys_default():
    logits = _logits(seed=2)
    theirs = isc_features_to_metric(torch.from_numpy(logits))  # splits=10, shuffle=True, rng_seed=2020
    assert inception_score(logits) == pytest.approx((theirs["inception_score_mean"], theirs["inception_score_std"]),
                                                    rel=1e-6)
    assert inception_score(logits) == inception_score(logits, 10, shuffle=True, seed=2020)


def test_samples_written_class_by_class_score_as_in_any_order():
    """Sorted by class, unshuffled splits are class-pure and IS collapses; the default shuffle prevents it."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 10, 1000)
    logits = 4.0 * np.eye(10)[labels] + rng.standard_normal((1000, 10))
    by_class = logits[np.argsort(labels, kind="stable")]
    assert inception_score(by_class)[0] == pytest.approx(inception_score(logits)[0], rel=0.03)
    assert inception_score(by_class, 10, shuffle=False)[0] < 0.5 * inception_score(logits, shuffle=False)[0]


def test_deterministic_by_default_and_accepts_float32_tensors():
    logits = _logits(seed=1)
    assert inception_score(logits) == inception_score(logits)
    from_tensor = inception_score(torch.from_numpy(logits.astype(np.float32)))
    assert from_tensor == pytest.approx(inception_score(logits.astype(np.float32)), rel=1e-12)


def test_uniform_predictions_score_one():
    mean, std = inception_score(np.zeros((100, 7)))
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_confident_predictions_spread_evenly_over_c_classes_score_c():
    classes, splits = 13, 5
    labels = np.tile(np.arange(classes), 4 * splits)  # every split holds every class 4 times
    mean, std = inception_score(100.0 * np.eye(classes)[labels], splits, shuffle=False)
    assert mean == pytest.approx(classes, rel=1e-12) and std < 1e-10


def test_classes_absent_from_a_split_do_not_give_nan():
    # torch-fidelity's log(mean p) is log(0) = -inf here and its score is NaN; the log-sum-exp form stays finite.
    logits = np.zeros((20, 4))
    logits[:, 0] = 1000.0
    assert inception_score(logits, 2) == pytest.approx((1.0, 0.0), abs=1e-12)


def test_errors():
    logits = np.zeros((10, 5))
    logits[3, 2] = np.nan
    with pytest.raises(MetricError, match=r"logits contains 1 NaN/inf value\(s\), first at index \(3, 2\)"):
        inception_score(logits)
    with pytest.raises(MetricError, match="splits must be between 1 and the number of samples"):
        inception_score(np.zeros((5, 3)), splits=10)
    with pytest.raises(MetricError, match=r"2-D array .* got shape \(5,\)"):
        inception_score(np.zeros(5))
    with pytest.raises(MetricError, match="has 1 sample"):
        inception_score(np.zeros((1, 3)), splits=1)
