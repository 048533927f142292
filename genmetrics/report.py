"""Rendering a Result: a readable table or JSON (stdout carries only these)."""
from __future__ import annotations

import json

from genmetrics.evaluate import Result

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
    lines.extend(f"warning: {warning}" for warning in result.warnings)
    return "\n".join(lines)
