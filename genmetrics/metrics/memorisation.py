"""Memorisation metrics: AuthPct (Alaa et al. 2022) and the C_T data-copying score (Meehan et al. 2020), as
dgm-eval computes them (layer6ai-labs/dgm-eval: ``metrics/authpct.py`` ``compute_authpct``, ``metrics/ct.py``
``compute_CTscore``, itself from casey-meehan/data-copying).

Distances are Euclidean, from the canonical fp64 squared distance D (sum of squared fp64 differences, as
``genmetrics.metrics.knn``); nearest neighbours are exact for it (fp64 tiles with an error bound, the few pairs
that may be nearest recomputed exactly), ties going to the lowest index (``torch.min``'s and ``np.argmin``'s rule).
dgm-eval computes them in float32 (``torch.cdist``) or with sklearn's ``NearestNeighbors``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import eigh
from scipy.stats import rankdata
from sklearn.cluster import KMeans

from genmetrics.errors import MetricError
from genmetrics.metrics.knn import knn_radii_sq
from genmetrics.metrics.realism import exact_sq_distances, sq_distance_error_bound
from genmetrics.stats import as_features, check_same_dim

DEFAULT_CELLS = 3  # dgm-eval: KMeans(n_clusters=3, n_init=10)
DEFAULT_N_INIT = 10
DEFAULT_PCA_DIM = 64  # dgm-eval: PCA to 64 components when d > 64
DEFAULT_MIN_GEN_PER_CELL = 21  # dgm-eval: tau = 20 / m and Q_m(cell) > tau, i.e. more than 20 generated samples
_BLOCK_ROWS = 1024  # query rows per tile
_BLOCK_COLS = 4096  # reference columns per tile


def authpct(feats_train: Any, feats_gen: Any) -> float:
    """AuthPct: the percentage (0 .. 100) of generated samples ``feats_gen`` (N_gen, d) that are authentic with
    respect to the training samples ``feats_train`` (N_train, d), N_train >= 2.

    For a generated x with nearest training sample t (the lowest index among equally near ones), d1 = d(x, t) and
    d2 = d(t, its nearest other training sample; a duplicate of t counts, at 0); x is authentic when d2 < d1
    (strict: d2 = d1 is not authentic, so an exact copy of a training sample never is). As dgm-eval's
    ``compute_authpct``: percent, ``<``, ties to the first index; it rounds the percentage to float32 and its
    float32 ``cdist`` decides near ties its own way.
    """
    train = as_features(feats_train, "feats_train", min_rows=2, keep_float32=True)
    gen = as_features(feats_gen, "feats_gen", min_rows=1, keep_float32=True)
    check_same_dim(train, gen, "feats_train", "feats_gen")
    nearest, d1_sq = nearest_neighbours(gen, train)
    d2_sq = knn_radii_sq(train, [1])[1]  # exact: the squared distance of each training sample to its nearest other
    return float(100.0 * np.count_nonzero(d2_sq[nearest] < d1_sq) / len(gen))


def ct_score(feats_train: Any, feats_test: Any, feats_gen: Any, n_cells: int = DEFAULT_CELLS, seed: int = 0, *,
             n_init: int = DEFAULT_N_INIT, pca_dim: int | None = DEFAULT_PCA_DIM,
             min_gen_per_cell: int = DEFAULT_MIN_GEN_PER_CELL) -> float:
    """C_T (Meehan et al. 2020) of generated ``feats_gen`` (m, d) with training ``feats_train`` (l, d) and held-out
    test ``feats_test`` (n, d) samples: < 0 suggests data copying, > 0 underfitting, ~0 neither.

    1. When d > ``pca_dim``: project all three sets onto the top ``pca_dim`` principal axes of the training set
       (centred on its mean; exact, from the eigendecomposition of its covariance).
    2. Cells: ``sklearn.cluster.KMeans(n_clusters=n_cells, n_init=n_init, random_state=seed)`` fitted on the
       training set; every sample goes to the cell ``predict`` gives it (training samples included).
    3. Per cell pi: L(x) = Euclidean distance of x to its nearest training sample of the same cell, for the test
       (L_P) and generated (L_Q) samples of the cell; U = #{(q, p): L_Q > L_P} + #{ties} / 2 (Mann-Whitney U of
       L_Q), and Z_pi = (U - (n_pi m_pi / 2 - 0.5)) / sqrt(n_pi m_pi (n_pi + m_pi + 1) / 12) (Meehan's Z, with its
       0.5 and without a tie correction).
    4. C_T = sum_pi P_n(pi) Z_pi / sum_pi P_n(pi) over the cells with at least ``min_gen_per_cell`` generated
       samples (dgm-eval: a share above tau = 20 / m), P_n(pi) the share of test samples in the cell.

    Deviations from dgm-eval: explicit KMeans seed; an exact PCA (dgm-eval's sklearn ``PCA`` picks its randomized
    solver for large inputs, unseeded); a cell without test or training samples, or no cell with enough
    generated samples, raises MetricError (dgm-eval raises, mis-indexes, or returns NaN).
    """
    if int(n_cells) != n_cells or n_cells < 1:
        raise MetricError(f"C_T n_cells must be an integer >= 1, got {n_cells}")
    if int(min_gen_per_cell) != min_gen_per_cell or min_gen_per_cell < 1:
        raise MetricError(f"C_T min_gen_per_cell must be an integer >= 1, got {min_gen_per_cell}")
    if int(n_init) != n_init or n_init < 1:
        raise MetricError(f"C_T n_init must be an integer >= 1 (k-means restarts), got {n_init}")
    if pca_dim is not None and (int(pca_dim) != pca_dim or pca_dim < 1):
        raise MetricError(f"C_T pca_dim must be an integer >= 1 or None (no projection), got {pca_dim}")
    n_cells, min_gen_per_cell = int(n_cells), int(min_gen_per_cell)
    train = as_features(feats_train, "feats_train", min_rows=1)
    test = as_features(feats_test, "feats_test", min_rows=1)
    gen = as_features(feats_gen, "feats_gen", min_rows=1)
    check_same_dim(train, test, "feats_train", "feats_test")
    check_same_dim(train, gen, "feats_train", "feats_gen")
    if len(train) < n_cells:
        raise MetricError(f"feats_train has {len(train)} samples, fewer than n_cells={n_cells}; lower n_cells")
    if pca_dim is not None and train.shape[1] > pca_dim:
        train, test, gen = _pca_project(train, (train, test, gen), int(pca_dim))
    kmeans = KMeans(n_clusters=n_cells, n_init=int(n_init), random_state=seed).fit(train)
    cells = [kmeans.predict(x) for x in (train, test, gen)]
    counts = [np.bincount(c, minlength=n_cells) for c in cells]
    for name, count in (("training", counts[0]), ("test", counts[1])):
        if (count == 0).any():
            raise MetricError(f"C_T cell {int(np.argmin(count))} of n_cells={n_cells} holds no {name} samples; "
                              "lower n_cells or add samples")
    used = np.flatnonzero(counts[2] >= min_gen_per_cell)
    if len(used) == 0:
        raise MetricError(f"no C_T cell holds {min_gen_per_cell} or more of the {len(gen)} generated samples; "
                          "add generated samples or lower min_gen_per_cell")
    z = np.array([_cell_z(train[cells[0] == i], test[cells[1] == i], gen[cells[2] == i]) for i in used])
    weights = counts[1][used] / len(test)
    return float(weights @ z / weights.sum())


def mann_whitney_z(l_gen: np.ndarray, l_test: np.ndarray) -> float:
    """Meehan et al.'s Z-scored Mann-Whitney U of the generated distances ``l_gen`` (m,) against the test
    distances ``l_test`` (n,): U = sum of the generated ranks (average ranks for ties) - m (m + 1) / 2, Z = (U -
    n m / 2 + 0.5) / sqrt(n m (n + m + 1) / 12)."""
    m, n = len(l_gen), len(l_test)
    ranks = rankdata(np.concatenate([l_gen, l_test]))
    u = ranks[:m].sum() - m * (m + 1) / 2
    return float((u - (n * m / 2 - 0.5)) / np.sqrt(n * m * (n + m + 1) / 12))


def _cell_z(train: np.ndarray, test: np.ndarray, gen: np.ndarray) -> float:
    """Z of one cell from the distances of its test and generated samples to its nearest training sample."""
    l_test = np.sqrt(nearest_neighbours(test, train)[1])
    l_gen = np.sqrt(nearest_neighbours(gen, train)[1])
    return mann_whitney_z(l_gen, l_test)


def _pca_project(train: np.ndarray, sets: tuple[np.ndarray, ...], dim: int) -> list[np.ndarray]:
    """Each of ``sets`` (n_i, d) centred on the training mean and projected onto the ``dim`` eigenvectors of the
    training covariance with the largest eigenvalues (sklearn's ``PCA(dim).fit(train).transform``, up to the
    signs of the axes, which change no distance)."""
    mean = train.mean(axis=0)
    centred = train - mean
    _, vectors = eigh(centred.T @ centred, driver="evd", check_finite=False)
    axes = vectors[:, ::-1][:, :dim]
    return [(x - mean) @ axes for x in sets]


def nearest_neighbours(queries: np.ndarray, refs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``queries`` (m, d): the index (m,) int64 of its nearest row of ``refs`` (n, d) (the lowest
    index among equally near ones) and that canonical squared distance (m,) fp64, exact.

    fp64 tiles give D~ with |D~ - D| <= e (``sq_distance_error_bound``); a row's smallest upper bound D~ + e only
    falls from tile to tile, so a pair whose lower bound D~ - e exceeds it is never nearest; the others are
    filtered once more by the final bound and recomputed exactly.
    """
    centre = (queries.mean(axis=0, dtype=np.float64) + refs.mean(axis=0, dtype=np.float64)) / 2
    refs_c = np.subtract(refs, centre, dtype=np.float64)
    refs_norm = np.einsum("ij,ij->i", refs_c, refs_c)
    slack = sq_distance_error_bound(refs.shape[1])
    index, dist = np.empty(len(queries), dtype=np.int64), np.empty(len(queries))
    for start in range(0, len(queries), _BLOCK_ROWS):
        rows = slice(start, min(start + _BLOCK_ROWS, len(queries)))
        q = np.subtract(queries[rows], centre, dtype=np.float64)
        q_norm = np.einsum("ij,ij->i", q, q)
        best = np.full(len(q), np.inf)  # the smallest upper bound of D so far
        cand_rows, cand_cols, cand_lower = [], [], []
        for col in range(0, len(refs), _BLOCK_COLS):
            cols = slice(col, min(col + _BLOCK_COLS, len(refs)))
            tile = q @ refs_c[cols].T
            tile *= -2.0
            tile += q_norm[:, None]
            tile += refs_norm[None, cols]
            err = slack * (q_norm[:, None] + refs_norm[None, cols]) + 1e-300
            np.minimum(best, (tile + err).min(axis=1), out=best)
            tile -= err  # lower bounds
            r, c = np.nonzero(tile <= best[:, None])
            cand_rows.append(r)
            cand_cols.append(c + col)
            cand_lower.append(tile[r, c])
        r, c, lower = np.concatenate(cand_rows), np.concatenate(cand_cols), np.concatenate(cand_lower)
        keep = lower <= best[r]
        r, c = r[keep], c[keep]
        exact = exact_sq_distances(queries[rows], refs, r, c)
        order = np.lexsort((c, exact, r))  # per row: by exact distance, then by index
        r, c, exact = r[order], c[order], exact[order]
        first = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
        index[rows], dist[rows] = c[first], exact[first]
    return index, dist
