"""genmetrics: offline, exact evaluation of image generators (FID, KID, IS, precision/recall, ...).

Public API: ``score``, ``clip_score``, ``compute_stats``, ``compare``, ``Evaluator`` (streaming), ``load_stats``,
``Result``, ``Comparison``, ``Stats``, ``GenMetricsError``.
Importing has no side effects and nothing ever downloads.
"""
from genmetrics._version import __version__
from genmetrics.compare import Comparison, compare
from genmetrics.errors import GenMetricsError
from genmetrics.evaluate import Evaluator, Result, clip_score, compute_stats, score
from genmetrics.io.statsfile import Stats, load_stats

__all__ = ["Comparison", "Evaluator", "GenMetricsError", "Result", "Stats", "__version__", "clip_score", "compare",
           "compute_stats", "load_stats", "score"]
