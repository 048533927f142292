"""genmetrics: offline, exact evaluation of image generators (FID, KID, IS, precision/recall, ...).

Public API: ``score``, ``clip_score``, ``compute_stats``, ``compare``, ``Evaluator`` (streaming), ``load_stats``;
typed settings ``InceptionConfig``, ``ClipConfig``, ``FashionCNNConfig``, ``Dinov2Config`` (``extractor=``) and
``MetricOptions`` (``options=``); results ``Result``, ``Provenance``, ``Comparison``, ``Stats``; errors
``GenMetricsError``.
Importing has no side effects and nothing ever downloads.
"""
from genmetrics._version import __version__
from genmetrics.compare import Comparison, compare
from genmetrics.errors import GenMetricsError
from genmetrics.evaluate import clip_score, compute_stats, score
from genmetrics.features.registry import ClipConfig, Dinov2Config, FashionCNNConfig, InceptionConfig
from genmetrics.io.statsfile import Stats, load_stats
from genmetrics.metrics.registry import MetricOptions
from genmetrics.result import Provenance, Result
from genmetrics.streaming import Evaluator

__all__ = ["ClipConfig", "Comparison", "Dinov2Config", "Evaluator", "FashionCNNConfig", "GenMetricsError",
           "InceptionConfig", "MetricOptions", "Provenance", "Result", "Stats", "__version__", "clip_score", "compare",
           "compute_stats", "load_stats", "score"]
