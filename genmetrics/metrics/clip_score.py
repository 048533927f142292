"""CLIPScore and RefCLIPScore (Hessel et al. 2021) from CLIP embeddings, in fp64.

CLIPScore(i, t) = w * max(0, cos(E_img(i), E_txt(t))), w = 2.5 by default. RefCLIPScore is the
harmonic mean of CLIPScore and max(0, max_r cos(E_txt(t), E_txt(r))) over the reference captions r of
the image, as defined in the paper (the reference code leaves that second term unclipped; it only
differs when every reference has a negative cosine to the candidate). Cosines are computed here, so the
embeddings may be raw or already L2-normalised.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from genmetrics.errors import MetricError
from genmetrics.stats import as_features

DEFAULT_W = 2.5


def _unit_rows(x: Any, name: str) -> np.ndarray:
    """``x`` (n, d) as fp64 rows of norm 1; a zero row is an error (its cosine is undefined)."""
    arr = as_features(x, name, min_rows=1)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if (norms == 0).any():
        raise MetricError(f"{name} has an all-zero embedding at row {int(np.argmin(norms[:, 0]))}; "
                          "its cosine similarity is undefined")
    return arr / norms


def _paired(a: Any, b: Any, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows of ``a`` (n, d) and ``b`` (n, d), checked to pair up row by row."""
    a, b = _unit_rows(a, name_a), _unit_rows(b, name_b)
    if a.shape != b.shape:
        raise MetricError(f"{name_a} {a.shape} and {name_b} {b.shape} must have the same shape (n, d): "
                          "one row each per image-caption pair")
    return a, b


def clip_score(image_embeds: Any, text_embeds: Any, w: float = DEFAULT_W) -> np.ndarray:
    """Per-sample CLIPScore (n,) = w * max(0, cos(image_embeds[k], text_embeds[k])) for (n, d) inputs."""
    if not w > 0:
        raise MetricError(f"CLIPScore weight w must be > 0, got {w}")
    images, texts = _paired(image_embeds, text_embeds, "image_embeds", "text_embeds")
    return w * np.clip(np.einsum("ij,ij->i", images, texts), 0.0, None)


def max_reference_cosine(text_embeds: Any, reference_embeds: Sequence[Any]) -> np.ndarray:
    """Per sample k (n,): max(0, max_r cos(text_embeds[k], r)) over the rows r of reference_embeds[k] (m_k, d)."""
    texts = _unit_rows(text_embeds, "text_embeds")
    if len(reference_embeds) != len(texts):
        raise MetricError(f"reference_embeds holds {len(reference_embeds)} sets for {len(texts)} captions; "
                          "give one (m_k, d) array of reference embeddings per caption")
    best = np.empty(len(texts))
    for k, refs in enumerate(reference_embeds):
        refs = _unit_rows(refs, f"reference_embeds[{k}]")
        if refs.shape[1] != texts.shape[1]:
            raise MetricError(f"reference_embeds[{k}] has d={refs.shape[1]}, text_embeds d={texts.shape[1]}")
        best[k] = max(0.0, float((refs @ texts[k]).max()))
    return best


def ref_clip_score(image_embeds: Any, text_embeds: Any, reference_embeds: Sequence[Any],
                   w: float = DEFAULT_W) -> np.ndarray:
    """Per-sample RefCLIPScore (n,): harmonic mean of CLIPScore and ``max_reference_cosine``; 0 where both are 0.

    ``reference_embeds[k]`` (m_k, d) holds the embeddings of the m_k >= 1 reference captions of image k.
    """
    scores = clip_score(image_embeds, text_embeds, w)
    refs = max_reference_cosine(text_embeds, reference_embeds)
    total = scores + refs
    return np.divide(2.0 * scores * refs, total, out=np.zeros_like(total), where=total > 0)


def mean_std(per_sample: Any) -> tuple[float, float]:
    """Corpus mean and population std (ddof=0) of per-sample scores (n,)."""
    x = np.asarray(per_sample, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise MetricError(f"per-sample scores must be a non-empty 1-D array, got shape {x.shape}")
    return float(x.mean()), float(x.std())
