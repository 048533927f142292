"""FID against training steps: where each reference generator's training was heading when it stopped.

    python benchmarks/fid_curves.py models/pretrained/dcgan models/pretrained/wgan-gp ... --out fid_curves.png

Each FOLDER is a run folder of ``genmetrics train`` or a shipped one (``benchmarks/reference_models.py --ship``
copies the run's ``history.json``): its ``history.json`` holds the metrics of every training evaluation
(``--eval-every``; ``benchmarks/reference_models.sh`` evaluates 1,000 samples with fashion-cnn). Plots FID (log
scale) and recall against the step, one line per folder, labelled by the folder's name, and prints the points
(tab-separated: folder, step, FID, recall) with, per folder, the FID's change over the last quarter of its steps.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing
from genmetrics_models.files import write_figure


def curve(folder: Path) -> list[dict[str, float]]:
    """The evaluation rows ``{"step", "fid", "recall", ...}`` of ``folder/history.json`` that have a FID, by step."""
    path = folder / "history.json"
    if not path.is_file():
        raise SystemExit(f"{folder}: no history.json (train with --eval-every, or ship with reference_models.py)")
    rows = [row for row in json.loads(path.read_text())["metrics"] if "fid" in row]
    if not rows:
        raise SystemExit(f"{path}: no evaluation with a FID")
    return sorted(rows, key=lambda row: row["step"])


def last_quarter_change(rows: Sequence[dict[str, float]]) -> float:
    """FID at the last evaluation minus FID at the first evaluation of the last quarter of the steps (negative:
    still falling)."""
    final = rows[-1]["step"]
    start = next(row for row in rows if row["step"] >= 0.75 * final)
    return rows[-1]["fid"] - start["fid"]


def plot(curves: dict[str, list[dict[str, float]]], path: Path) -> None:
    """A PNG at ``path``: FID (log scale) and recall against the training step, one line per curve."""
    from matplotlib.figure import Figure  # Agg canvas, no pyplot

    figure = Figure(figsize=(10, 3.8), layout="constrained")
    fid_panel, recall_panel = figure.subplots(1, 2)
    for name, rows in curves.items():
        steps = [row["step"] for row in rows]
        fid_panel.plot(steps, [row["fid"] for row in rows], marker=".", label=name)
        if all("recall" in row for row in rows):
            recall_panel.plot(steps, [row["recall"] for row in rows], marker=".", label=name)
    fid_panel.set(xlabel="training step", ylabel="FID", yscale="log", title="FID of the training evaluations")
    recall_panel.set(xlabel="training step", ylabel="recall", ylim=(0, 1), title="recall")
    fid_panel.legend()
    write_figure(path, figure, dpi=110)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="run or shipped folders with a history.json")
    parser.add_argument("--out", type=Path, default=None, help="write the plot here (PNG)")
    args = parser.parse_args(argv)
    curves = {folder.name: curve(folder) for folder in args.folders}
    print("folder\tstep\tFID\trecall")
    for name, rows in curves.items():
        for row in rows:
            print(f"{name}\t{row['step']}\t{row['fid']:.3f}\t{row.get('recall', float('nan')):.4f}")
        print(f"# {name}: FID change over the last quarter of its steps {last_quarter_change(rows):+.3f}")
    if args.out is not None:
        plot(curves, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
