"""Metrics: pure functions on feature arrays (fp64 where sums or matrix roots are involved)."""
from __future__ import annotations

import math
from collections.abc import Mapping

from genmetrics.errors import MetricError


def check_finite(values: Mapping[str, float]) -> dict[str, float]:
    """``values`` as a dict; MetricError naming the first metric that is NaN or infinite (a printed number must be
    a number: such a result comes from inputs whose values overflow fp64 arithmetic)."""
    for key, value in values.items():
        if not math.isfinite(value):
            raise MetricError(f"{key} came out {value}, not a finite number: the features or statistics hold values "
                              "too large for fp64 arithmetic (check the stats files and the features' scale)")
    return dict(values)
