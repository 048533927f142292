"""The architecture's promises (#18): one registry entry makes a metric, configs refuse options that do not apply,
the provenance keeps its JSON keys, every public parameter is documented, functions stay short, no import cycles."""
from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import genmetrics
from genmetrics.errors import ConfigError
from genmetrics.features.registry import FashionCNNConfig, InceptionConfig, extractor_config
from genmetrics.metrics import registry
from genmetrics.metrics.registry import METRICS, MetricDef, MetricOptions
from genmetrics.report import comparison_table, to_table
from genmetrics_cli.main import cli
from tests.helpers import fashion_mnist_subset

PACKAGE = Path(genmetrics.__file__).resolve().parent
MAX_FUNCTION_LINES = 60


def _fashion(start: int, stop: int) -> np.ndarray:
    return np.ascontiguousarray(fashion_mnist_subset("test")[0][start:stop, :, :, None])


def _mean_gap(inputs: registry.MetricInputs) -> dict[str, float]:
    return {"mean_gap": float(np.abs(inputs.mu_gen - inputs.mu_ref).max())}


def _mean_gap_replicates(inputs: registry.BootstrapInputs) -> dict[str, tuple[float, np.ndarray]]:
    means = inputs.counts @ inputs.feats_gen.astype(np.float64) / inputs.counts.sum(1, keepdims=True)
    return {"mean_gap": (_mean_gap(inputs)["mean_gap"], np.abs(means - inputs.mu_ref).max(1))}


def test_one_registry_entry_makes_a_metric_everywhere(monkeypatch):
    """A toy metric registered in METRICS alone is parsed, computed by score and Evaluator, labelled in the table,
    resampled and checked by compare: nothing else needs to know about it."""
    toy = MetricDef("gap", "largest gap of the feature means", {"mean_gap": "mean gap"}, {"mean_gap": "mean gap"},
                    needs_features=True, compute=_mean_gap, replicate=_mean_gap_replicates)
    monkeypatch.setitem(METRICS, "gap", toy)
    monkeypatch.setitem(registry.LABELS, "mean_gap", "mean gap")
    monkeypatch.setitem(registry.ROWS, "mean_gap", toy)
    gen, ref = _fashion(0, 200), _fashion(200, 400)
    result = genmetrics.score(gen, ref, "fid,gap", extractor="fashion-cnn", progress=False)
    gen_feats, ref_feats = (genmetrics.compute_stats(x, extractor="fashion-cnn", progress=False) for x in (gen, ref))
    assert result.metrics["mean_gap"] == pytest.approx(np.abs(gen_feats.mu - ref_feats.mu).max(), rel=1e-12)
    assert "mean gap" in to_table(result)
    evaluator = genmetrics.Evaluator(ref, "gap", extractor="fashion-cnn")
    evaluator.update(gen)
    assert evaluator.compute().metrics["mean_gap"] == pytest.approx(result.metrics["mean_gap"], rel=1e-12)
    comparison = genmetrics.compare(gen, _fashion(400, 600), ref, "gap", extractor="fashion-cnn",
                                    bootstrap_replicates=10, fail_if=["mean_gap>+100"], progress=False)
    assert comparison.rows[0].metric == "mean_gap" and comparison.passed and "mean gap" in comparison_table(comparison)


def test_registry_entries_are_complete():
    """Every metric is computable (or is clip_score, computed from captions), has labelled outputs and, where compare
    takes it, rows with a replicate function."""
    for name, metric in METRICS.items():
        assert metric.name == name and metric.outputs and metric.help
        assert (metric.compute is None) == metric.needs_captions, name
        assert (metric.replicate is None) == (not metric.rows) == bool(metric.no_compare), name
        assert set(metric.outputs) <= set(registry.LABELS)
    assert list(registry.ROWS) == ["fid", "sfid", "kid", "is", "precision", "recall", "density", "coverage", "cmmd",
                                   "realism"]


def test_extractor_configs_refuse_options_that_do_not_apply():
    assert extractor_config("inception", resize="clean") == InceptionConfig(resize="clean")
    assert extractor_config("fashion-cnn", trust_weights=True) == FashionCNNConfig(trust_weights=True)
    with pytest.raises(ConfigError, match=r"^resize=\.\.\. does not apply to extractor=fashion-cnn: drop it "
                                          r"\(this extractor takes trust_weights=True\)$"):
        extractor_config("fashion-cnn", resize="clean")
    with pytest.raises(ConfigError, match=r"^clip_model=\.\.\. does not apply to extractor=inception"):
        genmetrics.score(_fashion(0, 4), _fashion(4, 8), "fid", clip_model="ViT-B-32")
    with pytest.raises(ConfigError, match=r"^resize=\.\.\. given beside an extractor config"):
        genmetrics.score(_fashion(0, 4), _fashion(4, 8), "fid", extractor=InceptionConfig(), resize="clean")
    with pytest.raises(ConfigError, match="unknown resize=bicubic"):
        InceptionConfig(resize="bicubic")
    with pytest.raises(ConfigError, match=r"^pr_k=\.\.\. given beside options=MetricOptions"):
        genmetrics.score(_fashion(0, 4), _fashion(4, 8), "pr", extractor="fashion-cnn", pr_k=4,
                         options=MetricOptions())


def test_cli_refuses_an_option_of_another_extractor_with_exit_2(tmp_path):
    np.save(tmp_path / "x.npy", _fashion(0, 8))
    result = CliRunner().invoke(cli, ["score", str(tmp_path / "x.npy"), str(tmp_path / "x.npy"), "--extractor",
                                      "fashion-cnn", "--resize", "clean"])
    assert result.exit_code == 2
    assert result.output == ("error: --resize ... does not apply to --extractor fashion-cnn: drop it (this extractor "
                             "takes --trust-weights)\n")


def test_typed_configs_give_the_numbers_of_the_flat_keywords():
    gen, ref = _fashion(0, 120), _fashion(120, 240)
    flat = genmetrics.score(gen, ref, "fid,kid,pr", extractor="fashion-cnn", kid_subset_size=50, pr_k=4,
                            progress=False)
    typed = genmetrics.score(gen, ref, "fid,kid,pr", extractor=FashionCNNConfig(),
                             options=MetricOptions(kid_subset_size=50, pr_k=4), progress=False)
    assert typed.metrics == flat.metrics
    assert typed.provenance.to_dict() == flat.provenance.to_dict()


def test_provenance_keeps_its_json_keys():
    """The JSON keys of score, Evaluator and compare are those of the releases before the Provenance record."""
    gen, ref = _fashion(0, 60), _fashion(60, 120)
    result = genmetrics.score(gen, ref, "fid,kid,is,pr,dc", extractor="fashion-cnn", kid_subset_size=20,
                              progress=False)
    prov = json.loads(json.dumps(result.to_dict()))["provenance"]
    assert list(prov) == ["extractor", "weights_file", "metrics", "seed", "world_size", "kid", "is_splits",
                          "is_order", "pr_k", "dc_k", "generated", "reference", "versions", "warnings"]
    assert set(prov["generated"]) == {"n", "source", "content_hash", "n_skipped", "skipped"}
    assert result.provenance["extractor"] == result.provenance.extractor.to_dict()  # reads like the old dict
    comparison = genmetrics.compare(gen, _fashion(120, 180), ref, "fid,kid",
                                    extractor="fashion-cnn", bootstrap_replicates=10, progress=False)
    assert list(comparison.to_dict()["provenance"]) == ["extractor", "weights_file", "metrics", "seed", "bootstrap",
                                                        "baseline", "candidate", "reference", "versions", "warnings"]


def test_every_public_parameter_is_documented():
    for function in (genmetrics.score, genmetrics.compare, genmetrics.compute_stats, genmetrics.clip_score,
                     genmetrics.Evaluator):
        signed = function.__init__ if inspect.isclass(function) else function
        args = function.__doc__.split("\nArgs:\n", 1)[1]
        for name in inspect.signature(signed).parameters:
            assert name == "self" or f"    {name}: " in args, (function.__qualname__, name)


def _functions(tree: ast.AST):
    return [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_no_function_in_genmetrics_is_longer_than_60_lines():
    long = [f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in sorted(PACKAGE.rglob("*.py")) for node in _functions(ast.parse(path.read_text()))
            if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, long


def _module_imports(path: Path) -> set[str]:
    """The genmetrics modules ``path`` imports at module level (not inside functions or TYPE_CHECKING)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("genmetrics"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("genmetrics"))
    return found


def test_no_import_cycles_in_genmetrics():
    modules = {".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): path
               for path in PACKAGE.rglob("*.py")}
    graph = {name: {imported for imported in _module_imports(path) if imported in modules and imported != name}
             for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for imported in graph[name]:
            assert state.get(imported) != 1, " -> ".join([*trail, name, imported])
            if imported not in state:
                visit(imported, [*trail, name])
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


def test_provenance_lists_the_metrics_in_the_order_asked(tiny_clip):
    """Regression: with clip_score asked before a distribution metric, the list repeated the latter."""
    images = np.repeat(_fashion(0, 6), 3, axis=3)
    result = genmetrics.score(images, images[::-1].copy(), "clip_score,fid", extractor="clip",
                              clip_model=tiny_clip[0], clip_weights=tiny_clip[1], captions=["a shirt"] * 6,
                              progress=False)
    assert result.provenance.metrics == ("clip_score", "fid") and list(result.metrics)[0] == "fid"
