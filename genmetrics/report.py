"""Rendering a Result: a readable table or JSON (stdout carries only these)."""
from __future__ import annotations

import csv
import io
import json
import os

from genmetrics.evaluate import Result
from genmetrics.io.atomic import atomic_write

_LABELS = {
    "fid": "FID",
    "kid_mean": "KID (mean)",
    "kid_std": "KID (std)",
    "is_mean": "IS (mean)",
    "is_std": "IS (std)",
    "precision": "precision",
    "recall": "recall",
    "density": "density",
    "coverage": "coverage",
    "cmmd": "CMMD",
    "clip_score_mean": "CLIPScore (mean)",
    "clip_score_std": "CLIPScore (std)",
    "ref_clip_score_mean": "RefCLIPScore (mean)",
    "ref_clip_score_std": "RefCLIPScore (std)",
}


def to_json(result: Result) -> str:
    """One JSON object {"metrics": {...}, "provenance": {...}}."""
    return json.dumps(result.to_dict(), indent=2, sort_keys=False)


def to_table(result: Result) -> str:
    """Metric values, then the provenance a reader needs, then warnings."""
    prov = result.provenance
    width = max(len(label) for label in _LABELS.values())
    lines = [f"{_LABELS.get(key, key):<{width}}  {value:.6g}" for key, value in result.metrics.items()]
    extractor = prov["extractor"]
    lines.append("")
    lines.append(f"extractor  {extractor['name']} (weights sha256 {extractor['weights_sha256'][:12]}…, "
                 f"resize {extractor['resize']} to {extractor['image_size']}, {extractor['precision']})")
    for role in ("generated", "reference"):
        side = prov.get(role)
        if side:
            skipped = f", {side['n_skipped']} skipped" if side.get("n_skipped") else ""
            origin = f"{side.get('name') or side['stats_file']}: stats of " if "stats_file" in side else ""
            lines.append(f"{role:<10} {origin}{side['source']} (N={side['n']}{skipped})")
    if "clip_score" in prov:
        clip = prov["clip_score"]
        refs = f", references {clip['references']}" if clip.get("references") else ""
        lines.append(f"captions   {clip['captions']}{refs} (w={clip['w']:g}, prefix {clip['prefix']!r}, "
                     f"{clip['truncated']} truncated)")
    lines.extend(f"warning: {warning}" for warning in result.warnings)
    return "\n".join(lines)


def write_per_sample(path: str | os.PathLike, result: Result) -> None:
    """Write ``result.per_sample`` as a UTF-8 CSV (file, caption, score[, ref_score]) to ``path``, atomically."""
    rows = result.per_sample
    columns = list(rows[0]) if rows else ["file", "caption", "score"]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(path) as handle:
        handle.write(text.getvalue().encode("utf-8"))
