"""Compare two generators against one reference, with bootstrap confidence intervals and pass/fail checks.

``compare(baseline, candidate, ref)`` extracts the features of both sample sets (through the feature cache)
and the reference once, computes every metric for each side, and resamples each side's generated features
``bootstrap`` times (``genmetrics.metrics.bootstrap``) to give 95% percentile intervals of each side and of the
difference candidate - baseline (replicate b of the difference pairs replicate b of both sides).

Decision rule of a check ``METRIC>+X`` (or ``METRIC<-X``): it fails only when the whole interval of the
difference lies beyond the allowed change, i.e. its lower end is > X (its upper end < X for ``<``).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from genmetrics.errors import ConfigError, spell
from genmetrics.features import distributed
from genmetrics.features.base import FeatureExtractor
from genmetrics.features.extract import FeatureSet
from genmetrics.features.registry import ExtractorConfig
from genmetrics.io.images import ImageSource, open_source
from genmetrics.io.statsfile import Stats
from genmetrics.metrics import bootstrap, check_finite
from genmetrics.metrics.cmmd import DEFAULT_SIGMA
from genmetrics.metrics.registry import (
    DEFAULT_METRICS,
    METRICS,
    ROWS,
    BootstrapInputs,
    MetricOptions,
    metric_settings,
    needs_reference_features,
    needs_spatial,
    parse_metrics,
    replicate_metrics,
)
from genmetrics.parameters import documented
from genmetrics.pipeline import (
    ExtractOptions,
    ReferenceNeeds,
    build_network,
    check_request,
    extract_side,
    load_reference,
    reference_arrays,
    metric_options,
    reference_warnings,
    resolve_configs,
    singular_warning,
)
from genmetrics.result import Provenance, SideRecord
from genmetrics.versions import versions

LEVEL = 0.95
DEFAULT_BOOTSTRAP = 200
MAX_BOOTSTRAP_BYTES = 4 << 30  # resampled indices and counts held at once
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
        given = spell("fail_if", repr(text))
        if not match:
            raise ConfigError(f"malformed {given}: write METRIC>CHANGE or METRIC<CHANGE, e.g. "
                              f"\"fid>+0.5\" or \"recall<-0.02\" (metrics: {', '.join(ROWS)})")
        metric, direction, allowed = match.groups()
        if metric not in ROWS:
            raise ConfigError(f"{given}: unknown metric {metric!r}; choose from {', '.join(ROWS)}")
        allowed = float(allowed)
        bound = ROWS[metric].change_bound(metric)
        if not abs(allowed) <= bound:  # also inf: "fid>1e999" could never fail
            raise ConfigError(f"{given}: the change {allowed:g} is outside -{bound:g}..{bound:g}, the range "
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
    provenance: Provenance

    @property
    def passed(self) -> bool:
        return not any(check.failed for check in self.checks)

    @property
    def warnings(self) -> list[str]:
        return list(self.provenance.warnings)

    def to_dict(self) -> dict[str, Any]:
        """The ``--format json`` object: {"passed", "metrics": {name: {...}}, "checks": [...], "provenance"}."""
        return {"passed": self.passed,
                "metrics": {row.metric: {k: v for k, v in asdict(row).items() if k != "metric"} for row in self.rows},
                "checks": [asdict(check) for check in self.checks],
                "provenance": self.provenance.to_dict()}


@dataclass
class _Side:
    """One generated set: point values and replicate values per row."""

    values: dict[str, float]
    replicates: dict[str, np.ndarray]
    stats: Stats


def _rows_of(wanted: tuple[str, ...]) -> list[str]:
    return [row for metric in wanted for row in METRICS[metric].rows]


def _check_request(wanted: tuple[str, ...], checks: list[Check], replicates: int, config: ExtractorConfig) -> None:
    """ConfigError, before any work, for metrics compare does not take, checks of rows not computed and too few
    replicates."""
    refused = [name for name in wanted if METRICS[name].replicate is None]
    if refused:
        raise ConfigError(f"compare does not take {refused[0]} ({METRICS[refused[0]].no_compare}); compare takes: "
                          + ",".join(name for name, metric in METRICS.items() if metric.replicate is not None))
    check_request(wanted, config, has_reference=True)
    rows = _rows_of(wanted)
    for check in checks:
        if check.metric not in rows:
            raise ConfigError(f"{spell('fail_if', repr(check.text))} checks {check.metric!r}, which "
                              f"{spell('metrics', ','.join(wanted))} does not compute (it gives {', '.join(rows)})")
    if replicates < 10:
        raise ConfigError(f"{spell('bootstrap_replicates', str(replicates))} is too few: at least 10 are needed for "
                          "a 95% interval")


def _check_memory(sources: dict[str, ImageSource], replicates: int) -> None:
    """ConfigError before any extraction unless the resampled indices of every side fit in memory."""
    for role, src in sources.items():
        needed = 16 * replicates * len(src)  # int64 indices and fp64 counts, (replicates, n) each
        if needed > MAX_BOOTSTRAP_BYTES:
            raise ConfigError(f"{spell('bootstrap_replicates', str(replicates))} on {len(src)} {role} samples needs "
                              f"{needed / 2**30:.1f} GiB for the resampled indices (limit "
                              f"{MAX_BOOTSTRAP_BYTES >> 30} GiB); use fewer replicates (1,000 give 95% intervals)")


@documented
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
    extractor: str | ExtractorConfig = "inception",
    options: MetricOptions | None = None,
    inception_weights: str | None = None,
    trust_weights: bool = False,
    resize: str | None = None,
    precision: str | None = None,
    clip_model: str | None = None,
    clip_weights: str | None = None,
    dinov2_arch: str | None = None,
    dinov2_weights: str | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    workers: int = 0,
    skip_bad: bool = False,
    pr_k: int = 3,
    dc_k: int = 5,
    is_splits: int = 10,
    cmmd_sigma: float = DEFAULT_SIGMA,
    force: bool = False,
    trust_stats: bool = False,
    cache: bool = True,
    progress: bool = True,
) -> Comparison:
    """Compare ``candidate`` with ``baseline`` against reference ``ref``: each side's and the difference's 95%
    bootstrap intervals, and the ``fail_if`` checks that decide ``Comparison.passed``. ``num_samples`` images of
    each side are used (a seeded subset of a larger source; a smaller one is an error). KID here is the unbiased
    MMD^2 of the whole sets (``score``'s ``kid_mean`` averages subsets; same expectation)."""
    wanted = parse_metrics(metrics)
    config, _ = resolve_configs(extractor, wanted, dict(
        inception_weights=inception_weights, trust_weights=trust_weights, resize=resize, precision=precision,
        clip_model=clip_model, clip_weights=clip_weights, dinov2_arch=dinov2_arch, dinov2_weights=dinov2_weights))
    checks = [Check.parse(text) for text in fail_if]
    _check_request(wanted, checks, bootstrap_replicates, config)
    settings = metric_options(options, pr_k=pr_k, dc_k=dc_k, is_splits=is_splits, cmmd_sigma=cmmd_sigma, seed=seed)
    engine = ExtractOptions.make(batch_size, distributed.init_from_env(device), workers, skip_bad, progress, cache)
    sources = {role: open_source(src, num_samples=num_samples, seed=seed)
               for role, src in (("baseline", baseline), ("candidate", candidate))}
    _check_memory(sources, bootstrap_replicates)
    network = build_network(config, engine.device, wanted)
    needs = ReferenceNeeds(needs_reference_features(wanted), needs_spatial(wanted), force, trust_stats)
    ref_stats = load_reference(ref, network, engine, needs) if set(wanted) - {"is"} else None
    rng, shared, sides, warnings = np.random.default_rng(seed), {}, {}, reference_warnings(ref_stats, network.spec.dim)
    for role, src in sources.items():
        stats, feats = extract_side(src, network, engine, role, keep_features=True)
        warnings += singular_warning(role, stats.n, network.spec.dim)
        sides[role] = _measure(wanted, stats, feats, ref_stats, bootstrap.resample_indices(
            stats.n, bootstrap_replicates, rng), settings, shared, role, engine)
    table = [_comparison_row(row, sides["baseline"], sides["candidate"]) for row in _rows_of(wanted)]
    provenance = _provenance(network, wanted, settings, bootstrap_replicates, sides, ref_stats, warnings)
    return Comparison(table, _check_results(checks, table), provenance)


def _check_results(checks: list[Check], table: list[MetricComparison]) -> list[CheckResult]:
    by_row = {row.metric: row for row in table}
    return [CheckResult(check.text, check.metric, by_row[check.metric].difference,
                        by_row[check.metric].difference_interval, check.fails(by_row[check.metric].difference_interval))
            for check in checks]


def _comparison_row(row: str, base: _Side, cand: _Side) -> MetricComparison:
    """One row: point values, each side's and the difference's intervals."""
    return MetricComparison(
        metric=row, baseline=base.values[row], candidate=cand.values[row],
        difference=cand.values[row] - base.values[row],
        baseline_interval=bootstrap.interval(base.replicates[row], base.values[row], LEVEL),
        candidate_interval=bootstrap.interval(cand.replicates[row], cand.values[row], LEVEL),
        difference_interval=bootstrap.interval(cand.replicates[row] - base.replicates[row],
                                               cand.values[row] - base.values[row], LEVEL),
        higher_is_better=ROWS[row].higher_is_better)


def _provenance(network: FeatureExtractor, wanted: tuple[str, ...], options: MetricOptions, replicates: int,
                sides: dict[str, _Side], ref_stats: Stats | None, warnings: list[str]) -> Provenance:
    records = {role: SideRecord.of(side.stats.n, side.stats.meta) for role, side in sides.items()}
    if ref_stats is not None:
        records["reference"] = SideRecord.of(ref_stats.n, ref_stats.meta)
    resampling = {"replicates": replicates, "level": LEVEL,
                  "interval": "percentile, shifted by the bootstrap bias estimate",
                  "resampled": "generated features, with replacement; reference fixed"}
    return Provenance(network.spec, network.weights_path, wanted, options.seed, records,
                      metric_settings(wanted, options, compare=True), versions(), tuple(warnings),
                      bootstrap=resampling)


def _measure(wanted: tuple[str, ...], stats: Stats, feats: FeatureSet, ref: Stats | None,
             indices: np.ndarray, options: MetricOptions, shared: dict[str, Any], role: str,
             engine: ExtractOptions) -> _Side:
    """Point values and bootstrap replicates of every row of ``wanted`` for one generated set; a progress bar
    counts the replicates of the per-replicate metrics (FID, IS)."""
    per_replicate = sum(name in wanted for name in ("fid", "is")) * len(indices)
    with tqdm(total=per_replicate, desc=f"bootstrap {role}", unit="replicate",
              disable=not engine.progress or per_replicate == 0) as bar:
        inputs = BootstrapInputs(
            stats.mu, stats.sigma, stats.features, feats.logits, options=options, wanted=wanted,
            mu_s_gen=stats.mu_s, sigma_s_gen=stats.sigma_s, spatial_gen=feats.spatial, **reference_arrays(ref),
            indices=indices, counts=bootstrap.counts_of(indices, stats.n), device=engine.device,
            done=lambda: bar.update(1), shared=shared)
        found = replicate_metrics(inputs)
    values = check_finite({row: value for row, (value, _) in found.items()})
    return _Side(values, {row: replicates for row, (_, replicates) in found.items()}, stats)
