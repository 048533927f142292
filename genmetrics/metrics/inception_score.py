"""Inception Score from classifier logits, in fp64 with log-softmax."""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import log_softmax, logsumexp

from genmetrics.errors import MetricError
from genmetrics.stats import as_features


SHUFFLE_SEED = 2020
"""Seed of the permutation before the splits: torch-fidelity's default ``rng_seed``."""


def shuffle_provenance(shuffle: bool = True, seed: int = SHUFFLE_SEED) -> dict[str, Any]:
    """How :func:`inception_score` ordered the rows before splitting them, for a Result's provenance."""
    order = f"numpy.random.RandomState({seed}).permutation(n)" if shuffle else "input order"
    return {"shuffle": shuffle, "seed": seed if shuffle else None, "order": order}


def inception_score(logits: Any, splits: int = 10, *, shuffle: bool = True,
                    seed: int = SHUFFLE_SEED) -> tuple[float, float]:
    """IS (mean, std over splits) of unnormalised ``logits`` (n, num_classes).

    Per split (rows ``i*n//splits`` to ``(i+1)*n//splits``, as torch-fidelity), IS = exp(mean_x
    KL(p(y|x) || p(y))) with p(y) the split's mean of p(y|x); std is the population std (ddof=0).
    By default the rows are first permuted with ``np.random.RandomState(seed).permutation(n)``, seed 2020,
    exactly like torch-fidelity's default ``isc_features_to_metric(logits, splits, shuffle=True,
    rng_seed=2020)``, so samples written class by class do not give class-pure splits (which would collapse
    the score); the result is deterministic either way. ``shuffle=False`` splits in the given order (``seed``
    unused). log p(y) is taken as a log-sum-exp of log p(y|x), so classes whose probability underflows to 0
    in a split contribute 0 instead of NaN.
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
