"""Every metric in one place: a ``MetricDef`` says what a metric needs, what it outputs, how it is labelled, which
direction is better, how it is computed and how ``compare`` resamples it.

``score``, ``compare``, ``Evaluator``, ``report`` and the CLI's ``--metrics`` help iterate over ``METRICS``.
Adding a metric = one module in ``genmetrics/metrics/`` (a pure function on arrays) + one ``MetricDef`` below
(+ tests); nothing else changes. The compute functions take a ``MetricInputs`` (the arrays of one generated side
and of the reference) and return ``{output key: value}``; the replicate functions take a ``BootstrapInputs`` and
return ``{row: (value, replicates (B,))}``.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genmetrics.errors import ConfigError, MetricError, spell
from genmetrics.metrics import bootstrap
from genmetrics.metrics.cmmd import DEFAULT_SCALE, DEFAULT_SIGMA, cmmd
from genmetrics.metrics.fd_infinity import fd_infinity
from genmetrics.metrics.fid import fid_from_stats
from genmetrics.metrics.inception_score import inception_score, shuffle_provenance
from genmetrics.metrics.kid import kid, polynomial_kernel
from genmetrics.metrics.memorisation import (
    DEFAULT_CELLS,
    DEFAULT_MIN_GEN_PER_CELL,
    DEFAULT_PCA_DIM,
    authpct,
    ct_score,
)
from genmetrics.metrics.precision_recall import (
    ManifoldIncidence,
    ManifoldMetrics,
    density_coverage,
    manifold_incidence,
    manifold_metrics,
    precision_recall,
)
from genmetrics.metrics.realism import realism_scores
from genmetrics.metrics.vendi import per_class_vendi, vendi_score


@dataclass(frozen=True)
class MetricOptions:
    """Settings of the metrics (not of the features).

    Args:
        kid_subsets: KID's number of random subsets.
        kid_subset_size: images per KID subset (capped at the smaller side).
        pr_k: k of k-NN precision/recall.
        dc_k: k of density/coverage.
        is_splits: Inception Score splits.
        cmmd_sigma: bandwidth of CMMD's Gaussian kernel.
        seed: seed of KID's subsets.
    """

    kid_subsets: int = 100
    kid_subset_size: int = 1000
    pr_k: int = 3
    dc_k: int = 5
    is_splits: int = 10
    cmmd_sigma: float = DEFAULT_SIGMA
    seed: int = 0


@dataclass
class MetricInputs:
    """The arrays one generated side offers the metrics: mean (D,), covariance (D, D), features (N, D) when a
    metric needs them, logits (N, C) when 'is' is wanted, and the same of the reference (None without one)."""

    mu_gen: np.ndarray
    sigma_gen: np.ndarray
    feats_gen: np.ndarray | None
    logits_gen: np.ndarray | None
    mu_ref: np.ndarray | None = None
    sigma_ref: np.ndarray | None = None
    feats_ref: np.ndarray | None = None
    options: MetricOptions = MetricOptions()
    wanted: tuple[str, ...] = ()
    mu_s_gen: np.ndarray | None = None  # sFID: the spatial features' mean (2023,), covariance, rows (N, 2023)
    sigma_s_gen: np.ndarray | None = None
    spatial_gen: np.ndarray | None = None
    mu_s_ref: np.ndarray | None = None
    sigma_s_ref: np.ndarray | None = None
    feats_train: np.ndarray | None = None  # memorisation metrics: the training set's features (N_train, D)
    labels_gen: np.ndarray | None = None  # per-class metrics: the class label (N,) of each generated row

    @functools.cached_property
    def realism(self) -> np.ndarray:
        """The realism score (N,) of each generated row (k = pr_k), finite; MetricError for copies of reference
        samples (an infinite score)."""
        scores = realism_scores(self.feats_ref, self.feats_gen, k=self.options.pr_k)
        copies = int(np.isinf(scores).sum())
        if copies:
            raise MetricError(f"realism: {copies} generated sample(s) coincide with a reference sample (an infinite "
                              "realism score): the generated set holds copies of reference images")
        return scores

    @functools.cached_property
    def manifold(self) -> ManifoldMetrics | None:
        """Precision, recall, density and coverage at once when both 'pr' and 'dc' are wanted (they share the
        reference radii and the pass over cross pairs); None otherwise."""
        if not {"pr", "dc"} <= set(self.wanted):
            return None
        return manifold_metrics(self.feats_ref, self.feats_gen, k_pr=self.options.pr_k, k_dc=self.options.dc_k)


@dataclass
class BootstrapInputs(MetricInputs):
    """``MetricInputs`` plus the resampling of one side for ``compare``: ``indices`` (B, N) drawn with
    replacement, their ``counts`` (B, N), the torch ``device`` of FID's replicates, ``done`` called once per
    replicate of a per-replicate metric, and ``shared``, a cache kept across both sides (reference terms)."""

    indices: np.ndarray | None = None
    counts: np.ndarray | None = None
    device: str = "cpu"
    done: Callable[[], Any] = lambda: None
    shared: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def incidence(self) -> ManifoldIncidence:
        """Which reference balls hold each generated sample and vice versa (both k), for pr/dc replicates."""
        return manifold_incidence(self.feats_ref, self.feats_gen, k_pr=self.options.pr_k, k_dc=self.options.dc_k)

    @functools.cached_property
    def manifold_replicates(self) -> dict[str, np.ndarray]:
        """Replicates (B,) of precision, recall, density and coverage, from the one incidence."""
        return bootstrap.manifold_replicates(self.incidence, self.counts)


@dataclass(frozen=True)
class MetricDef:
    """One metric.

    Attributes:
        name: the ``metrics=`` / ``--metrics`` name.
        help: one phrase for the CLI help.
        outputs: ``score``'s output keys -> table labels, in output order.
        rows: ``compare``'s rows -> table labels (empty: compare does not take it).
        higher_is_better: the direction of every output and row.
        needs_features: needs feature matrices, not only mean/covariance (of the generated side, and of the
            reference unless ``reference_moments_only``: then stats files must hold them).
        reference_moments_only: of the reference it needs only mean and covariance (fd_inf).
        needs_train: needs the features of the training set (``train=`` / ``--train``) beside the reference.
        needs_labels: needs the class label of each generated image (``labels=`` / ``--labels``).
        needs_reference: needs a reference side.
        needs_logits: needs classifier logits of the generated side.
        needs_captions: needs captions (computed by ``genmetrics.clip_eval``, not by ``compute``).
        needs_spatial: needs sFID's spatial features (TF-Inception's Mixed_6d, in the pool3 pass).
        extractors: the extractors whose features it is defined on (None: any); ``unsupported`` says why.
        compute: ``MetricInputs -> {output: value}``.
        replicate: ``BootstrapInputs -> {row: (value, replicates)}`` for compare.
        settings: ``MetricOptions -> provenance entries`` of score/Evaluator (compare_settings for compare).
        fraction_rows: rows whose values lie in [0, 1], so a difference lies in [-1, 1].
        no_compare: why ``compare`` does not take it (when it has no ``replicate``).
    """

    name: str
    help: str
    outputs: Mapping[str, str]
    rows: Mapping[str, str] = field(default_factory=dict)
    higher_is_better: bool = False
    needs_features: bool = False
    reference_moments_only: bool = False
    needs_train: bool = False
    needs_labels: bool = False
    needs_reference: bool = True
    needs_logits: bool = False
    needs_captions: bool = False
    needs_spatial: bool = False
    extractors: tuple[str, ...] | None = None
    unsupported: str = ""
    compute: Callable[[MetricInputs], dict[str, float]] | None = None
    replicate: Callable[[BootstrapInputs], dict[str, tuple[float, np.ndarray]]] | None = None
    settings: Callable[[MetricOptions], dict[str, Any]] = lambda options: {}
    compare_settings: Callable[[MetricOptions], dict[str, Any]] | None = None
    fraction_rows: tuple[str, ...] = ()
    no_compare: str = ""

    def change_bound(self, row: str) -> float:
        """The largest difference of ``row`` that can occur or matter (compare's --fail-if bounds)."""
        return 1.0 if row in self.fraction_rows else 1e6


# --- compute functions: MetricInputs -> {output key: value} ---------------------------------------------------

def _fid(inputs: MetricInputs) -> dict[str, float]:
    return {"fid": fid_from_stats(inputs.mu_gen, inputs.sigma_gen, inputs.mu_ref, inputs.sigma_ref)}


def _sfid(inputs: MetricInputs) -> dict[str, float]:
    return {"sfid": fid_from_stats(inputs.mu_s_gen, inputs.sigma_s_gen, inputs.mu_s_ref, inputs.sigma_s_ref)}


def _kid(inputs: MetricInputs) -> dict[str, float]:
    options = inputs.options
    mean, std = kid(inputs.feats_gen, inputs.feats_ref, subsets=options.kid_subsets,
                    subset_size=options.kid_subset_size, seed=options.seed)
    return {"kid_mean": mean, "kid_std": std}


def _is(inputs: MetricInputs) -> dict[str, float]:
    mean, std = inception_score(inputs.logits_gen, splits=inputs.options.is_splits)
    return {"is_mean": mean, "is_std": std}


def _pr(inputs: MetricInputs) -> dict[str, float]:
    found = inputs.manifold
    if found is None:
        precision, recall = precision_recall(inputs.feats_ref, inputs.feats_gen, k=inputs.options.pr_k)
        return {"precision": precision, "recall": recall}
    return {"precision": found.precision, "recall": found.recall}


def _dc(inputs: MetricInputs) -> dict[str, float]:
    found = inputs.manifold
    if found is None:
        density, coverage = density_coverage(inputs.feats_ref, inputs.feats_gen, k=inputs.options.dc_k)
        return {"density": density, "coverage": coverage}
    return {"density": found.density, "coverage": found.coverage}


def _cmmd(inputs: MetricInputs) -> dict[str, float]:
    return {"cmmd": cmmd(inputs.feats_gen, inputs.feats_ref, sigma=inputs.options.cmmd_sigma)}


def _authpct(inputs: MetricInputs) -> dict[str, float]:
    return {"authpct": authpct(inputs.feats_train, inputs.feats_gen)}


def _ct(inputs: MetricInputs) -> dict[str, float]:
    return {"ct": ct_score(inputs.feats_train, inputs.feats_ref, inputs.feats_gen, seed=inputs.options.seed)}


def _fd_inf(inputs: MetricInputs) -> dict[str, float]:
    found = fd_infinity(inputs.feats_gen, inputs.mu_ref, inputs.sigma_ref, seed=inputs.options.seed)
    return {"fd_inf": found.value, "fd_inf_slope": found.slope}


def _vendi(inputs: MetricInputs) -> dict[str, float]:
    return {"vendi": vendi_score(inputs.feats_gen)}


def _vendi_per_class(inputs: MetricInputs) -> dict[str, float]:
    per_class = per_class_vendi(inputs.feats_gen, inputs.labels_gen)
    return {"vendi_per_class": float(np.mean(list(per_class.values())))}


def _realism(inputs: MetricInputs) -> dict[str, float]:
    scores = inputs.realism
    return {"realism_mean": float(scores.mean()), "realism_median": float(np.median(scores))}


# --- replicate functions: BootstrapInputs -> {row: (value, replicates)} ---------------------------------------

def _fid_replicates(inputs: BootstrapInputs) -> dict[str, tuple[float, np.ndarray]]:
    found = bootstrap.fid_replicates(inputs.feats_gen, inputs.mu_ref, inputs.sigma_ref, inputs.counts,
                                     device=inputs.device, done=inputs.done)
    return {"fid": (_fid(inputs)["fid"], found)}


def _sfid_replicates(inputs: BootstrapInputs) -> dict[str, tuple[float, np.ndarray]]:
    found = bootstrap.fid_replicates(inputs.spatial_gen, inputs.mu_s_ref, inputs.sigma_s_ref, inputs.counts,
                                     device=inputs.device, done=inputs.done)
    return {"sfid": (_sfid(inputs)["sfid"], found)}


def _mmd_replicates(row: str, kernel: bootstrap.Kernel, scale: float, inputs: BootstrapInputs
                    ) -> dict[str, tuple[float, np.ndarray]]:
    """Unbiased MMD^2 of the whole sets (first value) and of every replicate; the reference term, which
    resampling the generated side leaves fixed, is computed once for both sides."""
    key = f"{row}_reference_term"
    if key not in inputs.shared:
        inputs.shared[key] = bootstrap.mmd2_reference_term(inputs.feats_ref, kernel)
    both = np.concatenate([np.ones((1, inputs.counts.shape[1])), inputs.counts])
    mmd = scale * bootstrap.mmd2_replicates(inputs.feats_gen, inputs.feats_ref, both, kernel, inputs.shared[key])
    return {row: (float(mmd[0]), mmd[1:])}


def _kid_replicates(inputs: BootstrapInputs) -> dict[str, tuple[float, np.ndarray]]:
    return _mmd_replicates("kid", polynomial_kernel, 1.0, inputs)


def _cmmd_replicates(inputs: BootstrapInputs) -> dict[str, tuple[float, np.ndarray]]:
    return _mmd_replicates("cmmd", bootstrap.rbf_kernel(inputs.options.cmmd_sigma), DEFAULT_SCALE, inputs)


def _is_replicates(inputs: BootstrapInputs) -> dict[str, tuple[float, np.ndarray]]:
    splits = inputs.options.is_splits
    value = inception_score(inputs.logits_gen, splits=splits)[0]
    return {"is": (value, bootstrap.is_replicates(inputs.logits_gen, inputs.indices, splits, done=inputs.done))}


def _realism_replicates(inputs: BootstrapInputs) -> dict[str, tuple[float, np.ndarray]]:
    """The mean realism score of each replicate from the per-sample scores, computed once (counts (B, N))."""
    scores = inputs.realism
    return {"realism": (float(scores.mean()), inputs.counts @ scores / len(scores))}


def _manifold_replicates(rows: tuple[str, ...], inputs: BootstrapInputs) -> dict[str, tuple[float, np.ndarray]]:
    """Rows of precision/recall/density/coverage from the incidence both pr and dc share."""
    full = inputs.incidence.metrics()
    return {row: (float(getattr(full, row)), inputs.manifold_replicates[row]) for row in rows}


# --- the registry ----------------------------------------------------------------------------------------------

def _kid_settings(options: MetricOptions) -> dict[str, Any]:
    return {"kid": {"subsets": options.kid_subsets, "subset_size": options.kid_subset_size}}


def _cmmd_settings(options: MetricOptions) -> dict[str, Any]:
    return {"cmmd": {"sigma": options.cmmd_sigma, "scale": DEFAULT_SCALE, "estimator": "unbiased"}}


METRICS: dict[str, MetricDef] = {metric.name: metric for metric in (
    MetricDef("fid", "Fréchet Inception Distance", {"fid": "FID"}, {"fid": "FID"}, compute=_fid,
              replicate=_fid_replicates),
    MetricDef("sfid", "spatial FID on Mixed_6d's first 7 channels (extractor inception)", {"sfid": "sFID"},
              {"sfid": "sFID"}, needs_spatial=True, extractors=("inception",),
              unsupported="is defined on TF-Inception's Mixed_6d features", compute=_sfid,
              replicate=_sfid_replicates),
    MetricDef("kid", "Kernel Inception Distance", {"kid_mean": "KID (mean)", "kid_std": "KID (std)"},
              {"kid": "KID"}, needs_features=True, compute=_kid, replicate=_kid_replicates, settings=_kid_settings,
              compare_settings=lambda options: {}),
    MetricDef("is", "Inception Score (weights with logits)", {"is_mean": "IS (mean)", "is_std": "IS (std)"},
              {"is": "IS"}, higher_is_better=True, needs_reference=False, needs_logits=True, compute=_is,
              replicate=_is_replicates,
              settings=lambda options: {"is_splits": options.is_splits, "is_order": shuffle_provenance()}),
    MetricDef("pr", "k-NN precision/recall", {"precision": "precision", "recall": "recall"},
              {"precision": "precision", "recall": "recall"}, higher_is_better=True, needs_features=True,
              compute=_pr, replicate=functools.partial(_manifold_replicates, ("precision", "recall")),
              settings=lambda options: {"pr_k": options.pr_k}, fraction_rows=("precision", "recall")),
    MetricDef("dc", "density/coverage", {"density": "density", "coverage": "coverage"},
              {"density": "density", "coverage": "coverage"}, higher_is_better=True, needs_features=True,
              compute=_dc, replicate=functools.partial(_manifold_replicates, ("density", "coverage")),
              settings=lambda options: {"dc_k": options.dc_k}, fraction_rows=("coverage",)),
    MetricDef("cmmd", "CLIP maximum mean discrepancy (extractor clip or dinov2)", {"cmmd": "CMMD"}, {"cmmd": "CMMD"},
              needs_features=True, extractors=("clip", "dinov2"),
              unsupported="is defined on CLIP embeddings (or DINOv2 features)",
              compute=_cmmd, replicate=_cmmd_replicates, settings=_cmmd_settings),
    MetricDef("fd_inf", "FD extrapolated to infinitely many samples (Chong & Forsyth; FID's features)",
              {"fd_inf": "FD∞", "fd_inf_slope": "FD∞ slope"}, needs_features=True, reference_moments_only=True,
              compute=_fd_inf, settings=lambda options: {"fd_inf": {"points": 15, "seed": options.seed}},
              no_compare="its 15-subset extrapolation has no bootstrap interval; compare fid"),
    MetricDef("vendi", "Vendi score of the generated set (cosine kernel, q = 1)", {"vendi": "Vendi"},
              higher_is_better=True, needs_features=True, needs_reference=False, compute=_vendi,
              no_compare="resampling with replacement duplicates samples, which lowers the Vendi score, so a "
                         "bootstrap interval would be biased"),
    MetricDef("vendi_per_class", "mean over classes of the Vendi score of each class's samples (--labels)",
              {"vendi_per_class": "Vendi per class (mean)"}, higher_is_better=True, needs_features=True,
              needs_labels=True, needs_reference=False, compute=_vendi_per_class,
              no_compare="resampling with replacement duplicates samples, which lowers the Vendi score, so a "
                         "bootstrap interval would be biased"),
    MetricDef("realism", "realism score (Kynkäänniemi et al., k = --pr-k): mean and median",
              {"realism_mean": "realism (mean)", "realism_median": "realism (median)"}, {"realism": "realism (mean)"},
              higher_is_better=True, needs_features=True, compute=_realism, replicate=_realism_replicates,
              settings=lambda options: {"realism_k": options.pr_k}),
    MetricDef("authpct", "AuthPct: % of samples not closer to the training set than it is to itself (--train)",
              {"authpct": "AuthPct (%)"}, higher_is_better=True, needs_features=True, needs_train=True,
              needs_reference=False, compute=_authpct,
              no_compare="a memorisation test of one set; run score on each checkpoint"),
    MetricDef("ct", "C_T data-copying score (Meehan et al.; < 0: copying) against --train, REF the test set",
              {"ct": "C_T"}, needs_features=True, needs_train=True, compute=_ct,
              settings=lambda options: {"ct": {"cells": DEFAULT_CELLS, "pca_dim": DEFAULT_PCA_DIM,
                                               "min_generated_per_cell": DEFAULT_MIN_GEN_PER_CELL,
                                               "seed": options.seed}},
              no_compare="a memorisation test of one set; run score on each checkpoint"),
    MetricDef("clip_score", "CLIPScore of images and their captions (captions)",
              {"clip_score_mean": "CLIPScore (mean)", "clip_score_std": "CLIPScore (std)",
               "ref_clip_score_mean": "RefCLIPScore (mean)", "ref_clip_score_std": "RefCLIPScore (std)"},
              higher_is_better=True, needs_reference=False, needs_captions=True, no_compare="it needs captions"),
)}
DEFAULT_METRICS = ("fid", "kid", "pr")
ALIASES: dict[str, tuple[str, ...]] = {"adm": ("fid", "sfid", "is", "pr")}
"""Names for metric sets: ``adm`` is what guided-diffusion's evaluator reports (its precision/recall is ours with
k = 3 on pool3). Within an alias, ``is`` is dropped with a warning when the weights give no logits."""
LABELS: dict[str, str] = {key: label for metric in METRICS.values() for key, label in metric.outputs.items()}
ROWS: dict[str, MetricDef] = {row: metric for metric in METRICS.values() for row in metric.rows}
FEATURE_OUTPUTS: dict[str, dict[str, str]] = {"dinov2": {"fid": "fd_dinov2"}}
"""Output keys named after the features they are computed on, by extractor (the ExtractorSpec name ``<extractor>`` or
``<extractor>-...``): FID on DINOv2 features is reported as dgm-eval's ``fd_dinov2`` (the same Fréchet distance, no
``fid`` key beside it). ``compare`` keeps the row and --fail-if name ``fid`` and labels it FD_DINOv2."""
LABELS["fd_dinov2"] = "FD_DINOv2"


def output_key(key: str, spec_name: str) -> str:
    """``key`` as reported for the features of the ExtractorSpec named ``spec_name`` ('fid' -> 'fd_dinov2' for
    'dinov2-vitl14')."""
    for extractor, renamed in FEATURE_OUTPUTS.items():
        if spec_name == extractor or spec_name.startswith(f"{extractor}-"):
            return renamed.get(key, key)
    return key


def row_label(row: str, spec_name: str) -> str:
    """The table label of compare's ``row`` on the features of ``spec_name`` (FID -> FD_DINOv2 on DINOv2)."""
    key = output_key(row, spec_name)
    return LABELS[key] if key != row else ROWS[row].rows[row]


def parse_metrics(metrics: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """'fid,kid' or ('fid', 'kid') -> validated tuple in the given order, without duplicates."""
    names = [m.strip().lower() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    names = [expanded for name in names for expanded in ALIASES.get(name, (name,))]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; choose from "
                          f"{','.join([*METRICS, *ALIASES])}")
    return tuple(dict.fromkeys(names))


def optional_metrics(metrics: str | tuple[str, ...] | list[str]) -> set[str]:
    """The metrics an alias of ``metrics`` asks for only where they can be computed (``is`` of ``adm``), unless
    also asked for by name."""
    names = {m.strip().lower() for m in (metrics.split(",") if isinstance(metrics, str) else metrics)}
    return {"is"} - names if names & set(ALIASES) else set()


def check_supported(wanted: tuple[str, ...], extractor: str, has_logits: bool | None = None) -> None:
    """ConfigError when a metric of ``wanted`` is undefined on the features of the extractor called
    ``extractor`` (whose configs says ``has_logits`` False when it never gives logits)."""
    for name in wanted:
        metric = METRICS[name]
        if metric.extractors is not None and extractor not in metric.extractors:
            raise ConfigError(f"metric {name!r} {metric.unsupported} but {spell('extractor', extractor)} is given: "
                              f"pass {spell('extractor', metric.extractors[0])}, or drop {name}")
        if metric.needs_logits and has_logits is False:
            raise ConfigError(f"metric {name!r} needs classifier logits, which {spell('extractor', extractor)} "
                              f"does not give: drop {name!r} or score it in a separate run with "
                              f"{spell('extractor', 'inception')}")


def needs_spatial(wanted: tuple[str, ...] | list[str]) -> bool:
    """True when a metric of ``wanted`` needs sFID's spatial features."""
    return any(METRICS[name].needs_spatial for name in wanted)


def needs_features(wanted: tuple[str, ...] | list[str]) -> bool:
    """True when a metric of ``wanted`` needs the generated side's feature matrix rather than mean/covariance."""
    return any(METRICS[name].needs_features for name in wanted)


def needs_labels(wanted: tuple[str, ...] | list[str]) -> list[str]:
    """The metrics of ``wanted`` that need the class labels of the generated images."""
    return [name for name in wanted if METRICS[name].needs_labels]


def needs_train(wanted: tuple[str, ...] | list[str]) -> list[str]:
    """The metrics of ``wanted`` that need the training set's features."""
    return [name for name in wanted if METRICS[name].needs_train]


def needs_reference_features(wanted: tuple[str, ...] | list[str]) -> bool:
    """True when a metric of ``wanted`` needs the reference's feature matrix (so a stats file must hold it)."""
    return any(METRICS[name].needs_features and METRICS[name].needs_reference
               and not METRICS[name].reference_moments_only for name in wanted)


def needs_reference(wanted: tuple[str, ...] | list[str]) -> list[str]:
    """The metrics of ``wanted`` that need a reference."""
    return [name for name in wanted if METRICS[name].needs_reference]


def metric_settings(wanted: tuple[str, ...] | list[str], options: MetricOptions, *, compare: bool = False
                    ) -> dict[str, Any]:
    """The provenance entries of the settings of the metrics in ``wanted``."""
    found: dict[str, Any] = {}
    for name in wanted:
        metric = METRICS[name]
        settings = metric.compare_settings if compare and metric.compare_settings else metric.settings
        found.update(settings(options))
    return found


def compute_metrics(inputs: MetricInputs) -> dict[str, float]:
    """The values of every metric of ``inputs.wanted`` that has a compute function, in output order."""
    values: dict[str, float] = {}
    for name in inputs.wanted:
        if METRICS[name].compute is not None:
            values.update(METRICS[name].compute(inputs))
    return values


def replicate_metrics(inputs: BootstrapInputs) -> dict[str, tuple[float, np.ndarray]]:
    """``{row: (value, replicates)}`` of every metric of ``inputs.wanted`` (all must have a replicate
    function)."""
    found: dict[str, tuple[float, np.ndarray]] = {}
    for name in inputs.wanted:
        found.update(METRICS[name].replicate(inputs))
    return found
