"""Compare two generators against one reference, with bootstrap confidence intervals and pass/fail checks.

``compare(baseline, candidate, ref)`` extracts the features of both sample sets (through the feature cache)
and the reference once, computes every metric for each side, and resamples each side's generated features
``bootstrap`` times (``genmetrics.metrics.bootstrap``) to give 95% percentile intervals of each side and of the
difference candidate - baseline (replicate b of the difference pairs replicate b of both sides).

Decision rule of a check ``METRIC>+X`` (or ``METRIC<-X``): it fails only when the whole interval of the
difference lies beyond the allowed change, i.e. its lower end is > X (its upper end < X for ``<``).
"""
from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from genmetrics.config import DEFAULT_METRICS
from genmetrics.errors import ConfigError
from genmetrics.evaluate import (
    ExtractOptions,
    _extract_stats,
    _needs_features,
    _printable,
    _reference,
    _reference_warnings,
    _side_provenance,
    _singular_warning,
    check_logits,
    check_metric_support,
    parse_metrics,
    versions,
)
from genmetrics.features import distributed
from genmetrics.features.extract import FeatureSet
from genmetrics.features.registry import build_extractor
from genmetrics.io.images import open_source
from genmetrics.io.statsfile import Stats
from genmetrics.metrics import bootstrap
from genmetrics.metrics.cmmd import DEFAULT_SCALE, DEFAULT_SIGMA
from genmetrics.metrics.fid import fid_from_stats
from genmetrics.metrics import check_finite
from genmetrics.metrics.inception_score import inception_score, shuffle_provenance
from genmetrics.metrics.kid import polynomial_kernel
from genmetrics.metrics.precision_recall import manifold_incidence

LEVEL = 0.95
DEFAULT_BOOTSTRAP = 200
# --metrics name -> the rows it produces, and whether a larger value is better.
_ROWS = {"fid": ("fid",), "kid": ("kid",), "is": ("is",), "pr": ("precision", "recall"),
         "dc": ("density", "coverage"), "cmmd": ("cmmd",)}
HIGHER_IS_BETTER = {"fid": False, "kid": False, "cmmd": False, "is": True, "precision": True, "recall": True,
                    "density": True, "coverage": True}
MAX_BOOTSTRAP_BYTES = 4 << 30  # resampled indices and counts held at once
_CHANGE_BOUND = {"precision": 1.0, "recall": 1.0, "coverage": 1.0}  # fractions: differences within [-1, 1]
_DEFAULT_CHANGE_BOUND = 1e6  # no difference of FID, KID, IS, density or CMMD beyond this means anything
_CHECK = re.compile(r"^\s*([a-z_]+)\s*([<>])\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*$")


@dataclass(frozen=True)
class Check:
    """``metric > allowed`` or ``metric < allowed`` on the difference candidate - baseline."""

    metric: str
    direction: str  # ">" or "<"
    allowed: float
    text: str

    @classmethod
    def parse(cls, text: str) -> Check:
        """``"fid>+0.5"`` -> Check("fid", ">", 0.5); ConfigError when malformed."""
        match = _CHECK.match(text.lower())
        if not match:
            raise ConfigError(f"malformed --fail-if {text!r}: write METRIC>CHANGE or METRIC<CHANGE, e.g. "
                              f"\"fid>+0.5\" or \"recall<-0.02\" (metrics: {', '.join(HIGHER_IS_BETTER)})")
        metric, direction, allowed = match.groups()
        if metric not in HIGHER_IS_BETTER:
            raise ConfigError(f"--fail-if {text!r}: unknown metric {metric!r}; choose from "
                              f"{', '.join(HIGHER_IS_BETTER)}")
        allowed = float(allowed)
        bound = _CHANGE_BOUND.get(metric, _DEFAULT_CHANGE_BOUND)
        if not abs(allowed) <= bound:  # also inf: "fid>1e999" could never fail
            raise ConfigError(f"--fail-if {text!r}: the change {allowed:g} is outside -{bound:g}..{bound:g}, the range "
                              f"a difference of {metric} can take or matter in, so the check could never fail; give a "
                              "change within it")
        return cls(metric, direction, allowed, text.strip())

    def fails(self, interval: tuple[float, float]) -> bool:
        """True when the whole difference ``interval`` lies beyond the allowed change."""
        low, high = interval
        return low > self.allowed if self.direction == ">" else high < self.allowed


@dataclass
class MetricComparison:
    """One metric of both sides: point values and 95% bootstrap intervals."""

    metric: str
    baseline: float
    candidate: float
    difference: float
    baseline_interval: tuple[float, float]
    candidate_interval: tuple[float, float]
    difference_interval: tuple[float, float]
    higher_is_better: bool


@dataclass
class CheckResult:
    check: str
    metric: str
    difference: float
    difference_interval: tuple[float, float]
    failed: bool


@dataclass
class Comparison:
    """The result of ``compare``: one row per metric, the checks and the provenance."""

    rows: list[MetricComparison]
    checks: list[CheckResult]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not any(check.failed for check in self.checks)

    @property
    def warnings(self) -> list[str]:
        return self.provenance.get("warnings", [])

    def to_dict(self) -> dict[str, Any]:
        """The ``--format json`` object: {"passed", "metrics": {name: {...}}, "checks": [...], "provenance"}."""
        return {"passed": self.passed,
                "metrics": {row.metric: {k: v for k, v in asdict(row).items() if k != "metric"} for row in self.rows},
                "checks": [asdict(check) for check in self.checks],
                "provenance": self.provenance}


@dataclass
class _Side:
    """One generated set: point values and replicate values per row."""

    values: dict[str, float]
    replicates: dict[str, np.ndarray]
    stats: Stats


def _rows_of(wanted: tuple[str, ...]) -> list[str]:
    return [row for metric in wanted for row in _ROWS[metric]]


def compare(
    baseline: Any,
    candidate: Any,
    ref: Any,
    metrics: str | tuple[str, ...] | list[str] = DEFAULT_METRICS,
    *,
    fail_if: list[str] | tuple[str, ...] = (),
    bootstrap_replicates: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    num_samples: int | None = None,
    extractor: str = "inception",
    inception_weights: str | None = None,
    trust_weights: bool = False,
    resize: str = "tf1",
    precision: str = "fp32",
    clip_model: str | None = None,
    clip_weights: str | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    workers: int = 0,
    skip_bad: bool = False,
    pr_k: int = 3,
    dc_k: int = 5,
    is_splits: int = 10,
    cmmd_sigma: float = DEFAULT_SIGMA,
    force: bool = False,
    cache: bool = True,
    progress: bool = True,
) -> Comparison:
    """Compare ``candidate`` with ``baseline`` (sources, as for ``score``, or callables with ``num_samples``)
    against reference ``ref`` (a source, stats file or shipped name).

    ``num_samples`` images of each side are used (a seeded subset of a larger source; a smaller one is an
    error). ``bootstrap_replicates`` resamples of each side (seeded by ``seed``) give the 95% intervals;
    ``fail_if`` checks (``"fid>+0.5"``) decide ``Comparison.passed``. KID here is the unbiased MMD^2 of the whole
    sets (``score``'s ``kid_mean`` averages subsets; same expectation).
    """
    wanted = parse_metrics(metrics)
    if "clip_score" in wanted:
        raise ConfigError("compare does not take clip_score (it needs captions); compare distribution metrics: "
                          + ",".join(_ROWS))
    check_metric_support(wanted, extractor)
    checks = [Check.parse(text) for text in fail_if]
    rows = _rows_of(wanted)
    for check in checks:
        if check.metric not in rows:
            raise ConfigError(f"--fail-if {check.text!r} checks {check.metric!r}, which --metrics "
                              f"{','.join(wanted)} does not compute (it gives {', '.join(rows)})")
    if bootstrap_replicates < 10:
        raise ConfigError(f"--bootstrap must be at least 10 for a 95% interval, got {bootstrap_replicates}")
    device = distributed.init_from_env(device)
    options = ExtractOptions.make(batch_size, device, workers, skip_bad, progress, cache)
    sources = {role: open_source(src, num_samples=num_samples, seed=seed)
               for role, src in (("baseline", baseline), ("candidate", candidate))}
    for role, src in sources.items():  # before any extraction: the resampled indices must fit in memory
        needed = 16 * bootstrap_replicates * len(src)  # int64 indices and fp64 counts, (replicates, n) each
        if needed > MAX_BOOTSTRAP_BYTES:
            raise ConfigError(f"--bootstrap {bootstrap_replicates} on {len(src)} {role} samples needs "
                              f"{needed / 2**30:.1f} GiB for the resampled indices (limit "
                              f"{MAX_BOOTSTRAP_BYTES >> 30} GiB); use fewer replicates (1,000 give 95% intervals)")
    network = build_extractor(extractor, device, inception_weights=inception_weights, trust_weights=trust_weights,
                              resize=resize, precision=precision, clip_model=clip_model, clip_weights=clip_weights)
    if "is" in wanted:
        check_logits(network)
    ref_stats = _reference(ref, network, options, need_features=_needs_features(wanted), force=force) \
        if set(wanted) - {"is"} else None
    warnings = [] if ref_stats is None else _reference_warnings(ref_stats, network.spec.dim)
    rng = np.random.default_rng(seed)
    kernels = {"kid": polynomial_kernel, "cmmd": bootstrap.rbf_kernel(cmmd_sigma)}
    ref_terms = {metric: bootstrap.mmd2_reference_term(ref_stats.features, kernels[metric])
                 for metric in ("kid", "cmmd") if metric in wanted}
    sides: dict[str, _Side] = {}
    for role, src in sources.items():
        stats, feats = _extract_stats(src, network, options, role, keep_features=True)
        warnings += _singular_warning(role, stats.n, network.spec.dim)
        indices = bootstrap.resample_indices(stats.n, bootstrap_replicates, rng)
        per_replicate = sum(metric in wanted for metric in ("fid", "is")) * bootstrap_replicates
        with tqdm(total=per_replicate, desc=f"bootstrap {role}", unit="replicate",
                  disable=not progress or per_replicate == 0) as bar:
            sides[role] = _measure(wanted, stats, feats, ref_stats, indices, kernels, ref_terms, device=device,
                                   pr_k=pr_k, dc_k=dc_k, is_splits=is_splits, bar=bar)
    table = []
    for row in rows:
        base, cand = sides["baseline"], sides["candidate"]
        table.append(MetricComparison(
            metric=row, baseline=base.values[row], candidate=cand.values[row],
            difference=cand.values[row] - base.values[row],
            baseline_interval=bootstrap.interval(base.replicates[row], base.values[row], LEVEL),
            candidate_interval=bootstrap.interval(cand.replicates[row], cand.values[row], LEVEL),
            difference_interval=bootstrap.interval(cand.replicates[row] - base.replicates[row],
                                                   cand.values[row] - base.values[row], LEVEL),
            higher_is_better=HIGHER_IS_BETTER[row]))
    by_metric = {row.metric: row for row in table}
    results = [CheckResult(check.text, check.metric, by_metric[check.metric].difference,
                           by_metric[check.metric].difference_interval, check.fails(by_metric[check.metric].difference_interval))
               for check in checks]
    provenance = {
        "extractor": network.spec.to_dict(), "weights_file": network.weights_path, "metrics": list(wanted),
        "seed": seed, "bootstrap": {"replicates": bootstrap_replicates, "level": LEVEL,
                                   "interval": "percentile, shifted by the bootstrap bias estimate",
                                   "resampled": "generated features, with replacement; reference fixed"},
        "pr_k": pr_k if "pr" in wanted else None, "dc_k": dc_k if "dc" in wanted else None,
        "is_splits": is_splits if "is" in wanted else None,
        "is_order": shuffle_provenance() if "is" in wanted else None,
        "cmmd": {"sigma": cmmd_sigma, "scale": DEFAULT_SCALE} if "cmmd" in wanted else None,
        "baseline": _side_provenance(sides["baseline"].stats), "candidate": _side_provenance(sides["candidate"].stats),
        "reference": None if ref_stats is None else _side_provenance(ref_stats),
        "versions": versions(), "warnings": warnings,
    }
    return Comparison(table, results, _printable({k: v for k, v in provenance.items() if v is not None}))


def _measure(wanted: tuple[str, ...], stats: Stats, feats: FeatureSet, ref: Stats | None, indices: np.ndarray,
             kernels: dict[str, bootstrap.Kernel], ref_terms: dict[str, float], *, device: str, pr_k: int,
             dc_k: int, is_splits: int, bar: tqdm) -> _Side:
    """Point values and bootstrap replicates of every row of ``wanted`` for one generated set; ``bar`` counts the
    replicates of the per-replicate metrics (FID, IS)."""
    counts = bootstrap.counts_of(indices, stats.n)
    tick = functools.partial(bar.update, 1)
    ones = np.ones((1, stats.n))
    values: dict[str, float] = {}
    replicates: dict[str, np.ndarray] = {}
    for metric in wanted:
        if metric == "fid":
            values["fid"] = fid_from_stats(stats.mu, stats.sigma, ref.mu, ref.sigma)
            replicates["fid"] = bootstrap.fid_replicates(stats.features, ref.mu, ref.sigma, counts, device=device,
                                                         done=tick)
        elif metric in ("kid", "cmmd"):
            scale = DEFAULT_SCALE if metric == "cmmd" else 1.0
            both = np.concatenate([ones, counts])
            mmd = scale * bootstrap.mmd2_replicates(stats.features, ref.features, both, kernels[metric],
                                                    ref_terms[metric])
            values[metric], replicates[metric] = float(mmd[0]), mmd[1:]
        elif metric == "is":
            values["is"] = inception_score(feats.logits, splits=is_splits)[0]
            replicates["is"] = bootstrap.is_replicates(feats.logits, indices, is_splits, done=tick)
    if {"pr", "dc"} & set(wanted):
        incidence = manifold_incidence(ref.features, stats.features, k_pr=pr_k, k_dc=dc_k)
        full = incidence.metrics()
        for metric, found in bootstrap.manifold_replicates(incidence, counts).items():
            if metric in _rows_of(wanted):
                values[metric], replicates[metric] = float(getattr(full, metric)), found
    return _Side(check_finite(values), replicates, stats)
