"""CLIPScore / RefCLIPScore: the paper's formulas on embeddings."""
from __future__ import annotations

import numpy as np
import pytest

from genmetrics.errors import MetricError
from genmetrics.metrics.clip_score import (
    clip_score,
    max_reference_cosine,
    mean_std,
    ref_clip_score,
)


def _cos(u: np.ndarray, v: np.ndarray) -> float:
    return float(u @ v / (np.sqrt(u @ u) * np.sqrt(v @ v)))


def test_clip_score_is_w_times_the_clipped_cosine_per_sample():
    rng = np.random.default_rng(0)
    images, texts = rng.normal(size=(9, 6)), rng.normal(size=(9, 6))
    expected = [2.5 * max(0.0, _cos(i, t)) for i, t in zip(images, texts)]
    assert clip_score(images, texts) == pytest.approx(expected, abs=1e-12)
    assert clip_score(images, texts, w=1.0) == pytest.approx(np.array(expected) / 2.5, abs=1e-12)
    assert any(e == 0 for e in expected) and any(e > 0 for e in expected)  # both branches of the max
    # cosine: the embeddings' scale does not matter
    assert clip_score(images * 7.0, texts * 0.01) == pytest.approx(expected, abs=1e-12)


def test_negative_cosines_give_zero():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(5, 4))
    assert np.array_equal(clip_score(images, -images), np.zeros(5))
    assert clip_score(images, images) == pytest.approx(np.full(5, 2.5))


def test_ref_clip_score_is_the_harmonic_mean_with_the_best_reference():
    rng = np.random.default_rng(2)
    images, texts = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    refs = [rng.normal(size=(m, 5)) for m in (1, 3, 2, 4)]
    refs[0] = -texts[:1]  # only a negative reference: its term is max(0, -1) = 0
    expected = []
    for image, text, group in zip(images, texts, refs):
        c = 2.5 * max(0.0, _cos(image, text))
        r = max(0.0, max(_cos(text, ref) for ref in group))
        expected.append(0.0 if c + r == 0 else 2 * c * r / (c + r))
    assert ref_clip_score(images, texts, refs) == pytest.approx(expected, abs=1e-12)
    assert max_reference_cosine(texts, refs)[0] == 0.0 and expected[0] == 0.0


def test_mean_and_population_std():
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, np.std([1, 2, 3, 4])))
    with pytest.raises(MetricError, match="non-empty"):
        mean_std([])


def test_bad_inputs_are_metric_errors():
    a = np.ones((3, 4))
    with pytest.raises(MetricError, match="same shape"):
        clip_score(a, np.ones((2, 4)))
    with pytest.raises(MetricError, match="all-zero embedding at row 1"):
        clip_score(np.array([[1.0, 0], [0, 0]]), np.ones((2, 2)))
    with pytest.raises(MetricError, match="w must be > 0"):
        clip_score(a, a, w=0)
    with pytest.raises(MetricError, match="2 sets for 3 captions"):
        ref_clip_score(a, a, [a, a])
    with pytest.raises(MetricError, match="NaN"):
        clip_score(np.full((2, 2), np.nan), np.ones((2, 2)))
