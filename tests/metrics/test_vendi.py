"""Vendi score: equal to the n x n kernel definition, known answers, orders q, per-class scores, input errors."""
import numpy as np
import pytest
import torch
from scipy.linalg import eigvalsh
from scipy.stats import ortho_group

from genmetrics.errors import MetricError
from genmetrics.metrics.vendi import per_class_vendi, vendi_score


def _features(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * np.linspace(1.0, 0.05, d), 0) + 0.01


def _definition(x: np.ndarray, q: float = 1.0) -> float:
    """The paper's (and dgm-eval's) n x n computation: eigenvalues of K / n, K the cosine kernel, 0 log 0 = 0."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    p = eigvalsh(unit @ unit.T / len(x))
    p = p[p > 0]
    if q == 1:
        return float(np.exp(-(p * np.log(p)).sum()))
    if np.isinf(q):
        return float(1.0 / p.max())
    return float(np.exp(np.log((p ** q).sum()) / (1 - q)))


@pytest.mark.parametrize("n, d", [(150, 40), (60, 200), (100, 100)])  # d x d route, n x n route, square
@pytest.mark.parametrize("q", [1.0, 2.0, np.inf])
def test_equals_the_n_by_n_definition(n, d, q):
    x = _features(n, d, seed=n + d)
    ours = vendi_score(x, q=q)
    assert 1.0 < ours < min(n, d)
    assert ours == pytest.approx(_definition(x, q), rel=1e-9)


def test_known_answers():
    rng = np.random.default_rng(1)
    row = rng.standard_normal(16)
    assert vendi_score(np.tile(row, (50, 1))) == pytest.approx(1.0, abs=1e-12)
    # Cosine kernel: positive multiples of one row are the same point.
    assert vendi_score(row * rng.uniform(0.1, 10.0, (50, 1))) == pytest.approx(1.0, abs=1e-12)
    basis = ortho_group.rvs(32, random_state=2)  # orthonormal rows
    for q in (1.0, 0.5, 2.0, np.inf):
        assert vendi_score(basis[:20] * 3.0, q=q) == pytest.approx(20.0, rel=1e-12)
    # Four orthogonal directions, 25 copies each: 4 effective samples.
    groups = np.repeat(basis[:4], 25, axis=0)
    assert vendi_score(groups) == pytest.approx(4.0, rel=1e-12)
    # Unequal groups (60, 20, 20): exp of the entropy of (0.6, 0.2, 0.2).
    uneven = np.repeat(basis[:3], [60, 20, 20], axis=0)
    p = np.array([0.6, 0.2, 0.2])
    assert vendi_score(uneven) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-12)
    assert vendi_score(uneven, q=np.inf) == pytest.approx(1 / 0.6, rel=1e-12)
    assert vendi_score(uneven, q=2) == pytest.approx(1 / (p ** 2).sum(), rel=1e-12)


def test_rank_deficient_features_small_q():
    """Rows spanning 5 of 20 dimensions: q = 0 counts the non-zero eigenvalues (the rank) exactly, because rounding
    noise around the exact zeros is set to 0 (in the n x n route it would count)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((120, 5)) @ rng.standard_normal((5, 20))
    assert vendi_score(x, q=0.0) == pytest.approx(5.0, rel=1e-12)
    assert 1.0 < vendi_score(x) < 5.0
    assert vendi_score(x) == pytest.approx(_definition(x), rel=1e-9)


def test_float32_and_torch_input():
    x = _features(200, 30, seed=4)
    ours = vendi_score(x)
    assert vendi_score(torch.from_numpy(x)) == ours
    assert vendi_score(x.astype(np.float32)) == pytest.approx(_definition(x.astype(np.float32).astype(np.float64)),
                                                              rel=1e-9)
    assert vendi_score(x, q="inf") == vendi_score(x, q=np.inf)  # dgm-eval spells it "inf"


def test_per_class_scores_keyed_by_label():
    x = _features(300, 24, seed=5)
    labels = np.random.default_rng(6).choice([2, 5, 9], 300)
    out = per_class_vendi(x, labels)
    assert list(out) == [2, 5, 9]
    for label, score in out.items():
        assert score == vendi_score(x[labels == label])
        assert score == pytest.approx(_definition(x[labels == label]), rel=1e-9)
    assert per_class_vendi(x, labels.astype(np.float64), q=2)[5] == vendi_score(x[labels == 5], q=2)


def test_errors_name_the_bad_input():
    x = _features(10, 4, seed=7)
    x[3] = 0.0
    with pytest.raises(MetricError, match="feats has 1 all-zero row.*index 3"):
        vendi_score(x)
    with pytest.raises(MetricError, match="feats of class 1 has 1 all-zero row"):
        per_class_vendi(x, np.r_[np.zeros(3), np.ones(7)])
    with pytest.raises(MetricError, match="q must be >= 0"):
        vendi_score(_features(10, 4, seed=7), q=-1)
    with pytest.raises(MetricError, match="q must be a number"):
        vendi_score(_features(10, 4, seed=7), q="shannon")
    with pytest.raises(MetricError, match=r"labels must have shape \(10,\)"):
        per_class_vendi(_features(10, 4, seed=7), np.zeros(9, dtype=int))
    with pytest.raises(MetricError, match="labels must be integer class indices"):
        per_class_vendi(_features(10, 4, seed=7), np.full(10, 0.5))
    with pytest.raises(MetricError, match="feats must be a 2-D array"):
        vendi_score(np.ones(5))
