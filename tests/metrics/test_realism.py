"""Realism score: equal to a brute-force evaluation of the definition, known answers in one dimension (kept balls,
the median, d = 0), the squared-distance scores of the authors' code, input errors."""
import numpy as np
import pytest

from genmetrics.errors import MetricError
from genmetrics.metrics.realism import realism_scores


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The canonical squared distances: fp64 sum over coordinates of squared fp64 differences, (n, m)."""
    return ((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(axis=-1)


def _brute_force(ref: np.ndarray, gen: np.ndarray, k: int) -> np.ndarray:
    """max over the reference samples with radius <= median radius of radius / distance (Euclidean)."""
    within = _sq_dists(ref, ref)
    np.fill_diagonal(within, np.inf)
    radii = np.sqrt(np.sort(within, axis=1)[:, k - 1])
    kept = radii <= np.median(radii)
    dist = np.sqrt(_sq_dists(gen, ref[kept]))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = radii[kept][None, :] / dist
    ratio[:, radii[kept] == 0] = 0.0  # a ball of radius 0 contributes 0
    return ratio.max(axis=1)


@pytest.mark.parametrize("n_ref, n_gen, d, k", [(400, 300, 16, 3), (301, 250, 64, 3), (500, 700, 8, 5)])
def test_equals_brute_force(n_ref, n_gen, d, k):
    rng = np.random.default_rng(n_ref + d)
    ref = rng.standard_normal((n_ref, d))
    gen = rng.standard_normal((n_gen, d)) * 1.3 + 0.1
    ours = realism_scores(ref, gen, k=k)
    assert ours.shape == (n_gen,) and ours.dtype == np.float64
    np.testing.assert_array_equal(ours, _brute_force(ref, gen, k))
    assert (ours >= 1).any() and (ours < 1).any()  # some inside a kept ball, some not


def test_float32_input_and_duplicates():
    """float32 features widen exactly; generated copies of reference samples score inf (d = 0 < r), and
    duplicated reference samples (radius 0 for k = 1) contribute nothing."""
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((200, 12)).astype(np.float32)
    ref[100:110] = ref[0]  # 11 copies of one sample: radius 0 for k <= 10
    gen = np.concatenate([rng.standard_normal((150, 12)).astype(np.float32), ref[[0, 5, 50]]])
    ours = realism_scores(ref, gen, k=1)
    np.testing.assert_array_equal(ours, _brute_force(ref, gen, 1))
    # ref[0] has radius 0 (not a usable ball), but its copy may still be close to other kept balls: finite.
    assert np.isfinite(ours[150])
    kept = _kept(ref, 1)
    assert not kept[0] and kept[[5, 50]].any()
    assert np.isinf(ours[151:]).tolist() == kept[[5, 50]].tolist()


def _kept(ref: np.ndarray, k: int) -> np.ndarray:
    within = _sq_dists(ref, ref)
    np.fill_diagonal(within, np.inf)
    radii = np.sort(within, axis=1)[:, k - 1]
    return (radii <= np.median(radii)) & (radii > 0)


def test_known_answers_in_one_dimension():
    """ref 0, 1, 2, 3, 10 with k = 1: radii 1, 1, 1, 1, 7, median 1, so the ball of 10 is dropped."""
    ref = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    gen = np.array([[0.5], [20.0], [1.0], [9.0], [-1.0]])
    ours = realism_scores(ref, gen, k=1)
    assert ours.tolist() == [2.0, 1 / 17, np.inf, 1 / 6, 1.0]
    # The median ball is kept (<=): radii 1, 1, 2, 2, 4 for ref 0, 1, 3, 5, 9 with k = 1 -> median 2, four kept.
    ref = np.array([[0.0], [1.0], [3.0], [5.0], [9.0]])
    assert realism_scores(ref, np.array([[7.0]]), k=1).tolist() == [2 / 2]  # from 5 (radius 2, distance 2)
    assert realism_scores(ref, np.array([[13.0]]), k=1).tolist() == [2 / 8]  # 9's ball (radius 4) is dropped


def test_all_kept_balls_of_radius_zero_give_zero():
    """More than half the reference samples duplicated (radius 0 for k = 1): the median radius is 0, no kept ball
    has a positive radius, every score is 0 (also at d = 0)."""
    ref = np.array([[0.0], [0.0], [4.0], [4.0], [7.0]])
    assert realism_scores(ref, np.array([[0.0], [5.0]]), k=1).tolist() == [0.0, 0.0]


def test_square_is_the_squared_distance_score_of_the_authors_code():
    """kynkaat/improved-precision-and-recall-metric (clamp_to_percentile=50) and guided-diffusion's evaluator
    score max_j r_j^2 / (D_j + eps) with radii above the median set to 0: with eps = 0 that is ours squared."""
    rng = np.random.default_rng(2)
    ref, gen = rng.standard_normal((300, 10)), rng.standard_normal((200, 10))
    within = _sq_dists(ref, ref)
    radii_sq = np.partition(within, 3, axis=1)[:, 3]  # the row holds its own 0: the 3rd other neighbour
    radii_sq[radii_sq > np.percentile(radii_sq, 50)] = 0
    theirs = np.max(radii_sq[None, :] / _sq_dists(gen, ref), axis=1)
    np.testing.assert_allclose(realism_scores(ref, gen, k=3) ** 2, theirs, rtol=1e-13)


def test_errors_name_the_bad_input():
    ref = np.zeros((4, 3))
    with pytest.raises(MetricError, match="feats_ref has 4 samples but k=4 needs at least k\\+1=5"):
        realism_scores(ref, np.zeros((2, 3)), k=4)
    with pytest.raises(MetricError, match="k must be an integer >= 1"):
        realism_scores(ref, np.zeros((2, 3)), k=0)
    with pytest.raises(MetricError, match="feats_ref has d=3, feats_gen has d=2"):
        realism_scores(ref, np.zeros((2, 2)))
    with pytest.raises(MetricError, match="feats_gen contains 1 NaN"):
        realism_scores(np.random.default_rng(0).standard_normal((10, 3)), np.array([[0.0, np.nan, 1.0]]))
