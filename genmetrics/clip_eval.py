"""CLIPScore and RefCLIPScore of a generated source with its captions: matching captions to images, encoding the
texts, the scores and their provenance (the formulas are in ``genmetrics.metrics.clip_score``)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from genmetrics.errors import InputError, phrase
from genmetrics.features.extract import FeatureSet
from genmetrics.io.captions import PROMPTS_KEY, as_caption_table, first_names, match_captions, sample_captions
from genmetrics.io.images import ImageSource, open_source
from genmetrics.metrics.clip_score import clip_score as clip_score_values, mean_std, ref_clip_score

if TYPE_CHECKING:
    from genmetrics.features.clip import ClipExtractor


@dataclass(frozen=True)
class MatchedCaptions:
    """The caption (and reference captions) of every item of an image source, by source index."""

    captions: list[str]
    references: list[list[str]] | None
    origin: str
    references_origin: str | None
    prefix: str

    @classmethod
    def of(cls, src: ImageSource, captions: Any, references: Any, prefix: str) -> MatchedCaptions:
        """Match ``captions`` (and ``references``, several per image) to the items of ``src`` by name (or alias)
        or order; InputError naming an image without a caption."""
        names = [src.name(i) for i in range(len(src))]
        aliases = [src.aliases(i) for i in range(len(src))]
        table = as_caption_table(captions, names, "captions")
        matched = [found[0] for found in match_captions(names, table, src.description, aliases)]
        refs_table = None if references is None else as_caption_table(references, names, "references", multiple=True)
        refs = None if refs_table is None else match_captions(names, refs_table, src.description, aliases)
        return cls(matched, refs, table.origin, None if refs_table is None else refs_table.origin, prefix)


def given_captions(images: Any, captions: Any) -> Any:
    """``captions``, or where they are None the captions the sample file ``images`` carries (a .npz with a
    'prompts' array); InputError saying what to pass when there are none."""
    found = sample_captions(images) if captions is None else captions
    if found is None:
        is_path = isinstance(images, (str, os.PathLike))
        if is_path and not os.path.exists(images):
            open_source(images)  # its error: no such file
        where = repr(str(images)) if is_path else f"the {type(images).__name__}"
        raise InputError(f"no captions for {where}: pass {phrase('captions=CAPTIONS', 'CAPTIONS')} (a CSV/TSV/JSONL "
                         f"file or a folder of .txt files), or a .npz of the images with a {PROMPTS_KEY!r} array "
                         "(one caption per image)")
    return found


@dataclass(frozen=True)
class ClipScores:
    """What CLIPScore adds to a Result: values, per-sample rows, its provenance entries and warnings."""

    values: dict[str, float]
    rows: list[dict[str, Any]]
    settings: dict[str, Any]  # the "clip_score" provenance entry
    clip: dict[str, Any]  # the "clip" provenance entry (the CLIP model's record)
    warnings: list[str]


def _reference_scores(src: ImageSource, kept: list[int], feats: FeatureSet, text_embeds: np.ndarray,
                      matched: MatchedCaptions, clip_net: ClipExtractor, batch_size: int, w: float
                      ) -> tuple[np.ndarray, list[str]]:
    """RefCLIPScore (N,) of the kept images and the names of the truncated reference captions."""
    refs = [[matched.prefix + r for r in matched.references[i]] for i in kept]
    flat = [r for group in refs for r in group]
    ref_embeds = np.split(clip_net.encode_text(flat, batch_size), np.cumsum([len(g) for g in refs])[:-1])
    truncated = [f"{src.name(i)} (reference)" for i, group in zip(kept, refs)
                 for r in group if clip_net.is_truncated(r)]
    return ref_clip_score(feats.features, text_embeds, ref_embeds, w), truncated


def clip_scores(src: ImageSource, feats: FeatureSet, matched: MatchedCaptions, clip_net: ClipExtractor,
                batch_size: int, w: float) -> ClipScores:
    """CLIPScore (and RefCLIPScore with references) of the images in ``feats`` (L2-normalised CLIP embeddings
    (N, E) of ``src``)."""
    kept = [int(i) for i in feats.indices]
    if not kept:
        raise InputError(f"generated source {src.description!r} has no usable image to score")
    texts = [matched.prefix + matched.captions[i] for i in kept]
    text_embeds = clip_net.encode_text(texts, batch_size)
    scores = clip_score_values(feats.features, text_embeds, w)
    truncated = [src.name(i) for i, text in zip(kept, texts) if clip_net.is_truncated(text)]
    values = dict(zip(("clip_score_mean", "clip_score_std"), mean_std(scores)))
    rows = [{"file": src.name(i), "caption": matched.captions[i], "score": float(s)} for i, s in zip(kept, scores)]
    if matched.references is not None:
        ref_scores, truncated_refs = _reference_scores(src, kept, feats, text_embeds, matched, clip_net, batch_size,
                                                       w)
        truncated += truncated_refs
        values.update(zip(("ref_clip_score_mean", "ref_clip_score_std"), mean_std(ref_scores)))
        for row, value in zip(rows, ref_scores):
            row["ref_score"] = float(value)
    warnings = [] if not truncated else [
        f"{len(truncated)} caption(s) longer than the {clip_net.context_length}-token text context were truncated: "
        f"{first_names(truncated)}"]
    settings = {"w": w, "prefix": matched.prefix, "n": len(rows), "std": "population (ddof=0)",
                "captions": matched.origin, "references": matched.references_origin,
                "truncated": len(truncated), "truncated_files": truncated[:10]}
    return ClipScores(values, rows, settings, clip_net.provenance(), warnings)
