"""Inception Score from classifier logits, in fp64 with log-softmax."""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import log_softmax, logsumexp

from genmetrics.errors import MetricError
from genmetrics.stats import as_features


def inception_score(logits: Any, splits: int = 10, *, shuffle: bool = False, seed: int = 2020) -> tuple[float, float]:
    """IS (mean, std over splits) of unnormalised ``logits`` (n, num_classes).

    Per split (rows ``i*n//splits`` to ``(i+1)*n//splits``, as torch-fidelity), IS = exp(mean_x
    KL(p(y|x) || p(y))) with p(y) the split's mean of p(y|x); std is the population std (ddof=0).
    Deterministic: rows are used in the given order unless ``shuffle=True``, which permutes them
    with ``np.random.RandomState(seed).permutation(n)`` exactly like torch-fidelity's
    ``isc_features_to_metric(logits, splits, shuffle=True, rng_seed=seed)``; ``seed`` is unused
    otherwise. log p(y) is taken as a log-sum-exp of log p(y|x), so classes whose probability
    underflows to 0 in a split contribute 0 instead of NaN.
    """
    x = as_features(logits, "logits")
    n = len(x)
    if not 1 <= splits <= n:
        raise MetricError(f"splits must be between 1 and the number of samples ({n}), got {splits}")
    if shuffle:
        x = x[np.random.RandomState(seed).permutation(n)]
    log_p = log_softmax(x, axis=1)
    scores = np.empty(splits)
    for i in range(splits):
        chunk = log_p[i * n // splits:(i + 1) * n // splits]
        log_marginal = logsumexp(chunk, axis=0) - np.log(len(chunk))
        kl = (np.exp(chunk) * (chunk - log_marginal)).sum(axis=1)
        scores[i] = np.exp(kl.mean())
    return float(scores.mean()), float(scores.std())
