"""Golden numbers: a fixed corpus scored with every metric, every extractor and every entry point (``score``,
``clip_score``, ``compute_stats``, ``compare``, ``Evaluator``); a refactor must reproduce them to 1e-12 relative.

``tests/data/golden_metrics.json`` was written by ``GENMETRICS_WRITE_GOLDEN=1 pytest tests/test_golden.py`` before the architecture
refactor (#18); regenerate it only for a change that is meant to change numbers, and say so in its commit.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import genmetrics
from genmetrics.references import demo_sources
from tests.helpers import fashion_mnist_subset

GOLDEN = Path(__file__).resolve().parent / "data" / "golden_metrics.json"
RELATIVE = 1e-8
"""fp32 network outputs move at ~1e-9 relative between CPU models and kernel choices (an AMD EPYC machine gave IS
1.0904569585 against the golden 1.0904569562 written on an Intel one), far below any real regression."""


def _digits(start: int, stop: int) -> np.ndarray:
    """scikit-learn's digits [start:stop] as (N, 8, 8, 1) uint8."""
    from sklearn.datasets import load_digits

    images = load_digits().images[start:stop]
    return np.round(images * (255 / 16)).astype(np.uint8)[..., None]


def _fashion(split: str, start: int, stop: int) -> np.ndarray:
    return np.ascontiguousarray(fashion_mnist_subset(split)[0][start:stop, :, :, None])


def _comparison_numbers(comparison: genmetrics.Comparison) -> dict[str, float]:
    """Every number of a Comparison, flattened: row.field[.end]."""
    numbers = {}
    for row in comparison.rows:
        for field in ("baseline", "candidate", "difference"):
            numbers[f"{row.metric}.{field}"] = getattr(row, field)
            for end, value in zip(("low", "high"), getattr(row, f"{field}_interval")):
                numbers[f"{row.metric}.{field}_interval.{end}"] = value
    return numbers


def golden_numbers(logits_weights: str, tiny_clip: tuple[str, str], tmp: Path) -> dict[str, dict[str, float]]:
    """case -> {metric key: value} for the whole corpus."""
    quiet: dict[str, Any] = {"progress": False}
    clip = {"extractor": "clip", "clip_model": tiny_clip[0], "clip_weights": tiny_clip[1]}
    cnn = {"extractor": "fashion-cnn"}
    demo_gen, demo_ref = demo_sources()
    digits_gen, digits_ref = _digits(0, 120), _digits(120, 240)
    captions = [f"a handwritten digit {i % 10}" for i in range(120)]
    references = [[f"the digit {i % 10}", "a digit"] for i in range(120)]
    cases: dict[str, Any] = {
        "demo": genmetrics.score(str(demo_gen), demo_ref, "fid,kid,pr,dc", kid_subset_size=100, **quiet),
        "inception-digits": genmetrics.score(digits_gen[:64], "digits", "fid,kid,pr,dc", kid_subsets=20,
                                             kid_subset_size=50, pr_k=4, dc_k=3, seed=3, **quiet),
        "inception-is": genmetrics.score(digits_gen[:64], None, "is", inception_weights=logits_weights,
                                         trust_weights=True, is_splits=4, **quiet),
        "inception-clean": genmetrics.score(digits_gen[:40], digits_ref[:40], "fid,kid", resize="clean",
                                            kid_subset_size=20, **quiet),
        "clip-all": genmetrics.score(digits_gen, digits_ref, "fid,kid,pr,dc,cmmd,clip_score", captions=captions,
                                     references=references, kid_subset_size=60, **clip, **quiet),
        "clip-score": genmetrics.clip_score(digits_gen[:50], captions[:50], clip_model=tiny_clip[0],
                                            clip_weights=tiny_clip[1], w=2.0, prefix="A photo depicts ", **quiet),
        "clip-cmmd": genmetrics.score(digits_gen, digits_ref, "cmmd", cmmd_sigma=3.0, **clip, **quiet),
        "cnn-shipped": genmetrics.score(_fashion("test", 0, 600), "fashion-mnist-train", "fid,kid,is,pr,dc",
                                        kid_subset_size=200, **cnn, **quiet),
        "cnn-source": genmetrics.score(_fashion("test", 600, 900), _fashion("train", 0, 400), "fid,kid,is,pr,dc",
                                       kid_subsets=10, kid_subset_size=100, seed=7, num_samples=250, **cnn, **quiet),
        "cnn-pr-only": genmetrics.score(_fashion("test", 0, 300), _fashion("train", 0, 300), "pr", pr_k=5,
                                        **cnn, **quiet),
        "cnn-dc-only": genmetrics.score(_fashion("test", 0, 300), _fashion("train", 0, 300), "dc", dc_k=2,
                                        **cnn, **quiet),
    }
    numbers = {name: dict(result.metrics) for name, result in cases.items()}
    stats_path = tmp / "ref.npz"
    stats = genmetrics.compute_stats(_fashion("train", 0, 400), stats_path, features=True, **cnn, **quiet)
    numbers["cnn-stats"] = {"n": float(stats.n), "mu_sum": float(stats.mu.sum()),
                            "sigma_trace": float(np.trace(stats.sigma))}
    numbers["cnn-stats-file"] = genmetrics.score(_fashion("test", 0, 500), str(stats_path), "fid,kid,pr,dc",
                                                 kid_subset_size=100, **cnn, **quiet).metrics
    evaluator = genmetrics.Evaluator(str(stats_path), "fid,kid,is,pr,dc", kid_subset_size=100, **cnn)
    images = _fashion("test", 0, 500)
    for start in range(0, 500, 37):
        evaluator.update(images[start:start + 37])
    numbers["cnn-evaluator"] = evaluator.compute().metrics
    numbers["compare-cnn"] = _comparison_numbers(genmetrics.compare(
        _fashion("test", 0, 300), _fashion("test", 300, 600), _fashion("train", 0, 400), "fid,kid,is,pr,dc",
        bootstrap_replicates=20, seed=5, fail_if=["fid>+1"], **cnn, **quiet))
    numbers["compare-clip"] = _comparison_numbers(genmetrics.compare(
        digits_gen[:60], digits_gen[60:], digits_ref, "cmmd,fid,pr", bootstrap_replicates=12, **clip, **quiet))
    return numbers


def _close(expected: float, found: float, scale: float = 1.0) -> bool:
    """Equal to RELATIVE of the value, or of ``scale``, the size of the terms it is a difference of: values near 0
    made by cancellation (KID's kernel means of order 1; compare's ``difference`` rows, FIDs apart) inherit the
    terms' absolute rounding, which moves with the CPU's summation order."""
    return found == expected or math.isclose(found, expected, rel_tol=RELATIVE, abs_tol=RELATIVE * scale)


def _operand_scale(values: dict[str, float], key: str) -> float:
    """For ``METRIC.difference[...]`` the larger |baseline| / |candidate| of that metric (at least 1), else 1."""
    metric, _, rest = key.partition(".")
    if not rest.startswith("difference"):
        return 1.0
    return max(1.0, *(abs(values.get(f"{metric}.{side}", 0.0)) for side in ("baseline", "candidate")))


def test_golden_numbers(logits_weights, tiny_clip, tmp_path):
    """Every number of the corpus equals the golden one to RELATIVE (of its terms' size for values made by
    cancellation, see ``_close``), and no key appeared or vanished
    (``GENMETRICS_WRITE_GOLDEN=1 pytest tests/test_golden.py`` rewrites the file instead)."""
    found = golden_numbers(logits_weights, tiny_clip, tmp_path)
    if os.environ.get("GENMETRICS_WRITE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"wrote {GOLDEN}")
    expected = json.loads(GOLDEN.read_text())
    assert set(found) == set(expected)
    for case, values in expected.items():
        assert set(found[case]) == set(values), case
        wrong = {key: (value, found[case][key]) for key, value in values.items()
                 if not _close(value, found[case][key], _operand_scale(values, key))}
        assert not wrong, f"{case}: golden vs now {wrong}"
