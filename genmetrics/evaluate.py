"""The one orchestrator: sources -> features -> statistics -> metrics -> Result with provenance."""
from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from genmetrics._version import __version__
from genmetrics.config import DEFAULT_METRICS, METRICS
from genmetrics.errors import ConfigError, InputError, StatsError, WeightsError
from genmetrics.features import distributed
from genmetrics.features.base import FeatureExtractor
from genmetrics.features.cache import FeatureCache, cache_dir
from genmetrics.features.extract import FeatureSet, extract_features
from genmetrics.features.registry import build_extractor
from genmetrics.io.captions import as_caption_table, first_names, match_captions
from genmetrics.io.images import ImageSource, open_source, printable
from genmetrics.io.statsfile import Stats, check_compatible, check_output, load_stats, save_stats
from genmetrics.metrics.clip_score import DEFAULT_W, clip_score as clip_score_values, mean_std, ref_clip_score
from genmetrics.metrics.cmmd import DEFAULT_SCALE, DEFAULT_SIGMA, cmmd
from genmetrics.metrics.fid import fid_from_stats
from genmetrics.metrics import check_finite
from genmetrics.metrics.inception_score import inception_score, shuffle_provenance
from genmetrics.metrics.kid import kid
from genmetrics.metrics.precision_recall import density_coverage, manifold_metrics, precision_recall
from genmetrics.references import resolve_reference
from genmetrics.stats import RunningStats

if TYPE_CHECKING:
    from genmetrics.features.clip import ClipExtractor

_VERSIONED = ("torch", "torch-fidelity", "numpy", "scipy", "pillow", "open_clip_torch")
_WITHOUT_REFERENCE = ("is", "clip_score")  # computed from the generated side alone


@dataclass(frozen=True)
class ExtractOptions:
    """How features are extracted; none of these change the values."""

    batch_size: int = 32
    device: str = "cpu"
    workers: int = 0
    skip_bad: bool = False
    progress: bool = True
    cache: bool = True  # the feature cache under $GENMETRICS_CACHE_DIR

    @classmethod
    def make(cls, batch_size: int, device: str, workers: int, skip_bad: bool, progress: bool,
             cache: bool) -> ExtractOptions:
        """Options for this process: under torchrun only rank 0 shows progress."""
        return cls(batch_size, device, workers, skip_bad, progress and distributed.is_main_process(), cache)


@dataclass
class Result:
    """Metric values and everything needed to reproduce them."""

    metrics: dict[str, float]
    provenance: dict[str, Any] = field(default_factory=dict)
    per_sample: list[dict[str, Any]] = field(default_factory=list)  # clip_score: {file, caption, score[, ref_score]}

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


def check_metric_support(wanted: tuple[str, ...], extractor: str) -> None:
    """ConfigError when a metric of ``wanted`` is undefined on the features of ``extractor``."""
    if "cmmd" in wanted and extractor != "clip":
        raise ConfigError(f"metric 'cmmd' is defined on CLIP embeddings but --extractor is {extractor!r}: pass "
                          "--extractor clip (with --clip-model and --clip-weights), or drop cmmd")
    if "is" in wanted and extractor == "clip":
        raise ConfigError(f"metric 'is' needs Inception logits but --extractor is {extractor!r}: drop 'is' or score "
                          "it in a separate run with --extractor inception")


def check_logits(network: FeatureExtractor) -> None:
    """WeightsError unless ``network`` gives classifier logits (needed by 'is')."""
    if not network.has_logits:
        raise WeightsError(
            f"metric 'is' needs classifier logits, which {network.weights_path!r} lacks (fid-helper's "
            "default_1.pt has pool3 only); pass --inception-weights PATH to torch-fidelity's "
            "weights-inception-2015-12-05-6726825d.pth, or drop 'is'"
        )


def _is_stats_file(ref: Any) -> bool:
    """True for a path to an .npz holding 'mu' and 'sigma' (a stats file rather than an image array)."""
    if not isinstance(ref, (str, os.PathLike)) or Path(ref).suffix != ".npz" or not Path(ref).is_file():
        return False
    try:
        with zipfile.ZipFile(ref) as archive:
            return {"mu.npy", "sigma.npy"} <= set(archive.namelist())
    except Exception:  # BadZipFile, NotImplementedError (unknown zip version), ...: read it as an image array
        return False


def _extract(src: ImageSource, extractor: FeatureExtractor, options: ExtractOptions, role: str,
             keep_features: bool = True) -> FeatureSet:
    """Features (with ``keep_features``) and fp64 statistics of every usable image of ``src``, checked to be
    finite; under torchrun each rank extracts its shard and all get the whole."""
    cache = FeatureCache(cache_dir(), extractor.spec) if options.cache else None
    feats = extract_features(distributed.shard(src), extractor, batch_size=options.batch_size,
                             workers=options.workers, skip_bad=options.skip_bad, keep_features=keep_features,
                             progress=options.progress, desc=f"{role} features", cache=cache)
    feats = distributed.gather(feats, src)
    _check_finite(feats, f"{role} features of {src.description!r}")
    return feats


def _check_finite(feats: FeatureSet, what: str) -> None:
    """InputError when the running mean or the kept features (N, D) of ``feats`` hold NaN/inf."""
    finite = np.isfinite(feats.stats.mean).all() if feats.stats.n else True
    if not finite or (feats.features is not None and not np.isfinite(feats.features).all()):
        raise InputError(f"{what} contain NaN/inf: the images or weights are broken")


def _source_meta(src: ImageSource, feats: FeatureSet) -> dict[str, Any]:
    return {
        "source": src.description,
        "content_hash": src.content_hash(),
        "n_skipped": len(feats.skipped),
        "skipped": feats.skipped[:10],
    }


def _extract_stats(src: ImageSource, extractor: FeatureExtractor, options: ExtractOptions, role: str,
                   keep_features: bool) -> tuple[Stats, FeatureSet]:
    """Features of one source -> (Stats, the FeatureSet with logits and source indices)."""
    feats = _extract(src, extractor, options, role, keep_features)
    n = len(feats)
    if n < 2:
        raise InputError(f"{role} source {src.description!r} has {n} usable image(s); FID, KID and precision/recall "
                         "need at least 2 (10,000 or more for reportable numbers)")
    meta = {**_source_meta(src, feats), "versions": versions()}
    stats = Stats(mu=feats.stats.mean, sigma=feats.stats.cov, n=n, extractor=extractor.spec, meta=meta,
                  features=feats.features)
    return stats, feats


def _singular_warning(role: str, n: int, dim: int) -> list[str]:
    if n > dim:
        return []
    return [f"{role}: N={n} <= feature dimension {dim}, so its covariance is singular and FID is biased upward; "
            f"use more than {dim} samples (10,000+ recommended) for reportable numbers"]


def compute_stats(
    source: Any,
    out: str | os.PathLike | None = None,
    *,
    features: bool = False,
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
    num_samples: int | None = None,
    seed: int = 0,
    cache: bool = True,
    progress: bool = True,
) -> Stats:
    """Statistics (mu, sigma, and with ``features`` the feature matrix) of ``source``; written atomically to
    ``out`` when given (by rank 0 alone under torchrun). ``cache=False`` neither reads nor writes the feature
    cache."""
    if out is not None:
        check_output(out, [source])  # an unwritable output fails now, not after the extraction (every rank alike)
    device = distributed.init_from_env(device)
    network = build_extractor(extractor, device, inception_weights=inception_weights, trust_weights=trust_weights,
                              resize=resize, precision=precision, clip_model=clip_model, clip_weights=clip_weights)
    options = ExtractOptions.make(batch_size, device, workers, skip_bad, progress, cache)
    src = open_source(source, num_samples=num_samples, seed=seed)
    stats, _ = _extract_stats(src, network, options, "source", keep_features=features)
    if out is not None and distributed.is_main_process():
        save_stats(out, stats)
    return stats


def _reference(ref: Any, extractor: FeatureExtractor, options: ExtractOptions, need_features: bool,
               force: bool = False) -> Stats:
    """The reference side: a shipped name, a stats file, or a source to extract."""
    name = None
    if isinstance(ref, str) and not Path(ref).exists() and "/" not in ref and not Path(ref).suffix:
        name, ref = ref, resolve_reference(ref, extractor.spec.name)
    if not _is_stats_file(ref):
        return _extract_stats(open_source(ref), extractor, options, "reference", keep_features=need_features)[0]
    stats = load_stats(ref)
    stats = dataclasses.replace(stats, meta={**stats.meta, "stats_file": str(ref), "name": name})
    if check_compatible(extractor.spec, stats.extractor, str(ref), force_precision=force):
        stats.meta["forced"] = f"reference precision {stats.extractor.precision} vs {extractor.spec.precision}"
    if need_features and stats.features is None:
        raise StatsError(f"reference stats {str(ref)!r} hold no features, which kid/pr/dc/cmmd need; rebuild it "
                         "with `genmetrics stats SRC -o FILE --features`, or ask only for fid/is")
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
    precision: str = "fp32",
    clip_model: str | None = None,
    clip_weights: str | None = None,
    captions: Any = None,
    references: Any = None,
    clip_w: float = DEFAULT_W,
    clip_prefix: str = "",
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
    cmmd_sigma: float = DEFAULT_SIGMA,
    force: bool = False,
    cache: bool = True,
    progress: bool = True,
) -> Result:
    """Score generated images ``gen`` against reference ``ref`` (a source, stats file or shipped name).

    ``gen``/``ref`` sources: folder, zip, .npy/.npz uint8 array, numpy array / torch tensor (uint8 NHWC or
    NCHW), or a callable ``fn(n, generator) -> uint8 NHWC`` with ``num_samples``. ``cmmd`` needs
    ``extractor="clip"``. ``clip_score`` needs no reference but ``captions`` (see ``clip_score``); it always
    uses the CLIP model of ``clip_model``/``clip_weights``, whatever ``extractor`` is. ``force`` accepts a
    reference stats file of another ``precision``; ``cache=False`` neither reads nor writes the feature cache.
    """
    wanted = parse_metrics(metrics)
    distribution = [m for m in wanted if m != "clip_score"]
    if ref is None and set(wanted) - set(_WITHOUT_REFERENCE):
        raise ConfigError("a reference (REF) is needed for "
                          + ",".join(m for m in wanted if m not in _WITHOUT_REFERENCE))
    check_metric_support(wanted, extractor)
    if "clip_score" in wanted and captions is None:
        raise ConfigError("metric 'clip_score' needs captions: pass --captions CAPTIONS (a CSV/TSV/JSONL file or a "
                          "folder of .txt files)")
    device = distributed.init_from_env(device)
    options = ExtractOptions.make(batch_size, device, workers, skip_bad, progress, cache)
    gen_src = open_source(gen, num_samples=num_samples, seed=seed)
    if "clip_score" in wanted:  # caption problems surface before any image is encoded
        matched = _MatchedCaptions.of(gen_src, captions, references, clip_prefix)
    values: dict[str, float] = {}
    parts: dict[str, Any] = {}
    warnings: list[str] = []
    network = gen_feats = None
    if distribution:
        network = build_extractor(extractor, device, inception_weights=inception_weights, trust_weights=trust_weights,
                                  resize=resize, precision=precision, clip_model=clip_model,
                                  clip_weights=clip_weights)
        if "is" in wanted:
            check_logits(network)
        metric_options = MetricOptions(kid_subsets, kid_subset_size, pr_k, dc_k, is_splits, cmmd_sigma, seed)
        gen_feats = _distribution_metrics(gen_src, ref, network, options, distribution, values, parts, warnings,
                                          metric_options, force=force,
                                          keep_gen=extractor == "clip" and "clip_score" in wanted)
    per_sample: list[dict[str, Any]] = []
    if "clip_score" in wanted:
        reuse = extractor == "clip" and network is not None  # the generated CLIP image embeddings are already there
        clip_net = network if reuse else build_extractor("clip", device, clip_model=clip_model,
                                                         clip_weights=clip_weights)
        if not reuse:
            gen_feats = _extract(gen_src, clip_net, options, "generated")
        if network is None:
            parts.update(extractor=clip_net.spec.to_dict(), weights_file=clip_net.weights_path,
                         generated={"n": len(gen_feats), **_source_meta(gen_src, gen_feats)})
        per_sample = _clip_scores(gen_src, gen_feats, matched, clip_net, options.batch_size, clip_w, values, parts,
                                  warnings)
    provenance = {"extractor": parts.pop("extractor"), "weights_file": parts.pop("weights_file"),
                  "metrics": list(wanted), "seed": seed, "world_size": distributed.rank_and_size()[1], **parts, "versions": versions(), "warnings": warnings}
    return Result(metrics={k: float(v) for k, v in values.items()},
                  provenance=_printable({k: v for k, v in provenance.items() if v is not None}),
                  per_sample=_printable(per_sample))


def _printable(value: Any) -> Any:
    """``value`` (nested dicts, lists, strings) with every string :func:`printable`: non-UTF-8 file names would
    otherwise fail to print or to be written as UTF-8."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {key: _printable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_printable(item) for item in value)
    return value


def clip_score(
    images: Any,
    captions: Any,
    references: Any = None,
    *,
    clip_model: str | None = None,
    clip_weights: str | None = None,
    w: float = DEFAULT_W,
    prefix: str = "",
    batch_size: int = 32,
    device: str = "cpu",
    workers: int = 0,
    skip_bad: bool = False,
    num_samples: int | None = None,
    seed: int = 0,
    cache: bool = True,
    progress: bool = True,
) -> Result:
    """CLIPScore of ``images`` with their ``captions`` (and RefCLIPScore with ``references``).

    ``captions``/``references``: a CSV/TSV/JSONL file or folder of .txt files (``genmetrics.io.captions``), a
    mapping image name -> caption (references: -> list of captions), or a list in the images' order. The
    Result holds ``clip_score_mean``/``clip_score_std`` (+ ``ref_clip_score_*``) and ``per_sample`` rows.
    """
    return score(images, None, "clip_score", extractor="clip", clip_model=clip_model, clip_weights=clip_weights,
                 captions=captions, references=references, clip_w=w, clip_prefix=prefix, batch_size=batch_size,
                 device=device, workers=workers, skip_bad=skip_bad, num_samples=num_samples, seed=seed,
                 cache=cache, progress=progress)


@dataclass(frozen=True)
class MetricOptions:
    """Settings of the distribution metrics (not of the features): KID subsets, k of the k-NN metrics, IS splits,
    CMMD bandwidth and the seed of KID's subsets."""

    kid_subsets: int = 100
    kid_subset_size: int = 1000
    pr_k: int = 3
    dc_k: int = 5
    is_splits: int = 10
    cmmd_sigma: float = DEFAULT_SIGMA
    seed: int = 0

    def provenance(self, wanted: tuple[str, ...] | list[str]) -> dict[str, Any]:
        """The settings of the metrics in ``wanted`` (None for the others)."""
        return {
            "kid": {"subsets": self.kid_subsets, "subset_size": self.kid_subset_size} if "kid" in wanted else None,
            "pr_k": self.pr_k if "pr" in wanted else None,
            "dc_k": self.dc_k if "dc" in wanted else None,
            "is_splits": self.is_splits if "is" in wanted else None,
            "is_order": shuffle_provenance() if "is" in wanted else None,
            "cmmd": ({"sigma": self.cmmd_sigma, "scale": DEFAULT_SCALE, "estimator": "unbiased"}
                     if "cmmd" in wanted else None),
        }


def _needs_features(wanted: tuple[str, ...] | list[str]) -> bool:
    """True when a metric of ``wanted`` needs feature matrices rather than mean/covariance alone."""
    return bool({"kid", "pr", "dc", "cmmd"} & set(wanted))


def _metric_values(wanted: tuple[str, ...] | list[str], gen_stats: Stats, gen_logits: np.ndarray | None,
                   ref_stats: Stats | None, options: MetricOptions) -> dict[str, float]:
    """The distribution metrics ``wanted`` (no clip_score) of the generated side (statistics, features when
    needed, logits (N, C) for 'is') against ``ref_stats``."""
    values: dict[str, float] = {}
    feats_gen = gen_stats.features
    feats_ref = None if ref_stats is None else ref_stats.features
    # Both k-NN metrics at once share the reference radii and the pass over cross pairs.
    manifold = (manifold_metrics(feats_ref, feats_gen, k_pr=options.pr_k, k_dc=options.dc_k)
                if {"pr", "dc"} <= set(wanted) else None)
    for metric in wanted:
        if metric == "fid":
            values["fid"] = fid_from_stats(gen_stats.mu, gen_stats.sigma, ref_stats.mu, ref_stats.sigma)
        elif metric == "kid":
            values["kid_mean"], values["kid_std"] = kid(feats_gen, feats_ref, subsets=options.kid_subsets,
                                                        subset_size=options.kid_subset_size, seed=options.seed)
        elif metric == "is":
            values["is_mean"], values["is_std"] = inception_score(gen_logits, splits=options.is_splits)
        elif metric == "pr":
            values["precision"], values["recall"] = (
                (manifold.precision, manifold.recall) if manifold
                else precision_recall(feats_ref, feats_gen, k=options.pr_k))
        elif metric == "dc":
            values["density"], values["coverage"] = (
                (manifold.density, manifold.coverage) if manifold
                else density_coverage(feats_ref, feats_gen, k=options.dc_k))
        elif metric == "cmmd":
            values["cmmd"] = cmmd(feats_gen, feats_ref, sigma=options.cmmd_sigma)
    return check_finite(values)


def _reference_warnings(ref_stats: Stats, dim: int) -> list[str]:
    """The singular-covariance warning of the reference and the note of a --force'd precision mismatch."""
    warnings = _singular_warning("reference", ref_stats.n, dim)
    if "forced" in ref_stats.meta:
        warnings.append(f"--force: {ref_stats.meta['forced']}; the numbers mix precisions")
    return warnings


def _distribution_metrics(gen_src: ImageSource, ref: Any, network: FeatureExtractor, options: ExtractOptions,
                          wanted: list[str], values: dict[str, float], provenance: dict[str, Any],
                          warnings: list[str], metric_options: MetricOptions, *, force: bool,
                          keep_gen: bool) -> FeatureSet:
    """FID/KID/IS/PR/DC/CMMD of ``gen_src`` against ``ref``, added to ``values``, ``provenance`` and
    ``warnings``; returns the generated features (the matrix only when a metric or ``keep_gen`` needs it:
    FID/IS-only runs stream statistics)."""
    needs_features = _needs_features(wanted)
    gen_stats, gen_feats = _extract_stats(gen_src, network, options, "generated",
                                          keep_features=needs_features or keep_gen)
    warnings += _singular_warning("generated", gen_stats.n, network.spec.dim)
    ref_stats = None
    if ref is not None:
        ref_stats = _reference(ref, network, options, need_features=needs_features, force=force)
        warnings += _reference_warnings(ref_stats, network.spec.dim)
    values.update(_metric_values(wanted, gen_stats, gen_feats.logits, ref_stats, metric_options))
    provenance.update({
        "extractor": network.spec.to_dict(),
        "weights_file": network.weights_path,
        **metric_options.provenance(wanted),
        "generated": _side_provenance(gen_stats),
        "reference": None if ref_stats is None else _side_provenance(ref_stats),
    })
    return gen_feats


@dataclass(frozen=True)
class _MatchedCaptions:
    """The caption (and reference captions) of every item of an image source, by source index."""

    captions: list[str]
    references: list[list[str]] | None
    origin: str
    references_origin: str | None
    prefix: str

    @classmethod
    def of(cls, src: ImageSource, captions: Any, references: Any, prefix: str) -> _MatchedCaptions:
        names = [src.name(i) for i in range(len(src))]
        table = as_caption_table(captions, names, "captions")
        matched = [found[0] for found in match_captions(names, table, src.description)]
        refs_table = None if references is None else as_caption_table(references, names, "references", multiple=True)
        refs = None if refs_table is None else match_captions(names, refs_table, src.description)
        return cls(matched, refs, table.origin, None if refs_table is None else refs_table.origin, prefix)


def _clip_scores(src: ImageSource, feats: FeatureSet, matched: _MatchedCaptions, clip_net: ClipExtractor,
                 batch_size: int, w: float, values: dict[str, float], provenance: dict[str, Any],
                 warnings: list[str]) -> list[dict[str, Any]]:
    """CLIPScore (and RefCLIPScore) of the images in ``feats`` (L2-normalised CLIP embeddings of ``src``) added to
    ``values``, ``provenance`` and ``warnings``; returns the per-sample rows."""
    kept = [int(i) for i in feats.indices]
    if not kept:
        raise InputError(f"generated source {src.description!r} has no usable image to score")
    texts = [matched.prefix + matched.captions[i] for i in kept]
    text_embeds = clip_net.encode_text(texts, batch_size)
    scores = clip_score_values(feats.features, text_embeds, w)
    truncated = [src.name(i) for i, text in zip(kept, texts) if clip_net.is_truncated(text)]
    values["clip_score_mean"], values["clip_score_std"] = mean_std(scores)
    rows = [{"file": src.name(i), "caption": matched.captions[i], "score": float(s)} for i, s in zip(kept, scores)]
    if matched.references is not None:
        refs = [[matched.prefix + r for r in matched.references[i]] for i in kept]
        flat = [r for group in refs for r in group]
        ref_embeds = np.split(clip_net.encode_text(flat, batch_size), np.cumsum([len(g) for g in refs])[:-1])
        truncated += [f"{src.name(i)} (reference)" for i, group in zip(kept, refs)
                      for r in group if clip_net.is_truncated(r)]
        ref_scores = ref_clip_score(feats.features, text_embeds, ref_embeds, w)
        values["ref_clip_score_mean"], values["ref_clip_score_std"] = mean_std(ref_scores)
        for row, value in zip(rows, ref_scores):
            row["ref_score"] = float(value)
    if truncated:
        warnings.append(f"{len(truncated)} caption(s) longer than the {clip_net.context_length}-token text context "
                        f"were truncated: {first_names(truncated)}")
    provenance["clip_score"] = {
        "w": w, "prefix": matched.prefix, "n": len(rows), "std": "population (ddof=0)",
        "captions": matched.origin, "references": matched.references_origin,
        "truncated": len(truncated), "truncated_files": truncated[:10],
    }
    provenance["clip"] = clip_net.provenance()
    return rows


def _side_provenance(stats: Stats) -> dict[str, Any]:
    keys = ("name", "stats_file", "source", "content_hash", "n_skipped", "skipped")
    return {"n": stats.n, **{key: stats.meta[key] for key in keys if stats.meta.get(key) is not None}}


class Evaluator:
    """Streaming evaluation for training loops: the extractor is built and the reference resolved once, then each
    evaluation feeds its samples batch by batch through ``update`` and reads the metrics with ``compute``.

    ``ref`` and ``metrics`` are those of :func:`score` (no clip_score); FID/IS-only evaluators keep just the fp64
    running mean/covariance of the generated features (and the logits for IS), so memory does not grow with the
    number of samples. ``update(images)`` takes uint8 images, NHWC or NCHW (numpy or torch), of any batch size:
    the result depends on the images alone, not on how they were split (mean/covariance merge exactly up to fp64
    rounding). Single-process: under torchrun give each rank its own Evaluator or use :func:`score`.

        evaluator = genmetrics.Evaluator("fashion-mnist-test", "fid,kid,pr")
        for images in batches:              # (B, 28, 28, 1) uint8
            evaluator.update(images)
        result = evaluator.compute()        # Result; evaluator.reset() before the next evaluation
    """

    def __init__(
        self,
        ref: Any,
        metrics: str | tuple[str, ...] | list[str] = DEFAULT_METRICS,
        *,
        extractor: str = "inception",
        inception_weights: str | None = None,
        trust_weights: bool = False,
        resize: str = "tf1",
        precision: str = "fp32",
        clip_model: str | None = None,
        clip_weights: str | None = None,
        batch_size: int = 32,
        device: str = "cpu",
        seed: int = 0,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        pr_k: int = 3,
        dc_k: int = 5,
        is_splits: int = 10,
        cmmd_sigma: float = DEFAULT_SIGMA,
        force: bool = False,
        cache: bool = True,
        progress: bool = False,
    ) -> None:
        self.metrics = parse_metrics(metrics)
        if "clip_score" in self.metrics:
            raise ConfigError("Evaluator does not take clip_score (it needs captions); use genmetrics.clip_score")
        if ref is None and set(self.metrics) - set(_WITHOUT_REFERENCE):
            raise ConfigError("a reference is needed for " + ",".join(m for m in self.metrics
                                                                      if m not in _WITHOUT_REFERENCE))
        check_metric_support(self.metrics, extractor)
        self.network = build_extractor(extractor, device, inception_weights=inception_weights,
                                       trust_weights=trust_weights, resize=resize, precision=precision,
                                       clip_model=clip_model, clip_weights=clip_weights)
        if "is" in self.metrics:
            check_logits(self.network)
        self.metric_options = MetricOptions(kid_subsets, kid_subset_size, pr_k, dc_k, is_splits, cmmd_sigma, seed)
        self._options = ExtractOptions(batch_size, device, 0, False, progress, cache)  # cache: the reference only
        self._keep_features = _needs_features(self.metrics)
        self.ref_stats = (None if ref is None else
                          _reference(ref, self.network, self._options, need_features=self._keep_features, force=force))
        self.reset()

    def reset(self) -> None:
        """Forget the generated samples seen so far (the extractor and the reference are kept)."""
        self._stats = RunningStats(self.network.spec.dim)
        self._features: list[np.ndarray] = []
        self._logits: list[np.ndarray] = []

    @property
    def n(self) -> int:
        """Generated samples seen since the last reset."""
        return self._stats.n

    def update(self, images: Any) -> None:
        """Extract the features of ``images`` (B, H, W, C) or (B, C, H, W) uint8, numpy or torch, and add them."""
        feats = extract_features(open_source(images), self.network, batch_size=self._options.batch_size,
                                 keep_features=self._keep_features, progress=False)
        _check_finite(feats, "generated features")
        self._stats = self._stats.merge(feats.stats)
        if self._keep_features:
            self._features.append(feats.features)
        if "is" in self.metrics:
            self._logits.append(feats.logits)

    def compute(self) -> Result:
        """The metrics of the samples seen since the last reset against the reference, with provenance."""
        if self.n < 2:
            raise InputError(f"Evaluator.compute needs at least 2 generated samples, has {self.n}; call update() "
                             "with more images (10,000 or more for reportable numbers)")
        gen_stats = Stats(mu=self._stats.mean, sigma=self._stats.cov, n=self.n, extractor=self.network.spec,
                          meta={"source": "Evaluator.update"},
                          features=np.concatenate(self._features) if self._keep_features else None)
        logits = np.concatenate(self._logits) if self._logits else None
        values = _metric_values(self.metrics, gen_stats, logits, self.ref_stats, self.metric_options)
        dim = self.network.spec.dim
        warnings = _singular_warning("generated", self.n, dim)
        if self.ref_stats is not None:
            warnings += _reference_warnings(self.ref_stats, dim)
        provenance = {"extractor": self.network.spec.to_dict(), "weights_file": self.network.weights_path,
                      "metrics": list(self.metrics), "seed": self.metric_options.seed,
                      **self.metric_options.provenance(self.metrics), "generated": _side_provenance(gen_stats),
                      "reference": None if self.ref_stats is None else _side_provenance(self.ref_stats),
                      "versions": versions(), "warnings": warnings}
        return Result(metrics={k: float(v) for k, v in values.items()},
                      provenance=_printable({k: v for k, v in provenance.items() if v is not None}))
