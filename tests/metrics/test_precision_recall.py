"""Precision/recall and density/coverage: torch-fidelity parity, brute-force references, known answers."""
import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from torch_fidelity.metric_prc import prc_features_to_metric

from genmetrics.errors import MetricError
from genmetrics.metrics.precision_recall import density_coverage, precision_recall


def _features(n: int, d: int, seed: int, shift: float = 0.0, dtype=np.float64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.standard_normal((n, d)) + shift, 0.0).astype(dtype)


def _torch_fidelity_pr(ref: np.ndarray, gen: np.ndarray, k: int) -> tuple[float, float]:
    out = prc_features_to_metric(torch.from_numpy(gen), torch.from_numpy(ref), prc_neighborhood=k,  # input1 = generated
                                 prc_batch_size=10000, save_cpu_ram=False, verbose=False)
    return out["precision"], out["recall"]


def _brute_force(ref: np.ndarray, gen: np.ndarray, k: int) -> tuple[float, float, float, float]:
    """(precision, recall, density, coverage) from full fp64 distance matrices (small inputs only)."""
    r_ref = np.sort(cdist(ref, ref), axis=1)[:, k]  # column 0 is the zero self-distance
    r_gen = np.sort(cdist(gen, gen), axis=1)[:, k]
    d = cdist(ref, gen)
    in_ref_balls = d <= r_ref[:, None]
    return (in_ref_balls.any(axis=0).mean(), (d <= r_gen[None, :]).any(axis=1).mean(),
            in_ref_balls.sum() / (k * len(gen)), in_ref_balls.any(axis=1).mean())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [3, 5])
def test_parity_with_torch_fidelity(dtype, k):
    ref, gen = _features(600, 128, seed=1, dtype=dtype), _features(450, 128, seed=2, shift=0.15, dtype=dtype)
    precision, recall = precision_recall(ref, gen, k=k)
    theirs = _torch_fidelity_pr(ref, gen, k)
    assert 0.1 < precision < 0.9 and 0.1 < recall < 0.9
    # Same counts of covered samples; torch-fidelity returns the fraction rounded to float32.
    assert (round(precision * len(gen)), round(recall * len(ref))) == tuple(
        round(v * n) for v, n in zip(theirs, (len(gen), len(ref))))
    assert (np.float32(precision), np.float32(recall)) == theirs


def test_matches_brute_force_and_is_independent_of_block_size():
    ref, gen = _features(300, 32, seed=3), _features(257, 32, seed=4, shift=0.2)
    expected = _brute_force(ref, gen, 3)
    for block_size in (7, 64, 300, 5000):
        assert precision_recall(ref, gen, 3, block_size=block_size) == expected[:2]
        assert density_coverage(ref, gen, 3, block_size=block_size) == expected[2:]
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1 and 0 < expected[3] < 1


def test_identical_sets():
    x = _features(200, 16, seed=5)
    assert precision_recall(x, x.copy()) == (1.0, 1.0)
    assert density_coverage(x, x.copy())[1] == 1.0
    assert precision_recall(torch.from_numpy(x), torch.from_numpy(x)) == (1.0, 1.0)


def test_one_dimensional_known_answer_with_a_tie():
    ref = np.array([[0.0], [1.0], [2.0], [3.0]])  # k=1 radii: all 1
    gen = np.array([[0.5], [1.5], [4.0], [10.0]])  # k=1 radii: 1, 1, 2.5, 6
    # 4.0 lies exactly on the ball of 3.0 (distance 1 = radius) and counts, as in torch-fidelity (<=).
    assert precision_recall(ref, gen, k=1) == (0.75, 1.0)
    assert _torch_fidelity_pr(ref, gen, 1) == (0.75, 1.0)
    assert precision_recall(ref, gen[[0, 1, 3]], k=1) == (2 / 3, 1.0)
    assert precision_recall(ref, np.array([[0.5], [1.5], [10.0], [10.5]]), k=1) == (0.5, 0.75)


def test_two_dimensional_density_coverage_known_answer():
    ref = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # k=1 radius of every corner: 1
    gen = np.array([[0.0, 0.2], [2.0, 2.0], [1.1, 1.0]])  # inside 2, 0 and 1 balls; (1, 0) covered by none
    assert density_coverage(ref, gen, k=1) == (1.0, 0.75)
    assert density_coverage(ref, np.array([[0.5, 0.5]]), k=1) == (4.0, 1.0)  # density can exceed 1
    assert density_coverage(ref, gen, k=1, block_size=1) == (1.0, 0.75)


def test_errors():
    x = _features(10, 4, seed=6)
    with pytest.raises(MetricError, match="feats_gen has 3 samples but k=3 needs at least k\\+1=4"):
        precision_recall(x, x[:3])
    with pytest.raises(MetricError, match="feats_ref has 5 samples but k=5"):
        density_coverage(x[:5], x)
    assert density_coverage(x, x[:1], k=5)[0] >= 0  # only the reference set needs k+1 samples here
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(MetricError, match="feats_gen contains 1 NaN/inf"):
        precision_recall(x, bad)
    with pytest.raises(MetricError, match="feats_ref has d=4, feats_gen has d=3"):
        density_coverage(x, x[:, :3])
    with pytest.raises(MetricError, match="k must be >= 1"):
        precision_recall(x, x, k=0)
    with pytest.raises(MetricError, match="block_size must be >= 1"):
        precision_recall(x, x, block_size=0)
