"""Package boundaries: models uses genmetrics' public API only, plus genmetrics.errors and the modules that own the
rules both packages follow (atomic writes, idx files, chunk seeding, versions, the Fashion-MNIST captions that
fashion-clip and t2i train on); genmetrics never imports models."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_models_reaches_genmetrics_only_through_its_public_api():
    used = {name for path in (REPO / "models").glob("*.py") for name in _imported_modules(path)
            if name.split(".")[0] == "genmetrics"}
    shared = {"genmetrics.io.atomic", "genmetrics.io.idx", "genmetrics.seeding", "genmetrics.versions",
              "genmetrics.io.fashion_captions"}
    assert used == {"genmetrics", "genmetrics.errors", *shared}  # one owner of each rule both packages follow


def test_genmetrics_never_imports_models_or_cli():
    for path in (REPO / "genmetrics").rglob("*.py"):
        roots = {name.split(".")[0] for name in _imported_modules(path)}
        assert not roots & {"models", "cli", "genmetrics_models", "genmetrics_cli"}, path
