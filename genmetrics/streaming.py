"""``Evaluator``: streaming evaluation for training loops, on the shared steps of ``genmetrics.pipeline``."""
from __future__ import annotations

from typing import Any

import numpy as np

from genmetrics.errors import ConfigError, InputError
from genmetrics.features.extract import extract_features
from genmetrics.features.registry import ExtractorConfig, extractor_config
from genmetrics.io.images import open_source
from genmetrics.config import SPATIAL_DIM
from genmetrics.io.statsfile import Stats
from genmetrics.metrics.cmmd import DEFAULT_SIGMA
from genmetrics.metrics.registry import (
    DEFAULT_METRICS,
    MetricOptions,
    metric_settings,
    needs_features,
    needs_labels,
    needs_reference_features,
    needs_spatial,
    needs_train,
    parse_metrics,
)
from genmetrics.parameters import documented
from genmetrics.pipeline import (
    ExtractOptions,
    ReferenceNeeds,
    build_network,
    check_finite_features,
    check_request,
    load_reference,
    metric_options,
    metric_values,
    reference_warnings,
    singular_warning,
)
from genmetrics.result import Provenance, Result, SideRecord
from genmetrics.stats import RunningStats
from genmetrics.versions import versions


@documented
class Evaluator:
    """Streaming evaluation for training loops: the extractor is built and the reference resolved once, then each
    evaluation feeds its samples batch by batch through ``update`` and reads the metrics with ``compute``.

    ``ref`` and ``metrics`` are those of :func:`genmetrics.score` (no clip_score); FID/IS-only evaluators keep just
    the fp64 running mean/covariance of the generated features (and the logits for IS), so memory does not grow
    with the number of samples. ``update(images)`` takes uint8 images, NHWC or NCHW (numpy or torch), of any batch
    size: the result depends on the images alone, not on how they were split (mean/covariance merge exactly up to
    fp64 rounding). Single-process: under torchrun give each rank its own Evaluator or use ``score``.

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
        seed: int = 0,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        pr_k: int = 3,
        dc_k: int = 5,
        is_splits: int = 10,
        cmmd_sigma: float = DEFAULT_SIGMA,
        force: bool = False,
        trust_stats: bool = False,
        cache: bool = True,
        progress: bool = False,
    ) -> None:
        self.metrics = parse_metrics(metrics)
        if "clip_score" in self.metrics:
            raise ConfigError("Evaluator does not take clip_score (it needs captions); use genmetrics.clip_score")
        config = extractor_config(extractor, inception_weights=inception_weights, trust_weights=trust_weights,
                                  resize=resize, precision=precision, clip_model=clip_model, clip_weights=clip_weights,
                                  dinov2_arch=dinov2_arch, dinov2_weights=dinov2_weights)
        unsupported = needs_train(self.metrics) + needs_labels(self.metrics)
        if unsupported:
            raise ConfigError(f"Evaluator does not take {','.join(unsupported)} (a training set or class labels); "
                              "score the samples with genmetrics.score(..., train=TRAIN, labels=LABELS)")
        check_request(self.metrics, config, has_reference=ref is not None)
        self.network = build_network(config, device, self.metrics)
        self.metric_options = metric_options(options, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                                             pr_k=pr_k, dc_k=dc_k, is_splits=is_splits, cmmd_sigma=cmmd_sigma,
                                             seed=seed)
        self._options = ExtractOptions(batch_size, device, 0, False, progress, cache)  # cache: the reference only
        self._keep_features = needs_features(self.metrics)
        self.ref_stats = (None if ref is None else
                          load_reference(ref, self.network, self._options, ReferenceNeeds(
                              needs_reference_features(self.metrics), needs_spatial(self.metrics), force,
                              trust_stats)))
        self.reset()

    def reset(self) -> None:
        """Forget the generated samples seen so far (the extractor and the reference are kept)."""
        self._stats = RunningStats(self.network.spec.dim)
        self._features: list[np.ndarray] = []
        self._logits: list[np.ndarray] = []
        self._spatial = RunningStats(SPATIAL_DIM) if needs_spatial(self.metrics) else None

    @property
    def n(self) -> int:
        """Generated samples seen since the last reset."""
        return self._stats.n

    def update(self, images: Any) -> None:
        """Extract the features of ``images`` (B, H, W, C) or (B, C, H, W) uint8, numpy or torch, and add them."""
        feats = extract_features(open_source(images), self.network, batch_size=self._options.batch_size,
                                 keep_features=self._keep_features, progress=False)
        check_finite_features(feats, "generated features")
        self._stats = self._stats.merge(feats.stats)
        if self._spatial is not None:
            self._spatial = self._spatial.merge(feats.spatial_stats)
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
                          features=np.concatenate(self._features) if self._keep_features else None,
                          **({} if self._spatial is None else {"mu_s": self._spatial.mean, "sigma_s": self._spatial.cov}))
        logits = np.concatenate(self._logits) if self._logits else None
        values = metric_values(self.metrics, gen_stats, logits, self.ref_stats, self.metric_options)
        dim = self.network.spec.dim
        warnings = singular_warning("generated", self.n, dim) + reference_warnings(self.ref_stats, dim)
        sides = {"generated": SideRecord.of(self.n, gen_stats.meta)}
        if self.ref_stats is not None:
            sides["reference"] = SideRecord.of(self.ref_stats.n, self.ref_stats.meta)
        provenance = Provenance(self.network.spec, self.network.weights_path, self.metrics, self.metric_options.seed,
                                sides, metric_settings(self.metrics, self.metric_options), versions(),
                                tuple(warnings))
        return Result(values, provenance)
