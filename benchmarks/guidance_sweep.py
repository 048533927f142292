"""The fidelity/diversity trade-off of guidance, measured: sample a conditional DDPM checkpoint at several
classifier-free guidance weights w (Ho & Salimans: eps = (1 + w) eps_c - w eps_u; 0 = no guidance) or, with
``--kind classifier``, classifier scales s (Dhariwal & Nichol), score each set with genmetrics (precision, recall,
FID against ``--ref``) and, for Fashion-MNIST models, the class fidelity: the shipped fashion-cnn's accuracy on the
samples w.r.t. the labels they were drawn for, and its IS; plot them against w.

    python benchmarks/guidance_sweep.py runs/ddpm --scales 0,0.5,1,2,4 --num-samples 2000 --out guidance_sweep.png

Every weight gets the same seed and the same balanced labels (i % K), so the same initial noise: the curves differ
by guidance alone. Prints one row per weight (tab-separated) and writes the plot (PNG, matplotlib Agg) and, with
``--json``, the rows.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing
import genmetrics
from benchmarks.class_fidelity import class_fidelity
from genmetrics.errors import ConfigError, GenMetricsError
from genmetrics_models.checkpoint import read_checkpoint
from genmetrics_models.data import REFERENCES, native
from genmetrics_models.files import write_bytes, write_figure

METRICS = ("precision", "recall", "fid", "accuracy", "is")


def sweep(checkpoint: str | Path, scales: Sequence[float], *, kind: str = "cfg", ref: str | None = None,
          num_samples: int = 1000, extractor: str = "inception", sampling_steps: int | None = None, seed: int = 0,
          device: str = "cpu", progress: bool = True) -> list[dict[str, float]]:
    """One row ``{"guidance": w, "precision", "recall", "fid", "accuracy", "is"}`` per weight in ``scales``:
    ``num_samples`` samples of the conditional model at ``checkpoint``, labels ``i % K`` (balanced), drawn from one
    seed at every weight, scored against ``ref`` (default: the shipped reference of the checkpoint's dataset) with
    ``extractor``; ``accuracy`` and ``is``: fashion-cnn's class fidelity and IS (Fashion-MNIST-like data only).
    ``kind``: "cfg" sweeps the classifier-free weight w, "classifier" the classifier scale s (at w = 0)."""
    loaded = read_checkpoint(checkpoint, device)
    model, dataset = loaded.model.eval(), loaded.config["dataset"]
    if not model.conditional or "guidance" not in model.sample_options:
        raise ConfigError(f"{str(checkpoint)!r} holds a {loaded.config['model']} model; the sweep needs a conditional "
                          "ddpm (genmetrics train ddpm)")
    option = {"cfg": "guidance", "classifier": "classifier_scale"}[kind]
    labels = torch.arange(num_samples) % model.num_classes
    fashion = dataset == "fashion-mnist"
    rows = []
    for w in scales:
        options = {option: w, "sampling_steps": sampling_steps}
        model.check_sample_options(options)  # before any sampling
        images = native(dataset, model.sample(num_samples, torch.Generator().manual_seed(seed), labels,
                                              **options).numpy())
        result = genmetrics.score(images, ref or REFERENCES[dataset], "fid,pr", extractor=extractor, device=device,
                                  progress=progress)
        row = {"guidance": float(w), **{key: float(result.metrics[key]) for key in ("precision", "recall", "fid")}}
        if fashion:
            fidelity = class_fidelity(images, labels.numpy())
            row.update(accuracy=fidelity.accuracy, **{"is": fidelity.inception_score})
        rows.append(row)
    return rows


def plot(rows: Sequence[dict[str, float]], path: str | Path, title: str = "", xlabel: str = "guidance weight w") -> None:
    """A PNG at ``path``: precision, recall and (when measured) class accuracy (left), FID (middle) and fashion-cnn
    IS (right, when measured) against the guidance weight."""
    from matplotlib.figure import Figure  # Agg canvas, no pyplot

    scales = [row["guidance"] for row in rows]
    fidelity = "accuracy" in rows[0]
    figure = Figure(figsize=(13 if fidelity else 9, 3.5), layout="constrained")
    panels = figure.subplots(1, 3 if fidelity else 2)
    for key in ("precision", "recall", "accuracy")[:3 if fidelity else 2]:
        panels[0].plot(scales, [row[key] for row in rows], marker="o", label=key)
    panels[0].set(xlabel=xlabel, ylim=(0, 1), title="precision / recall" + (" / class accuracy" if fidelity else ""))
    panels[0].legend()
    panels[1].plot(scales, [row["fid"] for row in rows], marker="o", color="C3")
    panels[1].set(xlabel=xlabel, title="FID")
    if fidelity:
        panels[2].plot(scales, [row["is"] for row in rows], marker="o", color="C4")
        panels[2].set(xlabel=xlabel, title="IS (fashion-cnn)")
    if title:
        figure.suptitle(title)
    write_figure(path, figure, dpi=100)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a conditional ddpm: training folder or step-*.json")
    parser.add_argument("--scales", default="0,0.5,1,2,4", help="guidance weights w, comma-separated (default "
                                                                "0,0.5,1,2,4)")
    parser.add_argument("--kind", choices=("cfg", "classifier"), default="cfg",
                        help="cfg: sweep the classifier-free weight w; classifier: the classifier scale s (at w = 0)")
    parser.add_argument("--ref", default=None, help="reference (default: the dataset's shipped one)")
    parser.add_argument("--num-samples", type=int, default=1000, help="samples per weight (default 1000)")
    parser.add_argument("--extractor", default="inception", help="feature extractor (default inception)")
    parser.add_argument("--sampling-steps", type=int, default=None,
                        help="0: Algorithm 2, K: DDIM with K steps (default: the checkpoint's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="guidance_sweep.png", help="the plot (default guidance_sweep.png)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        scales = [float(item) for item in args.scales.split(",")]
    except ValueError:
        parser.error(f"--scales {args.scales!r}: expected comma-separated numbers, e.g. 0,0.5,1,2,4")
    try:
        rows = sweep(args.checkpoint, scales, kind=args.kind, ref=args.ref, num_samples=args.num_samples, extractor=args.extractor,
                     sampling_steps=args.sampling_steps, seed=args.seed, device=args.device,
                     progress=not args.no_progress)
        plot(rows, args.out, title=f"{args.checkpoint}: {args.num_samples} samples per weight",
             xlabel="guidance weight w" if args.kind == "cfg" else "classifier scale s")
        if args.json:
            write_bytes(args.json, (json.dumps(rows, indent=1) + "\n").encode())
    except GenMetricsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    columns = ["guidance", *(key for key in METRICS if key in rows[0])]
    print("\t".join(columns))
    for row in rows:
        print("\t".join(f"{row[key]:.6g}" for key in columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
