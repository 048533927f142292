"""The steps every entry point shares: build the extractor for a request, extract or load one side, resolve a
reference, compute metric values. Each returns what it made; nothing here mutates its arguments.

``score``, ``compute_stats``, ``clip_score`` (evaluate.py), ``compare`` (compare.py) and ``Evaluator``
(streaming.py) are thin callers of these.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from genmetrics.errors import ConfigError, InputError, StatsError, WeightsError, phrase, spell
from genmetrics.features import distributed
from genmetrics.features.base import FeatureExtractor
from genmetrics.features.cache import FeatureCache, cache_dir
from genmetrics.features.extract import FeatureSet, extract_features
from genmetrics.features.registry import ClipConfig, ExtractorConfig, extractor_config
from genmetrics.io.images import ImageSource, open_source
from genmetrics.config import ExtractorSpec
from genmetrics.features.weights import FID_HELPER_SHA256, TORCH_FIDELITY_SHA256_PREFIX
from genmetrics.io.adm import IMAGES_KEY, MAX_IMAGES, ignored_keys, is_adm_batch, read_adm_batch
from genmetrics.io.statsfile import Stats, check_compatible, load_stats, npz_members, stats_command
from genmetrics.metrics import check_finite
from genmetrics.metrics.registry import (
    METRICS,
    MetricInputs,
    MetricOptions,
    check_supported,
    compute_metrics,
    needs_reference,
    needs_labels,
    needs_spatial,
    needs_train,
    output_key,
)
from genmetrics.references import is_reference_name, resolve_reference
from genmetrics.versions import versions

_CLIP_OPTIONS = ("clip_model", "clip_weights")


@dataclass(frozen=True)
class ExtractOptions:
    """How features are extracted; none of these change the values.

    Args:
        batch_size: images per forward pass.
        device: torch device of the extractor.
        workers: DataLoader worker processes decoding images.
        skip_bad: skip undecodable images (reported in the provenance) instead of stopping.
        progress: tqdm progress bars on stderr.
        cache: read and write the feature cache under $GENMETRICS_CACHE_DIR.
    """

    batch_size: int = 32
    device: str = "cpu"
    workers: int = 0
    skip_bad: bool = False
    progress: bool = True
    cache: bool = True

    @classmethod
    def make(cls, batch_size: int, device: str, workers: int, skip_bad: bool, progress: bool,
             cache: bool) -> ExtractOptions:
        """Options for this process: under torchrun only rank 0 shows progress."""
        return cls(batch_size, device, workers, skip_bad, progress and distributed.is_main_process(), cache)


def resolve_configs(extractor: str | ExtractorConfig, wanted: tuple[str, ...], flat: dict[str, Any]
                    ) -> tuple[ExtractorConfig, ClipConfig | None]:
    """(the extractor's config, the CLIP config of clip_score or None) from ``extractor`` and the flat extractor
    options: clip_model/clip_weights serve clip_score whatever the extractor is, and with extractor clip both
    use the one model."""
    flat = dict(flat)
    clip_flat = {key: flat.pop(key) for key in _CLIP_OPTIONS} if "clip_score" in wanted else {}
    if _is_clip(extractor):
        config = extractor_config(extractor, **flat, **clip_flat)
        return config, config if clip_flat else None
    config = extractor_config(extractor, **flat)
    return config, ClipConfig(*clip_flat.values()) if clip_flat else None


def _is_clip(extractor: str | ExtractorConfig) -> bool:
    return extractor == "clip" or isinstance(extractor, ClipConfig)


def metric_options(options: MetricOptions | None, **flat: Any) -> MetricOptions:
    """``options``, or the MetricOptions of the flat settings; ConfigError when a flat setting other than the seed
    (which also seeds the sampling) is changed beside ``options``."""
    if options is None:
        return MetricOptions(**flat)
    defaults = MetricOptions()
    changed = [f.name for f in fields(MetricOptions)
               if f.name != "seed" and flat.get(f.name, getattr(defaults, f.name)) != getattr(defaults, f.name)]
    if changed:
        raise ConfigError(f"{spell(changed[0], '...')} given beside options=MetricOptions(...): set it there")
    return options


def check_request(wanted: tuple[str, ...], config: ExtractorConfig, *, has_reference: bool,
                  has_captions: bool = True, has_train: bool = False, has_labels: bool = False,
                  optional: set[str] | frozenset[str] = frozenset()) -> None:
    """ConfigError, before any work, when ``wanted`` cannot be computed: a metric undefined on the extractor's
    features, a reference, the training set or captions missing."""
    missing = needs_reference(wanted)
    if not has_reference and missing:
        raise ConfigError(f"a reference is needed for {','.join(missing)}: pass {phrase('ref=...', 'REF')}")
    memorisation = needs_train(wanted)
    if not has_train and memorisation:
        raise ConfigError(f"{','.join(memorisation)} measure(s) memorisation of a training set: pass "
                          f"{spell('train', 'TRAIN')} (the training images, a stats file with features, or a "
                          "shipped name), with the test set as the reference")
    if not has_labels and needs_labels(wanted):
        raise ConfigError(f"{','.join(needs_labels(wanted))} need(s) the class of each generated image: pass "
                          f"{spell('labels', 'LABELS')} (a CSV file,label or, in Python, one integer per image)")
    check_supported(tuple(name for name in wanted if name not in optional), config.name, config.has_logits)
    if not has_captions and any(METRICS[name].needs_captions for name in wanted):
        raise ConfigError(f"metric 'clip_score' needs captions: pass {spell('captions', 'CAPTIONS')} (a CSV/TSV/JSONL "
                          "file or a folder of .txt files), or a .npz of the images with a 'prompts' array")


def check_logits(network: FeatureExtractor) -> None:
    """WeightsError unless ``network`` gives classifier logits (needed by 'is')."""
    if not network.has_logits:
        raise WeightsError(
            f"metric 'is' needs classifier logits, which {network.weights_path!r} lacks (fid-helper's "
            f"default_1.pt has pool3 only); pass {spell('inception_weights', 'PATH')} to torch-fidelity's "
            "weights-inception-2015-12-05-6726825d.pth, or drop 'is'"
        )


def build_network(config: ExtractorConfig, device: str, wanted: tuple[str, ...],
                  optional: set[str] | frozenset[str] = frozenset()) -> FeatureExtractor:
    """The extractor of ``config`` on ``device``, checked to give logits when a metric of ``wanted`` (other than
    the ``optional`` ones) needs them, and set to give sFID's spatial features when one needs them."""
    network = config.build(device)
    if any(METRICS[name].needs_logits for name in wanted if name not in optional):
        check_logits(network)
    if needs_spatial(wanted):
        network.spatial = True
    return network


def usable_metrics(wanted: tuple[str, ...], optional: set[str], network: FeatureExtractor
                   ) -> tuple[tuple[str, ...], list[str]]:
    """``wanted`` without the optional metrics ``network`` cannot compute (``is`` of ``adm`` without logits), and
    the warnings that say so and which file enables them."""
    dropped = [name for name in wanted if name in optional and METRICS[name].needs_logits and not network.has_logits]
    warnings = [f"metric {name!r} skipped: {network.weights_path!r} has no classifier logits; pass "
                f"{spell('inception_weights', 'PATH')} to torch-fidelity's weights-inception-2015-12-05-6726825d.pth "
                "to report it" for name in dropped]
    return tuple(name for name in wanted if name not in dropped), warnings


def extract(src: ImageSource, network: FeatureExtractor, options: ExtractOptions, role: str,
            keep_features: bool = True) -> FeatureSet:
    """Features (with ``keep_features``) and fp64 statistics of every usable image of ``src``, checked to be
    finite; under torchrun each rank extracts its shard and all get the whole."""
    cache = FeatureCache(cache_dir(), network.spec) if options.cache else None
    feats = extract_features(distributed.shard(src), network, batch_size=options.batch_size,
                             workers=options.workers, skip_bad=options.skip_bad, keep_features=keep_features,
                             progress=options.progress, desc=f"{role} features", cache=cache)
    feats = distributed.gather(feats, src)
    check_finite_features(feats, f"{role} features of {src.description!r}")
    return feats


def check_finite_features(feats: FeatureSet, what: str) -> None:
    """InputError when the running mean or the kept features (N, D) of ``feats`` hold NaN/inf."""
    finite = np.isfinite(feats.stats.mean).all() if feats.stats.n else True
    if not finite or (feats.features is not None and not np.isfinite(feats.features).all()):
        raise InputError(f"{what} contain NaN/inf: the images or weights are broken")


def source_meta(src: ImageSource, feats: FeatureSet) -> dict[str, Any]:
    """Where a side's features came from: source, content hash, skipped files (the first 10)."""
    return {"source": src.description, "content_hash": src.content_hash(), "n_skipped": len(feats.skipped),
            "skipped": feats.skipped[:10]}


def extract_side(src: ImageSource, network: FeatureExtractor, options: ExtractOptions, role: str,
                 keep_features: bool) -> tuple[Stats, FeatureSet]:
    """Features of one source -> (Stats, the FeatureSet with logits and source indices)."""
    feats = extract(src, network, options, role, keep_features)
    n = len(feats)
    if n < 2:
        raise InputError(f"{role} source {src.description!r} has {n} usable image(s); FID, KID and precision/recall "
                         "need at least 2 (10,000 or more for reportable numbers)")
    meta = {**source_meta(src, feats), "versions": versions()}
    spatial = {} if feats.spatial_stats is None else {"mu_s": feats.spatial_stats.mean,
                                                      "sigma_s": feats.spatial_stats.cov}
    stats = Stats(mu=feats.stats.mean, sigma=feats.stats.cov, n=n, extractor=network.spec, meta=meta,
                  features=feats.features, **spatial)
    return stats, feats


def is_stats_file(ref: Any) -> bool:
    """True for a path to an .npz holding 'mu' and 'sigma' (a stats file rather than an image array)."""
    members = npz_members(ref)  # None for an unreadable .npz: then read as an image array, whose reader says why
    return members is not None and {"mu", "sigma"} <= set(members)


@dataclass(frozen=True)
class ReferenceNeeds:
    """What the metrics need of a reference: feature rows, sFID's spatial statistics; ``force`` a precision
    mismatch, ``trust`` a stats file without metadata (as computed with this run's extractor)."""

    features: bool = False
    spatial: bool = False
    force: bool = False
    trust: bool = False


def load_reference(ref: Any, network: FeatureExtractor, options: ExtractOptions, needs: ReferenceNeeds) -> Stats:
    """The reference side: a shipped name, a stats file (checked compatible with ``network``), an ADM reference
    batch, or a source to extract."""
    name = None
    if is_reference_name(ref):
        name, ref = ref, resolve_reference(ref, network.spec.name)
    if is_adm_batch(ref):
        return adm_reference(ref, network, options, needs)
    if not is_stats_file(ref):
        return extract_side(open_source(ref), network, options, "reference", keep_features=needs.features)[0]
    stats = load_stats(ref, trust=network.spec if needs.trust else None)
    meta = {**stats.meta, "stats_file": str(ref), "name": name}
    if check_compatible(network.spec, stats.extractor, str(ref), force_precision=needs.force):
        meta["forced"] = f"reference precision {stats.extractor.precision} vs {network.spec.precision}"
    if needs.features and stats.features is None:
        raise StatsError(f"reference stats {str(ref)!r} hold no features, which kid/pr/dc/cmmd need; rebuild it "
                         f"with {stats_command(features=True)}, or ask only for fid/is")
    if needs.spatial and stats.mu_s is None:
        raise StatsError(f"reference stats {str(ref)!r} hold no spatial statistics (mu_s, sigma_s), which sfid "
                         f"needs; rebuild it with {stats_command(spatial=True)}")
    return dataclasses.replace(stats, meta=meta)


def _is_default_setup(spec: ExtractorSpec) -> bool:
    """Whether ``spec`` is the TF-Inception setup of guided-diffusion's evaluator (pool3 of the standard weights,
    TF1 resize, fp32): the only one an ADM batch's statistics are valid for. Both known weights releases hold the
    same graph (torch-fidelity's adds the logits layer)."""
    from genmetrics.features.inception import INCEPTION_NAME

    standard = spec.weights_sha256 == FID_HELPER_SHA256 or spec.weights_sha256.startswith(TORCH_FIDELITY_SHA256_PREFIX)
    return spec.name == INCEPTION_NAME and standard and spec.resize == "tf1" and spec.precision == "float32"


def adm_reference(path: str, network: FeatureExtractor, options: ExtractOptions, needs: ReferenceNeeds) -> Stats:
    """An ADM batch as the reference: FID/sFID from its statistics (for the default extractor setup), everything
    else from the features of its images ``arr_0`` (extracted once, cached); ``meta`` records the keys used."""
    batch = read_adm_batch(path)
    usable = batch.stats if _is_default_setup(network.spec) else {}
    has_moments, has_spatial = "mu" in usable, "mu_s" in usable
    extracted = None
    if needs.features or not has_moments or (needs.spatial and not has_spatial):
        spatial_was = getattr(network, "spatial", False)
        network.spatial = needs.spatial and not has_spatial
        try:
            extracted = extract_side(open_source(path), network, options, "reference", keep_features=needs.features)[0]
        finally:
            network.spatial = spatial_was
    moments = {"mu": usable["mu"], "sigma": usable["sigma"]} if has_moments else {"mu": extracted.mu,
                                                                                   "sigma": extracted.sigma}
    if needs.spatial:
        moments.update({key: usable[key] for key in ("mu_s", "sigma_s")} if has_spatial else
                       {"mu_s": extracted.mu_s, "sigma_s": extracted.sigma_s})
    used = ([IMAGES_KEY] if extracted is not None else []) + [key for key in usable if key in moments]
    meta = {**(extracted.meta if extracted is not None else {}), "source": f"ADM reference batch {path}",
            "stats_file": path, "reference_kind": "adm-batch", "adm_keys_used": used,
            "adm_keys_ignored": [key for key in batch.stats if key not in usable]}
    return Stats(n=batch.shape[0], extractor=network.spec, meta=meta,
                 features=None if extracted is None else extracted.features, **moments)


def check_stats_request(config: ExtractorConfig, sfid: bool, format: str) -> None:
    """ConfigError, before any work, for an output ``format`` or sFID statistics the extractor cannot give."""
    if format not in ("genmetrics", "adm"):
        raise ConfigError(f"unknown {spell('format', format)}; choose genmetrics or adm")
    if (sfid or format == "adm") and (config.name != "inception" or getattr(config, "resize", "tf1") != "tf1"
                                      or getattr(config, "precision", "fp32") != "fp32"):
        what = spell("sfid") if sfid and format != "adm" else spell("format", "adm")
        raise ConfigError(f"{what} needs {spell('extractor', 'inception')} with the TF1 resize and fp32, the setup "
                          "of guided-diffusion's evaluator")


def adm_images(src: ImageSource, feats: FeatureSet, seed: int) -> np.ndarray:
    """A seeded subset (at most MAX_IMAGES, in source order) of the usable images of ``src`` as uint8 (N, H, W, 3);
    InputError when their sizes differ (an ADM batch is one array)."""
    kept = feats.indices
    if len(kept) > MAX_IMAGES:
        kept = np.sort(np.random.default_rng(seed).choice(kept, MAX_IMAGES, replace=False))
    images = [src.load(int(i)) for i in kept]
    sizes = {image.shape for image in images}
    if len(sizes) > 1:
        raise InputError(f"source {src.description!r} holds images of {len(sizes)} sizes (e.g. "
                         f"{', '.join(map(str, sorted(sizes)[:2]))}); an ADM batch is one (N, H, W, 3) array: resize "
                         "them to one size first")
    return np.stack(images)


def side_notes(gen: Any, ref_stats: Stats | None) -> dict[str, Any]:
    """Top-level provenance entries about where the sides came from: an ADM batch's keys, a trusted stats file."""
    notes: dict[str, Any] = {}
    meta = {} if ref_stats is None else ref_stats.meta
    if meta.get("reference_kind"):
        notes.update(reference_kind=meta["reference_kind"], reference_keys_used=meta["adm_keys_used"])
    if meta.get("trusted_without_metadata"):
        notes["reference_trusted_without_metadata"] = True
    ignored = ignored_keys(gen)
    if ignored:
        notes["generated_keys_ignored"] = ignored
    return notes


def singular_warning(role: str, n: int, dim: int) -> list[str]:
    """The warning that a side's covariance is singular (N <= D), which biases FID upward."""
    if n > dim:
        return []
    return [f"{role}: N={n} <= feature dimension {dim}, so its covariance is singular and FID is biased upward; "
            f"use more than {dim} samples (10,000+ recommended) for reportable numbers"]


def reference_warnings(ref_stats: Stats | None, dim: int) -> list[str]:
    """The singular-covariance warning of the reference and the note of a forced precision mismatch."""
    if ref_stats is None:
        return []
    warnings = [] if ref_stats.n is None else singular_warning("reference", ref_stats.n, dim)
    if ref_stats.meta.get("trusted_without_metadata"):
        warnings.append(f"reference stats {ref_stats.meta.get('stats_file')!r} have no genmetrics metadata and were "
                        f"trusted ({spell('trust_stats')}) as computed with this run's extractor setup")
    if ref_stats.meta.get("adm_keys_ignored"):
        warnings.append(f"ADM batch {ref_stats.meta['stats_file']!r}: its {', '.join(ref_stats.meta['adm_keys_ignored'])} "
                        "were not used: they hold TF-Inception statistics (tf1 resize, fp32), not this run's setup, "
                        "so its images were scored instead")
    if "forced" in ref_stats.meta:
        warnings.append(f"{spell('force')}: {ref_stats.meta['forced']}; the numbers mix precisions")
    return warnings


def reference_arrays(ref_stats: Stats | None) -> dict[str, np.ndarray | None]:
    """The reference's arrays as ``MetricInputs`` fields (``mu_ref``, ``sigma_ref``, ``feats_ref``, sFID's
    ``mu_s_ref``, ``sigma_s_ref``); none without a reference."""
    if ref_stats is None:
        return {}
    return {"mu_ref": ref_stats.mu, "sigma_ref": ref_stats.sigma, "feats_ref": ref_stats.features,
            "mu_s_ref": ref_stats.mu_s, "sigma_s_ref": ref_stats.sigma_s}


def metric_values(wanted: tuple[str, ...], gen_stats: Stats, gen_logits: np.ndarray | None,
                  ref_stats: Stats | None, options: MetricOptions, train_stats: Stats | None = None,
                  labels_gen: np.ndarray | None = None, per_sample: dict[str, np.ndarray] | None = None
                  ) -> dict[str, float]:
    """The metrics ``wanted`` (those with a compute function: not clip_score) of the generated side (statistics,
    features when needed, logits (N, C) for 'is') against ``ref_stats``, checked finite, under the keys of the
    features' extractor (``fd_dinov2`` for FID on DINOv2 features); ``per_sample`` receives the per-sample
    realism scores (N,) when realism is wanted."""
    inputs = MetricInputs(gen_stats.mu, gen_stats.sigma, gen_stats.features, gen_logits, options=options,
                          wanted=tuple(wanted), mu_s_gen=gen_stats.mu_s, sigma_s_gen=gen_stats.sigma_s,
                          feats_train=None if train_stats is None else train_stats.features, labels_gen=labels_gen,
                          **reference_arrays(ref_stats))
    spec = gen_stats.extractor.name
    values = {output_key(key, spec): float(value) for key, value in check_finite(compute_metrics(inputs)).items()}
    if per_sample is not None and "realism" in wanted:
        per_sample["realism"] = inputs.realism  # computed once, for the per-sample rows
    return values
