"""The one orchestrator: sources -> features -> statistics -> metrics -> Result with provenance."""
from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genmetrics._version import __version__
from genmetrics.config import DEFAULT_METRICS, METRICS
from genmetrics.errors import ConfigError, InputError, StatsError, WeightsError
from genmetrics.features.extract import extract_features
from genmetrics.features.base import FeatureExtractor
from genmetrics.features.registry import build_extractor
from genmetrics.io.images import open_source
from genmetrics.io.statsfile import Stats, check_compatible, load_stats, save_stats
from genmetrics.metrics.fid import fid_from_stats
from genmetrics.metrics.inception_score import inception_score
from genmetrics.metrics.kid import kid
from genmetrics.metrics.precision_recall import density_coverage, manifold_metrics, precision_recall
from genmetrics.references import resolve_reference
from genmetrics.stats import mean_cov

_VERSIONED = ("torch", "torch-fidelity", "numpy", "scipy", "pillow")


@dataclass(frozen=True)
class ExtractOptions:
    """How features are extracted; none of these change the values."""

    batch_size: int = 32
    device: str = "cpu"
    workers: int = 0
    skip_bad: bool = False
    progress: bool = True


@dataclass
class Result:
    """Metric values and everything needed to reproduce them."""

    metrics: dict[str, float]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        return self.provenance.get("warnings", [])

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object: {"metrics": {...}, "provenance": {...}}."""
        return {"metrics": self.metrics, "provenance": self.provenance}


def versions() -> dict[str, str]:
    """Versions of genmetrics, python and the libraries that determine the numbers."""
    found = {"genmetrics": __version__, "python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def parse_metrics(metrics: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """'fid,kid' or ('fid', 'kid') -> validated tuple in the given order, without duplicates."""
    names = [m.strip().lower() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; choose from {','.join(METRICS)}")
    return tuple(dict.fromkeys(names))


def _is_stats_file(ref: Any) -> bool:
    """True for a path to an .npz holding 'mu' and 'sigma' (a stats file rather than an image array)."""
    if not isinstance(ref, (str, os.PathLike)) or Path(ref).suffix != ".npz" or not Path(ref).is_file():
        return False
    try:
        with zipfile.ZipFile(ref) as archive:
            return {"mu.npy", "sigma.npy"} <= set(archive.namelist())
    except zipfile.BadZipFile:
        return False


def _extract_stats(source: Any, extractor: FeatureExtractor, options: ExtractOptions, role: str,
                   num_samples: int | None, seed: int, keep_features: bool) -> tuple[Stats, np.ndarray | None]:
    """Features of one source -> (Stats, logits or None)."""
    src = open_source(source, num_samples=num_samples, seed=seed)
    feats = extract_features(src, extractor, batch_size=options.batch_size, workers=options.workers,
                             skip_bad=options.skip_bad, progress=options.progress, desc=f"{role} features")
    n = len(feats)
    if n < 2:
        raise InputError(f"{role} source {src.description!r} has {n} usable image(s); FID, KID and precision/recall "
                         "need at least 2 (10,000 or more for reportable numbers)")
    if not np.isfinite(feats.features).all():
        raise InputError(f"{role} features of {src.description!r} contain NaN/inf: the images or weights are broken")
    mu, sigma = mean_cov(feats.features)
    meta = {
        "source": src.description,
        "content_hash": src.content_hash(),
        "n_skipped": len(feats.skipped),
        "skipped": feats.skipped[:10],
        "versions": versions(),
    }
    stats = Stats(mu=mu, sigma=sigma, n=n, extractor=extractor.spec, meta=meta,
                  features=feats.features if keep_features else None)
    return stats, feats.logits


def _singular_warning(role: str, n: int, dim: int) -> list[str]:
    if n > dim:
        return []
    return [f"{role}: N={n} <= feature dimension {dim}, so its covariance is singular and FID is biased upward; "
            "use more than 2048 samples (10,000+ recommended) for reportable numbers"]


def compute_stats(
    source: Any,
    out: str | os.PathLike | None = None,
    *,
    features: bool = False,
    extractor: str = "inception",
    inception_weights: str | None = None,
    trust_weights: bool = False,
    resize: str = "tf1",
    batch_size: int = 32,
    device: str = "cpu",
    workers: int = 0,
    skip_bad: bool = False,
    num_samples: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Stats:
    """Statistics (mu, sigma, and with ``features`` the feature matrix) of ``source``; written atomically to
    ``out`` when given."""
    network = build_extractor(extractor, device, inception_weights=inception_weights, trust_weights=trust_weights,
                              resize=resize)
    options = ExtractOptions(batch_size, device, workers, skip_bad, progress)
    stats, _ = _extract_stats(source, network, options, "source", num_samples, seed, keep_features=features)
    if out is not None:
        save_stats(out, stats)
    return stats


def _reference(ref: Any, extractor: FeatureExtractor, options: ExtractOptions, need_features: bool) -> Stats:
    """The reference side: a shipped name, a stats file, or a source to extract."""
    name = None
    if isinstance(ref, str) and not Path(ref).exists() and "/" not in ref and not Path(ref).suffix:
        name, ref = ref, resolve_reference(ref)
    if not _is_stats_file(ref):
        return _extract_stats(ref, extractor, options, "reference", None, 0, keep_features=True)[0]
    stats = load_stats(ref)
    stats = dataclasses.replace(stats, meta={**stats.meta, "stats_file": str(ref), "name": name})
    check_compatible(extractor.spec, stats.extractor, str(ref))
    if need_features and stats.features is None:
        raise StatsError(f"reference stats {str(ref)!r} hold no features, which kid/pr/dc need; rebuild it with "
                         "`genmetrics stats SRC -o FILE --features`, or ask only for fid/is")
    return stats


def score(
    gen: Any,
    ref: Any = None,
    metrics: str | tuple[str, ...] | list[str] = DEFAULT_METRICS,
    *,
    extractor: str = "inception",
    inception_weights: str | None = None,
    trust_weights: bool = False,
    resize: str = "tf1",
    batch_size: int = 32,
    device: str = "cpu",
    workers: int = 0,
    seed: int = 0,
    skip_bad: bool = False,
    num_samples: int | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    pr_k: int = 3,
    dc_k: int = 5,
    is_splits: int = 10,
    progress: bool = True,
) -> Result:
    """Score generated images ``gen`` against reference ``ref`` (a source, stats file or shipped name).

    ``gen``/``ref`` sources: folder, zip, .npy/.npz uint8 array, numpy array / torch tensor (uint8 NHWC or
    NCHW), or a callable ``fn(n, generator) -> uint8 NHWC`` with ``num_samples``.
    """
    wanted = parse_metrics(metrics)
    if ref is None and set(wanted) - {"is"}:
        raise ConfigError("a reference (REF) is needed for " + ",".join(m for m in wanted if m != "is"))
    network = build_extractor(extractor, device, inception_weights=inception_weights, trust_weights=trust_weights,
                              resize=resize)
    if "is" in wanted and not network.has_logits:
        raise WeightsError(
            f"metric 'is' needs classifier logits, which {network.weights_path!r} lacks (fid-helper's "
            "default_1.pt has pool3 only); pass --inception-weights PATH to torch-fidelity's "
            "weights-inception-2015-12-05-6726825d.pth, or drop 'is'"
        )
    options = ExtractOptions(batch_size, device, workers, skip_bad, progress)
    gen_stats, gen_logits = _extract_stats(gen, network, options, "generated", num_samples, seed, keep_features=True)
    dim = network.spec.dim
    warnings = _singular_warning("generated", gen_stats.n, dim)
    values: dict[str, float] = {}
    ref_stats = None
    if ref is not None:
        ref_stats = _reference(ref, network, options, need_features=bool({"kid", "pr", "dc"} & set(wanted)))
        warnings += _singular_warning("reference", ref_stats.n, dim)
    feats_gen = gen_stats.features
    feats_ref = None if ref_stats is None else ref_stats.features
    # Both k-NN metrics at once share the reference radii and the pass over cross pairs.
    manifold = manifold_metrics(feats_ref, feats_gen, k_pr=pr_k, k_dc=dc_k) if {"pr", "dc"} <= set(wanted) else None
    for metric in wanted:
        if metric == "fid":
            values["fid"] = fid_from_stats(gen_stats.mu, gen_stats.sigma, ref_stats.mu, ref_stats.sigma)
        elif metric == "kid":
            values["kid_mean"], values["kid_std"] = kid(feats_gen, feats_ref, subsets=kid_subsets,
                                                        subset_size=kid_subset_size, seed=seed)
        elif metric == "is":
            values["is_mean"], values["is_std"] = inception_score(gen_logits, splits=is_splits)
        elif metric == "pr":
            values["precision"], values["recall"] = (
                (manifold.precision, manifold.recall) if manifold else precision_recall(feats_ref, feats_gen, k=pr_k))
        elif metric == "dc":
            values["density"], values["coverage"] = (
                (manifold.density, manifold.coverage) if manifold else density_coverage(feats_ref, feats_gen, k=dc_k))
    provenance = {
        "extractor": network.spec.to_dict(),
        "weights_file": network.weights_path,
        "metrics": list(wanted),
        "seed": seed,
        "kid": {"subsets": kid_subsets, "subset_size": kid_subset_size} if "kid" in wanted else None,
        "pr_k": pr_k if "pr" in wanted else None,
        "dc_k": dc_k if "dc" in wanted else None,
        "is_splits": is_splits if "is" in wanted else None,
        "generated": _side_provenance(gen_stats),
        "reference": None if ref_stats is None else _side_provenance(ref_stats),
        "versions": versions(),
        "warnings": warnings,
    }
    return Result(metrics={k: float(v) for k, v in values.items()},
                  provenance={k: v for k, v in provenance.items() if v is not None})


def _side_provenance(stats: Stats) -> dict[str, Any]:
    keys = ("name", "stats_file", "source", "content_hash", "n_skipped", "skipped")
    return {"n": stats.n, **{key: stats.meta[key] for key in keys if stats.meta.get(key) is not None}}
