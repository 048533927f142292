"""Precision/recall and density/coverage: torch-fidelity and prdc parity, brute-force references, known answers,
ties and near ties. The k-NN engine underneath is tested on its own in test_knn.py."""
import numpy as np
import pytest
import torch
from prdc import compute_prdc
from torch_fidelity.metric_prc import prc_features_to_metric

from genmetrics.errors import MetricError
from genmetrics.metrics import knn
from genmetrics.metrics.precision_recall import (
    DEFAULT_BLOCK_SIZE,
    ManifoldIncidence,
    ManifoldMetrics,
    density_coverage,
    manifold_incidence,
    manifold_metrics,
    precision_recall,
)


def _features(n: int, d: int, seed: int, shift: float = 0.0, dtype=np.float64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.standard_normal((n, d)) + shift, 0.0).astype(dtype)


def _torch_fidelity_pr(ref: np.ndarray, gen: np.ndarray, k: int) -> tuple[float, float]:
    out = prc_features_to_metric(torch.from_numpy(gen), torch.from_numpy(ref), prc_neighborhood=k,  # input1 = generated
                                 prc_batch_size=10000, save_cpu_ram=False, verbose=False)
    return out["precision"], out["recall"]


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The definition: fp64 sum over coordinates of squared fp64 differences, for every pair (n, m)."""
    return ((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(axis=-1)


def _radii(x: np.ndarray, k: int) -> np.ndarray:
    d = _sq_dists(x, x)
    np.fill_diagonal(d, np.inf)  # the sample itself is not its own neighbour
    return np.sort(d, axis=1)[:, k - 1]


def _brute_force(ref: np.ndarray, gen: np.ndarray, k: int) -> tuple[float, float, float, float]:
    """(precision, recall, density, coverage) from full distance matrices (small inputs only): a point on a
    ball's boundary is inside for precision/recall (<=), outside for density/coverage (<)."""
    d = _sq_dists(ref, gen)
    ref_radii = _radii(ref, k)[:, None]
    in_ref_balls, strictly_in_ref_balls = d <= ref_radii, d < ref_radii
    return (in_ref_balls.any(axis=0).mean(), (d <= _radii(gen, k)[None, :]).any(axis=1).mean(),
            strictly_in_ref_balls.sum() / (k * len(gen)), strictly_in_ref_balls.any(axis=1).mean())


def _tie_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(reference, generated) sets whose distances tie: the cases where ``<=`` and ``<`` differ."""
    rng = np.random.default_rng(20)
    distinct = rng.standard_normal((300, 16))
    duplicated = np.repeat(rng.standard_normal((40, 16)), 10, axis=0)
    return {
        "identical distinct points": (distinct, distinct.copy()),
        "integer grid {0,1,2}^8": (rng.integers(0, 3, (2000, 8)).astype(np.float64),
                                   rng.integers(0, 3, (2000, 8)).astype(np.float64)),
        "every point x10": (duplicated, duplicated.copy()),
        "all ones": (np.ones((200, 16)), np.ones((300, 16))),
    }


@pytest.mark.parametrize("case", list(_tie_cases()))
def test_density_coverage_equal_prdc_on_ties(case):
    ref, gen = _tie_cases()[case]
    theirs = compute_prdc(real_features=ref, fake_features=gen, nearest_k=5)
    ours = manifold_metrics(ref, gen, k_pr=5, k_dc=5)
    assert (ours.density, ours.coverage) == pytest.approx((theirs["density"], theirs["coverage"]), rel=1e-12, abs=0)
    assert (ours.density, ours.coverage) == density_coverage(ref, gen, 5)
    if len(ref) * len(gen) <= 10 ** 5:
        assert ours == ManifoldMetrics(*_brute_force(ref, gen, 5))
    if case == "identical distinct points":
        assert (ours.density, ours.coverage) == (1.0, 1.0)  # the k-th neighbour lies on the ball, not in it
    if case in ("every point x10", "all ones"):  # k or more duplicates: radius 0, a ball that holds nothing
        assert (ours.density, ours.coverage) == (0.0, 0.0) and (ours.precision, ours.recall) == (1.0, 1.0)


def test_density_coverage_equal_prdc_on_continuous_features():
    ref, gen = _features(400, 32, seed=21), _features(350, 32, seed=22, shift=0.1)
    theirs = compute_prdc(real_features=ref, fake_features=gen, nearest_k=5)
    assert density_coverage(ref, gen, 5) == pytest.approx((theirs["density"], theirs["coverage"]), rel=1e-12)


def _near_ties(dim: int = 16, clusters: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k=1 configurations on coordinates near 1000 (float32 spacing there: 2^-14 and 2^-13), clusters 100 apart.

    Reference per cluster: p, q = p + (3, 4) and s = p + (-3, -4 - 1 ulp), so r(p) = 25 exactly while
    s is 2^-39 farther. ``on_edge`` per cluster: p + (-4, 3) (D = 25, on p's ball), the same 1 ulp outward
    (outside) and 1 ulp inward (inside); float32 rounds the three to one point. ``beyond`` per cluster:
    p + (4 + 1 ulp, -3), 2^-40 outside r(p) = 25 but inside the ball a radius taken from s would give.
    """
    ref, on_edge, beyond = [], [], []
    for c in range(clusters):
        p = 1000.0 + 37.0 * np.arange(dim)
        p[2 + c] += 100.0 * (c + 1)
        ref += [p, p + np.eye(dim)[0] * 3 + np.eye(dim)[1] * 4, p - np.eye(dim)[0] * 3]
        ref[-1][1] = np.nextafter(p[1] - 4, -np.inf)
        a = p - np.eye(dim)[0] * 4 + np.eye(dim)[1] * 3
        on_edge += [a, a.copy(), a.copy()]
        on_edge[-2][0] = np.nextafter(a[0], -np.inf)
        on_edge[-1][0] = np.nextafter(a[0], np.inf)
        e = p + np.eye(dim)[0] * 4 - np.eye(dim)[1] * 3
        e[0] = np.nextafter(e[0], np.inf)
        beyond.append(e)
    return np.array(ref), np.array(on_edge), np.array(beyond)


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
    for block_size in (13, 64, 300, 5000):
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
    # 4.0 lies exactly on the ball of 3.0 (distance 1 = radius) and counts, as in torch-fidelity (<=); not for
    # density/coverage (<, as prdc): 0.5 and 1.5 lie in two balls each, 3.0's ball holds none.
    assert precision_recall(ref, gen, k=1) == (0.75, 1.0)
    assert density_coverage(ref, gen, k=1) == (1.0, 0.75)
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


def test_near_ties_are_decided_exactly_where_float32_cannot():
    ref, on_edge, beyond = _near_ties()
    expected_radius = np.tile([25.0, 25.0, 25.0 + 2.0 ** -39], 4)
    assert (_radii(ref, 1) == expected_radius).all()
    assert (knn.knn_radii_sq(ref, [1, 2], block_size=5)[1] == expected_radius).all()
    assert (_sq_dists(on_edge, ref).min(axis=1) == np.tile([25.0, 25.0 + 2.0 ** -40, 25.0 - 2.0 ** -40], 4)).all()
    for block_size in (1, 5, 64):
        assert precision_recall(ref, on_edge, k=1, block_size=block_size) == _brute_force(ref, on_edge, 1)[:2]
        assert precision_recall(ref, on_edge, k=1, block_size=block_size)[0] == 2 / 3  # on and inward only
        assert precision_recall(ref, beyond, k=1, block_size=block_size)[0] == 0.0
        for gen in (on_edge, beyond, np.concatenate([on_edge, beyond, ref[::2]])):
            assert density_coverage(ref, gen, k=1, block_size=block_size) == _brute_force(ref, gen, 1)[2:]
            assert density_coverage(ref, gen, k=2, block_size=block_size) == _brute_force(ref, gen, 2)[2:]
    # float32 cannot tell the three points of a cluster apart: its precision is a multiple of 1/4, never 2/3.
    theirs = _torch_fidelity_pr(ref.astype(np.float32), on_edge.astype(np.float32), 1)[0]
    assert theirs in (0.0, 0.25, 0.5, 0.75, 1.0)
    # Scaling by 2^60 is exact: same decisions, now from fp64 tiles (float32 tiles could overflow).
    assert precision_recall(ref * 2.0 ** 60, on_edge * 2.0 ** 60, k=1) == (2 / 3, precision_recall(ref, on_edge, 1)[1])


def test_duplicates_and_near_duplicates(monkeypatch):
    """Clusters below float32 resolution: zero radii (exact duplicates), rows whose kept float32 candidates
    cannot be trusted (rescanned), and border pairs resolved in small batches."""
    monkeypatch.setattr(knn, "_MAX_BORDER_PAIRS", 3)
    x = _features(120, 24, seed=7)
    rng = np.random.default_rng(8)
    near = x[1] + 1e-7 * rng.random((20, 24))  # distinct in fp64, one point in float32
    ref = np.concatenate([x, np.repeat(x[:1], 20, axis=0), near])
    gen = np.concatenate([_features(90, 24, seed=8, shift=0.1), x[:1], near[:3] + 1e-9, x[5:6] + 1e-9])
    for k in (1, 3):
        assert manifold_metrics(ref, gen, k_pr=k, k_dc=k, block_size=32) == ManifoldMetrics(
            *_brute_force(ref, gen, k))
        assert precision_recall(gen, ref, k, block_size=32) == _brute_force(gen, ref, k)[:2]
    radii = knn.knn_radii_sq(ref, [1, 3, 7], block_size=32)
    assert all((radii[k] == _radii(ref, k)).all() for k in (1, 3, 7))


def test_manifold_metrics_shares_passes_and_matches_separate_calls():
    ref, gen = _features(200, 20, seed=9), _features(150, 20, seed=10, shift=0.1)
    both = manifold_metrics(ref, gen, k_pr=3, k_dc=5, block_size=48)
    assert (both.precision, both.recall) == precision_recall(ref, gen, 3) == _brute_force(ref, gen, 3)[:2]
    assert (both.density, both.coverage) == density_coverage(ref, gen, 5) == _brute_force(ref, gen, 5)[2:]
    with pytest.raises(MetricError, match="k must be >= 1, got 0"):
        manifold_metrics(ref, gen, k_pr=0)


def test_float32_input_is_not_widened_and_gives_the_same_result():
    ref, gen = _features(150, 16, seed=11, dtype=np.float32), _features(140, 16, seed=12, shift=0.2, dtype=np.float32)
    assert precision_recall(ref, gen) == precision_recall(ref.astype(np.float64), gen.astype(np.float64))
    assert precision_recall(torch.from_numpy(ref), gen) == _brute_force(ref, gen, 3)[:2]



def test_manifold_incidence_holds_the_memberships_of_manifold_metrics():
    ref, gen = _features(120, 12, seed=13), _features(100, 12, seed=14, shift=0.1)
    incidence = manifold_incidence(ref, gen, k_pr=3, k_dc=5, block_size=32)
    assert isinstance(incidence, ManifoldIncidence)
    assert (incidence.n_ref, incidence.n_gen, incidence.k_pr, incidence.k_dc) == (120, 100, 3, 5)
    assert incidence.metrics() == manifold_metrics(ref, gen, k_pr=3, k_dc=5) == ManifoldMetrics(
        *_brute_force(ref, gen, 3)[:2], *_brute_force(ref, gen, 5)[2:])
    d = _sq_dists(ref, gen)
    strictly_in_ref = d < _radii(ref, 5)[:, None]  # (ref owner, gen): density/coverage balls
    in_gen = d.T <= _radii(gen, 3)[:, None]  # (gen owner, ref): recall balls
    for (owner, other), inside in ((incidence.ref_balls, strictly_in_ref), (incidence.gen_balls, in_gen)):
        assert owner.dtype == other.dtype == np.int64 and len(owner) == inside.sum() and inside[owner, other].all()
    assert np.array_equal(incidence.gen_in_ref, (d <= _radii(ref, 3)[:, None]).any(axis=0))


def test_public_names():
    assert DEFAULT_BLOCK_SIZE == knn.DEFAULT_BLOCK_SIZE  # imported from precision_recall by cmmd and bootstrap
