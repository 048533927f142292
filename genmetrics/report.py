"""Rendering a Result (table or JSON) and a Comparison (table, Markdown or JSON); stdout carries only these."""
from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Any

from genmetrics.compare import Comparison
from genmetrics.config import ExtractorSpec
from genmetrics.io.atomic import atomic_write
from genmetrics.metrics.registry import LABELS, row_label
from genmetrics.result import Provenance, Result

def _finite_or_null(value: Any) -> Any:
    """``value`` (nested dicts, lists) with every non-finite float as None: JSON has no NaN or Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(item) for item in value]
    return value


def json_text(value: Any) -> str:
    """``value`` as indented, valid JSON (``allow_nan=False``: non-finite floats, which only provenance could
    hold since metric values are checked finite, become null)."""
    return json.dumps(_finite_or_null(value), indent=2, allow_nan=False)


def to_json(result: Result) -> str:
    """One JSON object {"metrics": {...}, "provenance": {...}}."""
    return json_text(result.to_dict())


def _extractor_line(spec: ExtractorSpec) -> str:
    return (f"{spec.name} (weights sha256 {spec.weights_sha256[:12]}…, resize {spec.resize} to {spec.image_size}, "
            f"{spec.precision})")


def _side_lines(prov: Provenance) -> list[str]:
    lines = []
    for role in ("generated", "reference", "train"):
        side = prov.side(role)
        if side:
            skipped = f", {side.n_skipped} skipped" if side.n_skipped else ""
            origin = f"{side.name or side.stats_file}: stats of " if side.stats_file else ""
            lines.append(f"{role:<10} {origin}{side.source} (N={side.n}{skipped})")
    return lines


def to_table(result: Result) -> str:
    """Metric values, then the provenance a reader needs, then warnings."""
    prov = result.provenance
    width = max(len(label) for label in LABELS.values())
    lines = [f"{LABELS.get(key, key):<{width}}  {value:.6g}" for key, value in result.metrics.items()]
    lines += ["", f"extractor  {_extractor_line(prov.extractor)}", *_side_lines(prov)]
    if prov.clip_score is not None:
        clip = prov.clip_score
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


RULE = ("a check fails only when the whole interval of the difference (candidate - baseline) lies beyond its "
        "allowed change")


def _interval(bounds: tuple[float, float], signed: bool = False) -> str:
    spec = "+.4g" if signed else ".4g"
    return f"[{bounds[0]:{spec}}, {bounds[1]:{spec}}]"


def _comparison_cells(comparison: Comparison) -> list[list[str]]:
    """One row per metric: metric (with ↑/↓), baseline, candidate, difference, verdict."""
    checks_of: dict[str, list] = {}
    for check in comparison.checks:
        checks_of.setdefault(check.metric, []).append(check)
    cells = []
    for row in comparison.rows:
        low, high = row.difference_interval
        worse = (high < 0) if row.higher_is_better else (low > 0)
        better = (low > 0) if row.higher_is_better else (high < 0)
        change = "worse" if worse else "better" if better else "no significant change"
        verdicts = [f"{'FAIL' if check.failed else 'pass'} ({check.check})" for check in checks_of.get(row.metric, [])]
        label = row_label(row.metric, comparison.provenance.extractor.name)
        cells.append([f"{label} {'↑' if row.higher_is_better else '↓'}",
                      f"{row.baseline:.4g} {_interval(row.baseline_interval)}",
                      f"{row.candidate:.4g} {_interval(row.candidate_interval)}",
                      f"{row.difference:+.4g} {_interval(row.difference_interval, signed=True)}",
                      "; ".join([change, *verdicts])])
    return cells


def _comparison_footer(comparison: Comparison) -> list[str]:
    prov = comparison.provenance
    boot = prov.bootstrap
    ref = prov.side("reference")
    reference = f"{ref.origin} (N={ref.n})" if ref else "none"
    setup = (f"extractor {_extractor_line(prov.extractor)}; {boot['replicates']} bootstrap replicates, seed "
             f"{prov.seed}, {boot['level']:.0%} percentile intervals")
    return [f"reference {reference}; baseline N={prov.side('baseline').n}, candidate N={prov.side('candidate').n}",
            setup, RULE]


_HEADER = ["metric", "baseline [95% CI]", "candidate [95% CI]", "difference [95% CI]", "verdict"]


def comparison_table(comparison: Comparison) -> str:
    """Aligned plain-text table, the footer, then warnings."""
    cells = [_HEADER, *_comparison_cells(comparison)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    status = "PASSED" if comparison.passed else "FAILED: the candidate regressed"
    lines += ["", f"result: {status}" if comparison.checks else "result: no checks given",
              *_comparison_footer(comparison)]
    lines += [f"warning: {warning}" for warning in comparison.warnings]
    return "\n".join(lines)


def comparison_markdown(comparison: Comparison) -> str:
    """A GitHub-flavoured Markdown report, ready to paste into a pull-request comment."""
    if not comparison.checks:
        title = "genmetrics compare: no checks given"
    else:
        title = "✅ genmetrics compare: passed" if comparison.passed else "❌ genmetrics compare: regression"
    lines = [f"### {title}", "", "| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
              for row in _comparison_cells(comparison)]
    lines += ["", *(f"<sub>{line}</sub><br>" for line in _comparison_footer(comparison))]
    lines += [f"> ⚠️ {warning}" for warning in comparison.warnings]
    return "\n".join(lines)


def comparison_json(comparison: Comparison) -> str:
    """``Comparison.to_dict()`` as indented JSON."""
    return json_text(comparison.to_dict())


COMPARISON_FORMATS = {"table": comparison_table, "markdown": comparison_markdown, "json": comparison_json}
