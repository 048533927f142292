"""The built wheel: installed import names unique to this project, every module inside, and a clear line where the
shipped data (not in the wheel) is needed."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"genmetrics": "genmetrics", "models": "genmetrics_models", "cli": "genmetrics_cli"}


def _build_wheel(tmp_path: Path) -> Path:
    """A wheel of a copy of the repository's package folders (setuptools writes build/ beside its sources)."""
    source = tmp_path / "source"
    for folder in FOLDERS:
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    return next((tmp_path / "dist").glob("genmetrics-*.whl"))


def test_wheel_has_unique_top_level_names_and_explains_the_missing_data(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        top_level = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/top_level.txt"))
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == set(FOLDERS.values())
    assert sorted(top_level.split()) == sorted(FOLDERS.values())  # no `models` or `cli` to shadow a user's own
    for folder, installed in FOLDERS.items():
        modules = {path.relative_to(REPO / folder).as_posix() for path in (REPO / folder).rglob("*.py")}
        assert {f"{installed}/{module}" for module in modules} <= names, folder
    assert "genmetrics_models/pretrained/ddpm/samples.png" in names

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("GENMETRICS_DATA_STATS", None)
    code = ("import sys, genmetrics, genmetrics_cli.main as m; assert genmetrics.__file__.startswith(sys.argv[1]); "
            "m.cli(sys.argv[2:], prog_name='genmetrics')")
    proc = subprocess.run([sys.executable, "-c", code, str(target), "score"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: no shipped statistics or demo: '{target}/data_stats/index.json' is missing (a wheel, `pip install "
        ".`, does not carry data_stats/); install from a source checkout with `pip install -e .`, or set "
        "GENMETRICS_DATA_STATS to the data_stats folder of a genmetrics checkout")
