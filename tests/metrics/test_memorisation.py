"""AuthPct and C_T: brute-force definitions (nearest neighbours with ties, Mann-Whitney U by pair counts, the
cell-weighted Z), known answers (copies, fresh samples), dgm-eval's conventions, input errors."""
import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from sklearn.cluster import KMeans

from genmetrics.errors import MetricError
from genmetrics.metrics.memorisation import authpct, ct_score, mann_whitney_z, nearest_neighbours


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The canonical squared distances: fp64 sum over coordinates of squared fp64 differences, (n, m)."""
    return ((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(axis=-1)


def _brute_authpct(train: np.ndarray, gen: np.ndarray) -> float:
    within = _sq_dists(train, train)
    np.fill_diagonal(within, np.inf)
    cross = _sq_dists(gen, train)
    nearest = cross.argmin(axis=1)  # the first of equally near training samples
    return 100.0 * np.count_nonzero(within.min(axis=1)[nearest] < cross.min(axis=1)) / len(gen)


def _clusters(n: int, d: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    return centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, d))


def test_nearest_neighbours_exact_with_ties():
    """Integer grid features: many equally near training samples; the lowest index wins, as np.argmin."""
    rng = np.random.default_rng(0)
    refs = rng.integers(0, 3, (300, 6)).astype(np.float64)
    queries = rng.integers(0, 3, (200, 6)).astype(np.float32)
    index, dist = nearest_neighbours(queries, refs)
    cross = _sq_dists(queries, refs)
    assert index.tolist() == cross.argmin(axis=1).tolist()
    assert np.array_equal(dist, cross.min(axis=1))
    x = rng.standard_normal((200, 10))
    y = rng.standard_normal((4200, 10))  # more than one column tile
    index, dist = nearest_neighbours(x, y)
    cross = _sq_dists(x, y)
    assert index.tolist() == cross.argmin(axis=1).tolist() and np.array_equal(dist, cross.min(axis=1))


@pytest.mark.parametrize("grid", [False, True])
def test_authpct_equals_brute_force(grid):
    rng = np.random.default_rng(1)
    if grid:  # ties everywhere, duplicated training samples (d2 = 0), copies in the generated set
        train = rng.integers(0, 4, (400, 5)).astype(np.float64)
        gen = rng.integers(0, 4, (300, 5)).astype(np.float64)
    else:
        train = rng.standard_normal((400, 16))
        near = train[rng.choice(400, 100)] + 0.05 * rng.standard_normal((100, 16))
        gen = np.concatenate([near, train[:50], rng.standard_normal((150, 16))])
    ours = authpct(train, gen)
    assert ours == _brute_authpct(train, gen)
    assert 0.0 < ours < 100.0


def test_authpct_known_answers():
    rng = np.random.default_rng(2)
    train = rng.standard_normal((200, 8))
    assert authpct(train, train[:50]) == 0.0  # exact copies: d1 = 0, never < d2
    assert authpct(train, train[:50] + 1e-3) == 0.0  # much closer than any training neighbour
    assert authpct(train, rng.standard_normal((40, 8)) + 50.0) == 100.0
    assert authpct(train, np.concatenate([train[:10], train[:30] + 50.0])) == 75.0  # a percentage, not a fraction
    # A tie d1 = d2 is not authentic: training 0 and 2 (nearest neighbours of each other), generated 4 and -2.
    train_1d = np.array([[0.0], [2.0], [10.0]])
    assert authpct(train_1d, np.array([[4.0], [-2.0], [-2.5]])) == pytest.approx(100 / 3)


def _brute_ct(train, test, gen, n_cells, seed, min_gen):
    """C_T from its definition: cells from the same seeded KMeans, nearest training distances per cell by brute
    force, U by counting pairs, Meehan's Z, test-share weights over the cells with enough generated samples."""
    km = KMeans(n_clusters=n_cells, n_init=10, random_state=seed).fit(train)
    cells = [km.predict(x) for x in (train, test, gen)]
    zs, weights = [], []
    for i in range(n_cells):
        t, p, q = train[cells[0] == i], test[cells[1] == i], gen[cells[2] == i]
        if len(q) < min_gen:
            continue
        lp, lq = np.sqrt(_sq_dists(p, t).min(axis=1)), np.sqrt(_sq_dists(q, t).min(axis=1))
        u = (lq[:, None] > lp[None, :]).sum() + 0.5 * (lq[:, None] == lp[None, :]).sum()
        n, m = len(p), len(q)
        zs.append((u - (n * m / 2 - 0.5)) / np.sqrt(n * m * (n + m + 1) / 12))
        weights.append(len(p) / len(test))
    return float(np.dot(weights, zs) / np.sum(weights))


def _ct_data(seed: int, d: int, copy: float, n_train=600, n_test=300, n_gen=400):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, d)) * 4.0
    train, test, gen = (_clusters(n, d, rng, centres) for n in (n_train, n_test, n_gen))
    copied = int(copy * n_gen)
    gen[:copied] = train[:copied] + 0.05 * rng.standard_normal((copied, d))
    return train, test, gen


@pytest.mark.parametrize("copy", [0.0, 0.4])
def test_ct_equals_brute_force(copy):
    train, test, gen = _ct_data(3, 12, copy)
    ours = ct_score(train, test, gen, seed=4)
    assert ours == pytest.approx(_brute_ct(train, test, gen, 3, 4, 21), rel=1e-12, abs=1e-12)
    ours_5 = ct_score(train, test, gen, n_cells=5, seed=4, min_gen_per_cell=50)
    assert ours_5 == pytest.approx(_brute_ct(train, test, gen, 5, 4, 50), rel=1e-12, abs=1e-12)


def test_ct_projects_onto_64_principal_axes():
    """d = 80 > 64: the brute force projects with an SVD of the centred training set; the signs of its axes
    change no distance."""
    train, test, gen = _ct_data(5, 80, 0.2, n_train=600, n_test=300, n_gen=300)
    mean = train.mean(axis=0)
    axes = np.linalg.svd(train - mean, full_matrices=False)[2][:64].T
    projected = [(x - mean) @ axes for x in (train, test, gen)]
    assert ct_score(train, test, gen, seed=6) == pytest.approx(_brute_ct(*projected, 3, 6, 21), rel=1e-9)


def test_ct_signs_copying_and_fresh_samples():
    train, test, gen = _ct_data(7, 10, 0.0)
    fresh = ct_score(train, test, gen)
    copying = ct_score(*_ct_data(7, 10, 0.5))
    assert abs(fresh) < 2.0  # a fresh sample of the same distribution: Z near 0
    assert copying < -4.0  # generated samples closer to the training set than held-out ones
    assert ct_score(train, test, gen + 0.8) > 4.0  # farther: underfitting
    assert ct_score(train, test, gen, seed=0) == fresh  # seeded, deterministic


def test_ct_leaves_out_cells_with_few_generated_samples():
    """One cell holds only 20 generated samples (dgm-eval: a share above tau = 20 / m, so 21 or more)."""
    train, test, gen = _ct_data(8, 6, 0.0)
    cells = KMeans(n_clusters=3, n_init=10, random_state=0).fit(train).predict(gen)
    sparse = np.concatenate([np.flatnonzero(cells == 0)[:20], np.flatnonzero(cells != 0)])
    ours = ct_score(train, test, gen[sparse])
    assert ours == pytest.approx(_brute_ct(train, test, gen[sparse], 3, 0, 21), rel=1e-12)
    assert ours != pytest.approx(_brute_ct(train, test, gen[sparse], 3, 0, 20), rel=1e-6)


def test_mann_whitney_z_matches_scipy_with_ties():
    rng = np.random.default_rng(9)
    a, b = rng.integers(0, 6, 70).astype(float), rng.integers(0, 6, 50).astype(float)
    u = mannwhitneyu(a, b, alternative="less").statistic  # U of the first sample, as Meehan's code uses it
    assert mann_whitney_z(a, b) == pytest.approx((u - (70 * 50 / 2 - 0.5)) / np.sqrt(70 * 50 * 121 / 12), rel=1e-14)
    assert mann_whitney_z(np.zeros(4), np.ones(4)) == pytest.approx((0 - 7.5) / np.sqrt(16 * 9 / 12))


def test_errors_name_the_bad_input():
    train, test, gen = _ct_data(10, 4, 0.0)
    with pytest.raises(MetricError, match="no C_T cell holds 21 or more of the 15 generated samples"):
        ct_score(train, test, gen[:15])
    with pytest.raises(MetricError, match="feats_train has 2 samples, fewer than n_cells=3"):
        ct_score(train[:2], test, gen)
    cells = KMeans(n_clusters=3, n_init=10, random_state=0).fit(train).predict(test)
    with pytest.raises(MetricError, match="C_T cell .* holds no test samples; lower n_cells"):
        ct_score(train, test[cells == 0], gen)
    with pytest.raises(MetricError, match="feats_train has d=4, feats_gen has d=5"):
        ct_score(train, test, np.zeros((30, 5)))
    with pytest.raises(MetricError, match="n_cells must be an integer >= 1"):
        ct_score(train, test, gen, n_cells=0)
    with pytest.raises(MetricError, match="feats_train has 1 sample"):
        authpct(train[:1], gen)
    with pytest.raises(MetricError, match="feats_train has d=4, feats_gen has d=3"):
        authpct(train, np.zeros((3, 3)))
