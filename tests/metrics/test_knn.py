"""The exact tiled k-NN engine (genmetrics.metrics.knn) through its public interface, against brute-force
definitions on all pairs: random data, ties, duplicate rows, k edge cases, tile boundaries, float32 inputs, near
ties float32 cannot resolve, and the internal paths (border batches, rescans, dedup, fp64 tiles) forced by its
tuning constants."""
import tracemalloc

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from genmetrics.errors import MetricError
from genmetrics.metrics import knn
from genmetrics.metrics.knn import Balls, Membership, ball_membership, knn_radii_sq


def reference_sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The definition of the squared distance, for every pair: (n, d), (m, d) -> (n, m) fp64,
    D(x, y) = sum_t (x_t - y_t)^2 with fp64 differences and squares of the input values (float32 widens exactly)
    and numpy's (pairwise) sum over t. The engine must reproduce these values bit for bit; scipy's
    ``cdist(..., "sqeuclidean")`` sums in another order and agrees to rounding (checked below)."""
    return ((a[:, None, :].astype(np.float64) - b[None, :, :].astype(np.float64)) ** 2).sum(axis=-1)


def reference_radii_sq(x: np.ndarray, k: int) -> np.ndarray:
    """The definition of the squared k-NN radius: (n, d) -> (n,), the k-th smallest D(x_i, x_j) over j != i
    (only the row itself is left out: its duplicates count, at distance 0)."""
    d = reference_sq_distances(x, x)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, k - 1]


def reference_inside(owners: np.ndarray, queries: np.ndarray, balls: Balls) -> np.ndarray:
    """The definition of membership: (n_owners, n_queries) bool, query j inside owner i's ball when
    D(owner_i, query_j) < r_i^2 (strict balls) or <= r_i^2."""
    d = reference_sq_distances(owners, queries)
    radii = reference_radii_sq(owners, balls.k)[:, None]
    return d < radii if balls.strict else d <= radii


def assert_membership_is(found: Membership, owners: np.ndarray, queries: np.ndarray, balls: Balls) -> None:
    """Every field of ``found`` equals its brute-force definition (pairs compared as a set)."""
    inside = reference_inside(owners, queries, balls)
    assert found.balls == balls
    assert np.array_equal(found.radii_sq, reference_radii_sq(owners, balls.k))
    assert np.array_equal(found.owner_hit, inside.any(axis=1))
    assert np.array_equal(found.query_hit, inside.any(axis=0))
    assert found.inside_pairs == int(inside.sum())
    if found.pairs is not None:
        owner, query = found.pairs
        assert owner.dtype == query.dtype == np.int64
        assert len(owner) == len(set(zip(owner.tolist(), query.tolist()))) == int(inside.sum())
        assert inside[owner, query].all()


def _features(n: int, d: int, seed: int, shift: float = 0.0, dtype=np.float64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.standard_normal((n, d)) + shift, 0.0).astype(dtype)


def _tie_sets() -> dict[str, np.ndarray]:
    """Sets whose distances tie (exactly equal D, duplicate rows): where ``<`` and ``<=`` differ."""
    rng = np.random.default_rng(30)
    return {
        "integer grid {0,1,2}^4": rng.integers(0, 3, (300, 4)).astype(np.float64),
        "every row x10": np.repeat(rng.standard_normal((30, 8)), 10, axis=0),
        "all equal": np.ones((120, 8)),
        "1-D integers": np.arange(50, dtype=np.float64)[:, None],
        "some rows duplicated": np.concatenate([_features(100, 8, 31), _features(100, 8, 31)[:7]]),
    }


def test_reference_distances_agree_with_scipy():
    a, b = _features(40, 33, seed=1), _features(30, 33, seed=2)
    assert reference_sq_distances(a, b) == pytest.approx(cdist(a, b, "sqeuclidean"), rel=1e-13, abs=0)


@pytest.mark.parametrize("block_size", [1, 13, 64, 256, 257, 300, 5000])
def test_radii_equal_the_definition_on_random_data_for_any_tiling(block_size):
    x = _features(300, 24, seed=3)  # 300 rows: tiles of 13, 64, 256 and 257 leave a partial last tile
    radii = knn_radii_sq(x, [1, 3, 5, 17], block_size=block_size)
    assert sorted(radii) == [1, 3, 5, 17]
    for k, found in radii.items():
        assert found.dtype == np.float64 and found.shape == (300,)
        assert np.array_equal(found, reference_radii_sq(x, k))


@pytest.mark.parametrize("n", [255, 256, 257, 511, 513, 600])
def test_radii_across_tile_and_diagonal_split_boundaries(n):
    """Sizes around the block size and the smallest diagonal tile (256), halved diagonal blocks included."""
    x = _features(n, 8, seed=4)
    for block_size in (256, 600):
        radii = knn_radii_sq(x, [2, 9], block_size=block_size)
        assert all(np.array_equal(radii[k], reference_radii_sq(x, k)) for k in (2, 9))


@pytest.mark.parametrize("case", list(_tie_sets()))
def test_radii_and_membership_on_ties_and_duplicates(case):
    x = _tie_sets()[case]
    queries = np.concatenate([x[::3], x[:5] + 0.5])
    for k in (1, 5, 12):
        assert np.array_equal(knn_radii_sq(x, [k], block_size=64)[k], reference_radii_sq(x, k))
        families = [Balls(k, strict=True), Balls(k, strict=False)]
        in_x, _ = ball_membership(x, queries, families, block_size=64, record_pairs=True)
        for balls in families:
            assert_membership_is(in_x[balls], x, queries, balls)


def test_radius_zero_balls():
    """k or more exact duplicates: radius 0. A strict ball of radius 0 holds nothing, not even a copy of its
    owner; a non-strict one holds exactly the copies."""
    x = np.repeat(_features(6, 4, seed=5), 4, axis=0)  # each row 4 times: 3 duplicates besides itself
    assert (knn_radii_sq(x, [3])[3] == 0).all() and (knn_radii_sq(x, [4])[4] > 0).all()
    strict, closed = Balls(3, strict=True), Balls(3, strict=False)
    in_x, _ = ball_membership(x, x, [strict, closed])
    assert in_x[strict].inside_pairs == 0 and not in_x[strict].query_hit.any()
    assert in_x[closed].inside_pairs == len(x) * 4 and in_x[closed].owner_hit.all()


def test_k_edge_cases():
    x = _features(12, 5, seed=6)
    radii = knn_radii_sq(x, [11, 1, 11])  # k = n - 1, the largest possible; repeated and unsorted ks
    assert sorted(radii) == [1, 11]
    assert np.array_equal(radii[11], reference_radii_sq(x, 11)) and np.array_equal(radii[1], reference_radii_sq(x, 1))
    assert np.array_equal(knn_radii_sq(x[:2], [1])[1], reference_radii_sq(x[:2], 1))  # two rows: each other's
    with pytest.raises(MetricError, match="feats has 12 samples but k=12 needs at least k\\+1=13"):
        knn_radii_sq(x, [12])
    with pytest.raises(MetricError, match="k must be >= 1, got 0"):
        knn_radii_sq(x, [0, 3])
    with pytest.raises(MetricError, match="ks must hold at least one k"):
        knn_radii_sq(x, [])
    with pytest.raises(MetricError, match="block_size must be >= 1"):
        knn_radii_sq(x, [1], block_size=0)


def test_membership_in_both_directions_matches_the_definition():
    a, b = _features(210, 16, seed=7), _features(170, 16, seed=8, shift=0.1)
    families_a = [Balls(3, False), Balls(5, True), Balls(5, False)]
    families_b = [Balls(3, False), Balls(1, True)]
    for block_size in (32, 100, 2048):
        in_a, in_b = ball_membership(a, b, families_a, families_b, block_size=block_size, record_pairs=True)
        assert list(in_a) == families_a and list(in_b) == families_b
        for balls in families_a:
            assert_membership_is(in_a[balls], a, b, balls)
        for balls in families_b:
            assert_membership_is(in_b[balls], b, a, balls)
    in_a, in_b = ball_membership(a, b, families_a)
    assert in_b == {} and all(found.pairs is None for found in in_a.values())
    assert np.array_equal(in_a[Balls(5, True)].radii_sq, knn_radii_sq(a, [5])[5])


def test_membership_of_a_set_without_balls_needs_one_row_only():
    a = _features(20, 4, seed=9)
    in_a, in_b = ball_membership(a, a[:1], [Balls(5, True)], record_pairs=True)
    assert_membership_is(in_a[Balls(5, True)], a, a[:1], Balls(5, True))
    far, _ = ball_membership(a, a[:1] + 100, [Balls(2, False)], record_pairs=True)
    assert far[Balls(2, False)].pairs[0].dtype == np.int64 and len(far[Balls(2, False)].pairs[0]) == 0


def test_membership_errors_name_the_sets():
    a = _features(10, 4, seed=10)
    names = ("feats_ref", "feats_gen")
    with pytest.raises(MetricError, match="feats_gen has 3 samples but k=3 needs at least k\\+1=4"):
        ball_membership(a, a[:3], [Balls(3, False)], [Balls(3, False)], names=names)
    with pytest.raises(MetricError, match="feats_ref has d=4, feats_gen has d=3"):
        ball_membership(a, a[:, :3], [Balls(1, True)], names=names)
    bad = a.copy()
    bad[2, 1] = np.nan
    with pytest.raises(MetricError, match="feats_b contains 1 NaN/inf"):
        ball_membership(a, bad, [Balls(1, True)])
    with pytest.raises(MetricError, match="k must be >= 1, got 0"):
        ball_membership(a, a, [Balls(0, True)])
    with pytest.raises(MetricError, match="overflow squared distances in fp64"):
        knn_radii_sq(a * 2.0 ** 600, [1])


def test_float32_input_equals_its_exact_widening():
    a, b = _features(150, 16, seed=11, dtype=np.float32), _features(140, 16, seed=12, shift=0.2, dtype=np.float32)
    radii = knn_radii_sq(a, [1, 4], block_size=64)
    assert all(np.array_equal(radii[k], reference_radii_sq(a, k)) for k in (1, 4))
    assert all(np.array_equal(radii[k], knn_radii_sq(a.astype(np.float64), [k])[k]) for k in (1, 4))
    assert np.array_equal(knn_radii_sq(torch.from_numpy(a), [4])[4], radii[4])
    families = [Balls(3, True), Balls(3, False)]
    in_a, in_b = ball_membership(a, b, families, families, block_size=64, record_pairs=True)
    for balls in families:
        assert_membership_is(in_a[balls], a, b, balls)
        assert_membership_is(in_b[balls], b, a, balls)


def test_float32_input_is_not_widened():
    """float32 features stay float32: the engine allocates less on them than on the same values in fp64 (a
    widened copy alone would take twice the float32 input)."""
    x = _features(3000, 256, seed=13, dtype=np.float32)
    peaks = []
    for feats in (x, x.astype(np.float64)):
        tracemalloc.start()
        knn_radii_sq(feats, [3], block_size=128)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[0] < peaks[1] + x.nbytes


def test_ill_conditioned_float32_with_boundary_ties():
    """A large common offset (1e3) makes float32 tiles coarse next to the distances, and querying a set with
    itself puts every row's k-th neighbour exactly on its ball: decided by the error bound and exact recomputation,
    ``<`` and ``<=`` differ on every ball."""
    rng = np.random.default_rng(14)
    x = (1e3 + rng.standard_normal((200, 300))).astype(np.float32)
    radii = knn_radii_sq(x, [1, 3], block_size=64)
    assert all(np.array_equal(radii[k], reference_radii_sq(x, k)) for k in (1, 3))
    families = [Balls(3, True), Balls(3, False)]
    in_x, _ = ball_membership(x, x, families, block_size=64, record_pairs=True)
    for balls in families:
        assert_membership_is(in_x[balls], x, x, balls)
    assert in_x[Balls(3, False)].inside_pairs - in_x[Balls(3, True)].inside_pairs == len(x)  # k-th neighbours


def _near_ties(dim: int = 16, clusters: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """k=1 radii and queries decided 2^-40 from a boundary, on coordinates near 1000 (float32 spacing 2^-14).

    Per cluster: owners p, p + (3, 4) and p + (-3, -4 - 1 ulp), so r^2(p) = 25 exactly; queries p + (-4, 3)
    (D = 25, on p's ball), the same 1 ulp outward and 1 ulp inward: float32 rounds the three to one point.
    """
    owners, queries = [], []
    for c in range(clusters):
        p = 1000.0 + 37.0 * np.arange(dim)
        p[2 + c] += 100.0 * (c + 1)
        owners += [p, p + np.eye(dim)[0] * 3 + np.eye(dim)[1] * 4, p - np.eye(dim)[0] * 3]
        owners[-1][1] = np.nextafter(p[1] - 4, -np.inf)
        q = p - np.eye(dim)[0] * 4 + np.eye(dim)[1] * 3
        queries += [q, q.copy(), q.copy()]
        queries[-2][0] = np.nextafter(q[0], -np.inf)
        queries[-1][0] = np.nextafter(q[0], np.inf)
    return np.array(owners), np.array(queries)


@pytest.mark.parametrize("scale", [1.0, 2.0 ** 60])  # 2^60: exact scaling, values too large for float32 tiles
def test_near_ties_float32_cannot_resolve(scale):
    owners, queries = _near_ties()
    owners, queries = owners * scale, queries * scale
    expected = np.tile([25.0, 25.0, 25.0 + 2.0 ** -39], 4) * scale ** 2
    assert np.array_equal(reference_radii_sq(owners, 1), expected)
    for block_size in (1, 5, 64):
        radii = knn_radii_sq(owners, [1, 2], block_size=block_size)
        assert np.array_equal(radii[1], expected) and np.array_equal(radii[2], reference_radii_sq(owners, 2))
        families = [Balls(1, True), Balls(1, False), Balls(2, True)]
        in_owners, in_queries = ball_membership(owners, queries, families, [Balls(1, False)],
                                                block_size=block_size, record_pairs=True)
        for balls in families:
            assert_membership_is(in_owners[balls], owners, queries, balls)
        assert_membership_is(in_queries[Balls(1, False)], queries, owners, Balls(1, False))
        # On and 1 ulp inward are inside p's closed ball, 1 ulp outward is not.
        assert in_owners[Balls(1, False)].query_hit.tolist() == [True, False, True] * 4


def test_fp64_tiles_give_the_same_answers(monkeypatch):
    """Features too large for float32 tiles are tiled in fp64 (forced here on ordinary data)."""
    x, q = _features(130, 12, seed=15), _features(90, 12, seed=16, shift=0.1)
    expected = knn_radii_sq(x, [2, 7], block_size=32)
    monkeypatch.setattr(knn, "_FLOAT32_MAX_NORM_SQ", 0.0)
    found = knn_radii_sq(x, [2, 7], block_size=32)
    assert all(np.array_equal(found[k], expected[k]) for k in (2, 7))
    in_x, _ = ball_membership(x, q, [Balls(2, True), Balls(7, False)], block_size=32, record_pairs=True)
    for balls in in_x:
        assert_membership_is(in_x[balls], x, q, balls)


def test_clusters_below_float32_resolution(monkeypatch):
    """Exact duplicates (radius 0), rows whose kept float32 candidates cannot be trusted (rescanned), border pairs
    resolved in batches of a few, and exact distances computed once per distinct pair of rows."""
    monkeypatch.setattr(knn, "_MAX_BORDER_PAIRS", 3)
    monkeypatch.setattr(knn, "_DEDUP_MIN_PAIRS", 1)
    x = _features(120, 24, seed=17)
    rng = np.random.default_rng(18)
    near = x[1] + 1e-7 * rng.random((20, 24))  # distinct in fp64, one point in float32
    owners = np.concatenate([x, np.repeat(x[:1], 20, axis=0), near])
    queries = np.concatenate([_features(90, 24, seed=19, shift=0.1), x[:1], near[:3] + 1e-9, x[5:6] + 1e-9])
    radii = knn_radii_sq(owners, [1, 3, 7], block_size=32)
    assert all(np.array_equal(radii[k], reference_radii_sq(owners, k)) for k in (1, 3, 7))
    families = [Balls(1, True), Balls(3, False), Balls(3, True)]
    in_owners, in_queries = ball_membership(owners, queries, families, [Balls(3, False)], block_size=32,
                                            record_pairs=True)
    for balls in families:
        assert_membership_is(in_owners[balls], owners, queries, balls)
    assert_membership_is(in_queries[Balls(3, False)], queries, owners, Balls(3, False))


@pytest.mark.parametrize("margin", [0, 1])
def test_few_kept_candidates_force_rescans(monkeypatch, margin):
    """With no spare candidates per row, completeness often cannot be shown and rows are rescanned."""
    monkeypatch.setattr(knn, "_CANDIDATE_MARGIN", margin)
    monkeypatch.setattr(knn, "_RESCAN_BATCH_ROWS", 7)
    for x in (_features(200, 6, seed=20), _tie_sets()["integer grid {0,1,2}^4"]):
        radii = knn_radii_sq(x, [1, 4], block_size=48)
        assert all(np.array_equal(radii[k], reference_radii_sq(x, k)) for k in (1, 4))
