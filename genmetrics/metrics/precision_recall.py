"""k-NN manifold metrics: precision/recall (Kynkäänniemi et al. 2019), density/coverage (Naeem et al. 2020).

Definitions. The ball of a sample has squared radius = squared distance to its k-th nearest other sample
of its own set (torch-fidelity's ``kthvalue(k + 1)`` over a row holding the zero self-distance). For precision
and recall a point is inside a ball when its squared distance is ``<=`` that radius, as in torch-fidelity's
``metric_prc.py`` (where features_1 = generated, features_2 = real); for density and coverage when it is
``<`` the radius, as in Naeem et al.'s reference code (``prdc.compute_prdc``), so a point on a ball's boundary
counts for precision but not for density: two identical sets of distinct points have density 1, and samples
with k or more exact duplicates have radius 0 and hold no point for density/coverage. Every squared distance is
the canonical fp64 value D(x, y) = sum_t (x_t - y_t)^2 evaluated from the input values (float32 input widens
exactly): fp64 differences, squares and numpy's pairwise sum. Every radius and decision equals the one a brute-force
evaluation of D on all pairs gives, whatever ``block_size``.

The radii and ball memberships come from the exact, tiled k-NN engine ``genmetrics.metrics.knn`` (float32 GEMM
tiles with a rigorous error bound, border pairs recomputed exactly). One pass over the cross pairs serves
precision, recall, density and coverage (``manifold_metrics`` shares it between them). Memory: the validated
inputs (float32 stays float32), one augmented float32 copy of each set and ``block_size`` x ``block_size`` tiles;
never n x m. Fractions are exact counts / n; torch-fidelity returns the same fraction rounded to float32.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from genmetrics.errors import MetricError
from genmetrics.metrics.knn import DEFAULT_BLOCK_SIZE, Balls, Membership, Memberships, ball_membership
from genmetrics.stats import as_features, check_same_dim

__all__ = ["DEFAULT_BLOCK_SIZE", "ManifoldIncidence", "ManifoldMetrics", "density_coverage", "manifold_incidence",
           "manifold_metrics", "precision_recall"]


@dataclass(frozen=True)
class ManifoldMetrics:
    """Precision, recall, density and coverage of a generated set against a reference set."""

    precision: float
    recall: float
    density: float
    coverage: float


def _precision_recall_balls(k: int) -> Balls:
    """Balls of precision and recall: a point on the boundary is inside (``<=``, torch-fidelity)."""
    return Balls(k, strict=False)


def _density_coverage_balls(k: int) -> Balls:
    """Balls of density and coverage: a point on the boundary is outside (``<``, prdc)."""
    return Balls(k, strict=True)


def _precision(in_ref_balls: Membership) -> float:
    """Fraction of generated samples inside at least one reference ball."""
    return float(in_ref_balls.query_hit.mean())


def _recall(in_gen_balls: Membership) -> float:
    """Fraction of reference samples inside at least one generated ball."""
    return float(in_gen_balls.query_hit.mean())


def _density(in_ref_balls: Membership) -> float:
    """(generated, reference ball) pairs inside / (k * number of generated samples); can exceed 1."""
    return in_ref_balls.inside_pairs / (in_ref_balls.balls.k * len(in_ref_balls.query_hit))


def _coverage(in_ref_balls: Membership) -> float:
    """Fraction of reference balls holding at least one generated sample."""
    return float(in_ref_balls.owner_hit.mean())


def _memberships(feats_ref: Any, feats_gen: Any, ref_balls: list[Balls], gen_balls: list[Balls], block_size: int,
                 record_pairs: bool = False) -> tuple[Memberships, Memberships]:
    """Generated samples in reference balls and reference samples in generated balls, from one shared pass.

    The arguments are checked here first, so that messages name the roles and follow this module's rules
    (knn.ball_membership checks them again, without copying)."""
    ref_ks = sorted({balls.k for balls in ref_balls})
    gen_k = max((balls.k for balls in gen_balls), default=None)
    ref, gen = _checked(feats_ref, feats_gen, ref_ks, gen_k, block_size)
    return ball_membership(ref, gen, ref_balls, gen_balls, block_size=block_size, record_pairs=record_pairs,
                           names=("feats_ref", "feats_gen"))


def _checked(feats_ref: Any, feats_gen: Any, ref_ks: list[int], gen_k: int | None, block_size: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Validate both sets, the k values and block_size; a set with radii must hold more than its k samples (the
    reference at least 2, the generated set at least 1)."""
    for k in [*ref_ks, *([] if gen_k is None else [gen_k])]:
        if k < 1:
            raise MetricError(f"k must be >= 1, got {k}")
    if block_size < 1:
        raise MetricError(f"block_size must be >= 1, got {block_size}")
    ref = as_features(feats_ref, "feats_ref", keep_float32=True)
    gen = as_features(feats_gen, "feats_gen", min_rows=1, keep_float32=True)
    check_same_dim(ref, gen, "feats_ref", "feats_gen")
    with_radii = [("feats_ref", ref, max(ref_ks))] + ([] if gen_k is None else [("feats_gen", gen, gen_k)])
    for name, feats, k in with_radii:
        if len(feats) <= k:
            raise MetricError(f"{name} has {len(feats)} samples but k={k} needs at least k+1={k + 1}; "
                              "lower k or add samples")
    return ref, gen


def precision_recall(feats_ref: Any, feats_gen: Any, k: int = 3, *,
                     block_size: int = DEFAULT_BLOCK_SIZE) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of ``feats_gen`` (m, d) vs ``feats_ref`` (n, d).

    precision = fraction of generated samples inside at least one real ball; recall = fraction of
    real samples inside at least one generated ball. Both sets need more than k samples. Equal to
    torch-fidelity's ``prc_features_to_metric(feats_gen, feats_ref, prc_neighborhood=k)`` up to
    its float32 rounding of the fractions (and of distances within float32 rounding of a boundary).
    """
    balls = _precision_recall_balls(k)
    in_ref, in_gen = _memberships(feats_ref, feats_gen, [balls], [balls], block_size)
    return _precision(in_ref[balls]), _recall(in_gen[balls])


def density_coverage(feats_ref: Any, feats_gen: Any, k: int = 5, *,
                     block_size: int = DEFAULT_BLOCK_SIZE) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) of ``feats_gen`` Y (m, d) vs ``feats_ref`` X (n, d).

    density = 1/(k m) sum_j sum_i 1[|Y_j - X_i| < NND_k(X_i)] (can exceed 1);
    coverage = 1/n sum_i 1[exists j: |Y_j - X_i| < NND_k(X_i)]. X needs more than k samples. The strict ``<``
    of the authors' ``prdc.compute_prdc``: equal to it, ties included.
    """
    balls = _density_coverage_balls(k)
    in_ref, _ = _memberships(feats_ref, feats_gen, [balls], [], block_size)
    return _density(in_ref[balls]), _coverage(in_ref[balls])


def manifold_metrics(feats_ref: Any, feats_gen: Any, *, k_pr: int = 3, k_dc: int = 5,
                     block_size: int = DEFAULT_BLOCK_SIZE) -> ManifoldMetrics:
    """``precision_recall(k=k_pr)`` and ``density_coverage(k=k_dc)`` of ``feats_gen`` (m, d) vs ``feats_ref``
    (n, d) from shared passes: reference radii for both k in one pass, one pass over the cross pairs."""
    pr, dc = _precision_recall_balls(k_pr), _density_coverage_balls(k_dc)
    in_ref, in_gen = _memberships(feats_ref, feats_gen, [pr, dc], [pr], block_size)
    return ManifoldMetrics(precision=_precision(in_ref[pr]), recall=_recall(in_gen[pr]),
                           density=_density(in_ref[dc]), coverage=_coverage(in_ref[dc]))


@dataclass(frozen=True)
class ManifoldIncidence:
    """Which sample lies in which k-NN ball, with the radii of the full sets: enough to evaluate precision,
    recall, density and coverage for any re-weighting of the generated samples (bootstrap replicates).

    ``ref_balls`` (ref owner, gen) and ``gen_balls`` (gen owner, ref): index pairs (p,) with the second
    sample inside the first's ball; reference balls have k = ``k_dc``, generated ones k = ``k_pr``.
    """

    n_ref: int
    n_gen: int
    k_pr: int
    k_dc: int
    gen_in_ref: np.ndarray  # (n_gen,) bool: inside at least one reference k_pr-ball (precision)
    ref_balls: tuple[np.ndarray, np.ndarray]
    gen_balls: tuple[np.ndarray, np.ndarray]

    def metrics(self) -> ManifoldMetrics:
        """The four metrics of the full sets: equal to ``manifold_metrics``."""
        covered = np.zeros(self.n_ref, dtype=bool)
        covered[self.gen_balls[1]] = True
        owning = np.zeros(self.n_ref, dtype=bool)
        owning[self.ref_balls[0]] = True
        return ManifoldMetrics(precision=float(self.gen_in_ref.mean()), recall=float(covered.mean()),
                               density=len(self.ref_balls[0]) / (self.k_dc * self.n_gen),
                               coverage=float(owning.mean()))


def manifold_incidence(feats_ref: Any, feats_gen: Any, *, k_pr: int = 3, k_dc: int = 5,
                       block_size: int = DEFAULT_BLOCK_SIZE) -> ManifoldIncidence:
    """The ball memberships behind ``manifold_metrics`` of ``feats_gen`` (m, d) vs ``feats_ref`` (n, d).

    Memory grows with the number of inside pairs (about k_dc m + k_pr n for similar sets; up to n m when one
    set's balls swallow the other)."""
    pr, dc = _precision_recall_balls(k_pr), _density_coverage_balls(k_dc)
    in_ref, in_gen = _memberships(feats_ref, feats_gen, [pr, dc], [pr], block_size, record_pairs=True)
    return ManifoldIncidence(n_ref=len(in_gen[pr].query_hit), n_gen=len(in_gen[pr].owner_hit), k_pr=k_pr, k_dc=k_dc,
                             gen_in_ref=in_ref[pr].query_hit, ref_balls=in_ref[dc].pairs,
                             gen_balls=in_gen[pr].pairs)
