"""The public entry points on one generated set: ``score``, ``clip_score`` and ``compute_stats`` (``compare`` is in
compare.py, the streaming ``Evaluator`` in streaming.py). Each resolves its typed configs, then calls the shared
steps of ``genmetrics.pipeline`` and assembles a ``Result`` with its ``Provenance``."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from genmetrics.clip_eval import ClipScores, MatchedCaptions, clip_scores, given_captions
from genmetrics.features import distributed
from genmetrics.features.base import FeatureExtractor
from genmetrics.features.extract import FeatureSet
from genmetrics.features.registry import ClipConfig, ExtractorConfig, extractor_config
from genmetrics.io.adm import write_adm_batch
from genmetrics.io.captions import sample_captions
from genmetrics.io.images import ImageSource, open_source
from genmetrics.io.labels import read_labels
from genmetrics.io.statsfile import Stats, check_output, save_stats
from genmetrics.metrics.clip_score import DEFAULT_W
from genmetrics.metrics.cmmd import DEFAULT_SIGMA
from genmetrics.metrics.registry import (
    DEFAULT_METRICS,
    MetricOptions,
    metric_settings,
    needs_features,
    needs_reference_features,
    needs_spatial,
    needs_train,
    optional_metrics,
    parse_metrics,
)
from genmetrics.parameters import documented
from genmetrics.pipeline import (
    ExtractOptions,
    ReferenceNeeds,
    adm_images,
    build_network,
    check_request,
    check_stats_request,
    extract,
    extract_side,
    load_reference,
    metric_options,
    metric_values,
    reference_warnings,
    resolve_configs,
    side_notes,
    singular_warning,
    source_meta,
    usable_metrics,
)
from genmetrics.result import Provenance, Result, SideRecord, printable_tree
from genmetrics.streaming import Evaluator
from genmetrics.versions import versions

__all__ = ["Evaluator", "ExtractOptions", "MetricOptions", "Result", "clip_score", "compute_stats", "parse_metrics",
           "score", "versions"]


@dataclass
class _Distribution:
    """The distribution metrics of one generated source against a reference."""

    values: dict[str, float]
    wanted: tuple[str, ...]
    network: FeatureExtractor
    gen_stats: Stats
    gen_feats: FeatureSet
    ref_stats: Stats | None
    warnings: list[str]
    train_stats: Stats | None = None
    per_sample: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # realism (N,) by feature row


def _distribution(gen_src: ImageSource, ref: Any, config: ExtractorConfig, engine: ExtractOptions,
                  wanted: tuple[str, ...], options: MetricOptions, needs: ReferenceNeeds, *, optional: set[str],
                  keep_gen: bool, train: Any = None, labels: Any = None) -> _Distribution:
    """FID/sFID/KID/IS/PR/DC/CMMD of ``gen_src`` against ``ref``; the generated feature matrix is kept only when
    a metric or ``keep_gen`` needs it (FID/IS-only runs stream statistics)."""
    if labels is not None:  # label problems surface before any image is encoded
        labels = read_labels(labels, [gen_src.name(i) for i in range(len(gen_src))], gen_src.description)
    network = build_network(config, engine.device, wanted, optional)
    wanted, warnings = usable_metrics(wanted, optional, network)
    features = needs_features(wanted)
    gen_stats, gen_feats = extract_side(gen_src, network, engine, "generated", keep_features=features or keep_gen)
    ref_stats = None if ref is None else load_reference(ref, network, engine, dataclasses.replace(
        needs, features=needs_reference_features(wanted), spatial=needs_spatial(wanted)))
    train_stats = None if not needs_train(wanted) else load_reference(
        train, network, engine, dataclasses.replace(needs, features=True, spatial=False))
    warnings += singular_warning("generated", gen_stats.n, network.spec.dim) + reference_warnings(
        ref_stats, network.spec.dim)
    labels_gen = None if labels is None else labels[gen_feats.indices]  # the rows' labels (skipped images dropped)
    per_sample: dict[str, np.ndarray] = {}
    values = metric_values(wanted, gen_stats, gen_feats.logits, ref_stats, options, train_stats, labels_gen,
                           per_sample)
    return _Distribution(values, wanted, network, gen_stats, gen_feats, ref_stats, warnings, train_stats, per_sample)


def _clip_part(gen_src: ImageSource, matched: MatchedCaptions, clip: ClipConfig, engine: ExtractOptions,
               reuse: _Distribution | None, w: float) -> tuple[ClipScores, FeatureExtractor, FeatureSet]:
    """CLIPScore of ``gen_src``, reusing the generated CLIP embeddings of ``reuse`` (a run whose extractor is
    this CLIP model) when given; returns the scores, the CLIP network and the embeddings."""
    if reuse is not None:
        network, feats = reuse.network, reuse.gen_feats
    else:
        network = clip.build(engine.device)
        feats = extract(gen_src, network, engine, "generated")
    return clip_scores(gen_src, feats, matched, network, engine.batch_size, w), network, feats


@documented
def score(
    gen: Any,
    ref: Any = None,
    metrics: str | tuple[str, ...] | list[str] = DEFAULT_METRICS,
    *,
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
    trust_stats: bool = False,
    train: Any = None,
    labels: Any = None,
    cache: bool = True,
    progress: bool = True,
) -> Result:
    """Score generated images ``gen`` against reference ``ref``: a ``Result`` of the ``metrics`` with provenance.
    ``clip_score`` uses ``captions`` (or a .npz ``gen``'s prompts) and CLIP, whatever ``extractor``; no ``ref``."""
    wanted = parse_metrics(metrics)
    config, clip = resolve_configs(extractor, wanted, dict(
        inception_weights=inception_weights, trust_weights=trust_weights, resize=resize, precision=precision,
        clip_model=clip_model, clip_weights=clip_weights, dinov2_arch=dinov2_arch, dinov2_weights=dinov2_weights))
    captions = sample_captions(gen) if captions is None and clip is not None else captions  # a sample .npz's prompts
    check_request(wanted, config, has_reference=ref is not None, has_captions=captions is not None,
                  has_train=train is not None, has_labels=labels is not None, optional=optional_metrics(metrics))
    settings = metric_options(options, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, pr_k=pr_k,
                              dc_k=dc_k, is_splits=is_splits, cmmd_sigma=cmmd_sigma, seed=seed)
    engine = ExtractOptions.make(batch_size, distributed.init_from_env(device), workers, skip_bad, progress, cache)
    gen_src = open_source(gen, num_samples=num_samples, seed=seed)
    matched = MatchedCaptions.of(gen_src, captions, references, clip_prefix) if clip is not None else None  # first
    distribution = tuple(name for name in wanted if name != "clip_score")
    done = None if not distribution else _distribution(
        gen_src, ref, config, engine, distribution, settings, ReferenceNeeds(force=force, trust=trust_stats),
        optional=optional_metrics(metrics), keep_gen=clip is config, train=train, labels=labels)
    clip_part = None if clip is None else _clip_part(gen_src, matched, clip, engine,
                                                     done if clip is config else None, clip_w)
    dropped = set() if done is None else set(distribution) - set(done.wanted)  # optional metrics not computable
    return _result(tuple(name for name in wanted if name not in dropped), settings, gen, gen_src, done, clip_part)


def _result(wanted: tuple[str, ...], options: MetricOptions, gen: Any, gen_src: ImageSource,
            done: _Distribution | None, clip_part: tuple[ClipScores, FeatureExtractor, FeatureSet] | None) -> Result:
    """The Result of score: distribution values then CLIPScores, with the provenance of both."""
    values, warnings, clip_entries = {}, [], {}
    if done is not None:
        network = done.network
        sides = {"generated": SideRecord.of(done.gen_stats.n, done.gen_stats.meta)}
        if done.ref_stats is not None:
            sides["reference"] = SideRecord.of(done.ref_stats.n, done.ref_stats.meta)
        if done.train_stats is not None:
            sides["train"] = SideRecord.of(done.train_stats.n, done.train_stats.meta)
        values.update(done.values)
        warnings += done.warnings
    if clip_part is not None:
        scores, clip_net, clip_feats = clip_part
        if done is None:
            network = clip_net
            sides = {"generated": SideRecord.of(len(clip_feats), source_meta(gen_src, clip_feats))}
        values.update(scores.values)
        warnings += scores.warnings
        clip_entries = {"clip_score": scores.settings, "clip": scores.clip}
    rows, notes = _with_realism(done, gen_src, [] if clip_part is None else clip_part[0].rows)
    provenance = Provenance(network.spec, network.weights_path, wanted, options.seed, sides,
                            metric_settings(wanted, options), versions(), tuple(warnings),
                            world_size=distributed.rank_and_size()[1],
                            notes={**side_notes(gen, None if done is None else done.ref_stats), **notes},
                            **clip_entries)
    return Result({key: float(value) for key, value in values.items()}, provenance, printable_tree(rows))


REALISM_SHOWN = 10  # least and most realistic generated images named in the provenance


def _with_realism(done: _Distribution | None, gen_src: ImageSource, rows: list[dict[str, Any]]
                  ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The per-sample rows with each image's realism score (a ``realism`` column; rows of their own without
    clip_score) and the provenance entries naming the least and most realistic images."""
    scores = None if done is None else done.per_sample.get("realism")
    if scores is None:
        return rows, {}
    names = [gen_src.name(int(index)) for index in done.gen_feats.indices]
    order = np.argsort(scores, kind="stable")
    notes = {"realism_least": [names[i] for i in order[:REALISM_SHOWN]],
             "realism_most": [names[i] for i in order[::-1][:REALISM_SHOWN]]}
    by_name = dict(zip(names, scores.tolist()))
    if rows:
        return [{**row, "realism": by_name.get(row["file"])} for row in rows], notes
    return [{"file": name, "realism": score} for name, score in zip(names, scores.tolist())], notes


@documented
def clip_score(
    images: Any,
    captions: Any = None,
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
    """CLIPScore of ``images`` with their ``captions`` (and RefCLIPScore with ``references``): the Result holds
    ``clip_score_mean``/``clip_score_std`` (+ ``ref_clip_score_*``) and ``per_sample`` rows. Without ``captions``,
    ``images`` must be a .npz carrying them as a 'prompts' array (one per image)."""
    return score(images, None, "clip_score", extractor="clip", clip_model=clip_model, clip_weights=clip_weights,
                 captions=given_captions(images, captions), references=references, clip_w=w, clip_prefix=prefix,
                 batch_size=batch_size, device=device, workers=workers, skip_bad=skip_bad, num_samples=num_samples,
                 seed=seed, cache=cache, progress=progress)


@documented
def compute_stats(
    source: Any,
    out: str | os.PathLike | None = None,
    *,
    features: bool = False,
    sfid: bool = False,
    format: str = "genmetrics",
    extractor: str | ExtractorConfig = "inception",
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
    num_samples: int | None = None,
    seed: int = 0,
    cache: bool = True,
    progress: bool = True,
) -> Stats:
    """Statistics (mu, sigma; with ``features`` the feature matrix, with ``sfid`` mu_s and sigma_s) of ``source``,
    written to ``out`` when given: a stats file, or with ``format="adm"`` an ADM reference batch."""
    config = extractor_config(extractor, inception_weights=inception_weights, trust_weights=trust_weights,
                              resize=resize, precision=precision, clip_model=clip_model, clip_weights=clip_weights,
                              dinov2_arch=dinov2_arch, dinov2_weights=dinov2_weights)
    check_stats_request(config, sfid, format)
    sfid = sfid or format == "adm"  # guided-diffusion's evaluator reads mu_s and sigma_s wherever mu is
    if out is not None:
        check_output(out, [source])  # an unwritable output fails now, not after the extraction (every rank alike)
    engine = ExtractOptions.make(batch_size, distributed.init_from_env(device), workers, skip_bad, progress, cache)
    network = build_network(config, engine.device, ("sfid",) if sfid else ())
    src = open_source(source, num_samples=num_samples, seed=seed)
    stats, feats = extract_side(src, network, engine, "source", keep_features=features)
    if out is not None and distributed.is_main_process():
        if format == "adm":
            write_adm_batch(out, adm_images(src, feats, seed), {key: value for key, value in (
                ("mu", stats.mu), ("sigma", stats.sigma), ("mu_s", stats.mu_s), ("sigma_s", stats.sigma_s))
                if value is not None})
        else:
            save_stats(out, stats)
    return stats
