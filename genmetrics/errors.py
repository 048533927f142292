"""One exception hierarchy for every user-facing failure.

Each message names the offending file or argument and says what to do about it. The CLI prints
``str(error)`` on one line and exits with code 2.
"""
from __future__ import annotations


class GenMetricsError(Exception):
    """Base class of every error genmetrics raises on purpose."""


class InputError(GenMetricsError):
    """A source of images (path, array, callable) is missing, empty, unreadable or malformed."""


class DecodeError(InputError):
    """One image file could not be decoded; ``path`` names it."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot decode image {path!r}: {reason} (fix or remove the file, or pass --skip-bad)")

    def __reduce__(self):  # picklable, so DataLoader workers can hand it to the main process
        return (DecodeError, (self.path, self.reason))


class WeightsError(GenMetricsError):
    """Model weights are missing, of the wrong kind, or fail their sha256 check."""


class StatsError(GenMetricsError):
    """A statistics file is malformed, or incompatible with the other side of a comparison."""


class MetricError(GenMetricsError):
    """A metric cannot be computed from the given features (too few samples, NaN, wrong shapes)."""


class ConfigError(GenMetricsError):
    """An option or argument has an invalid value."""
