"""The fidelity/diversity trade-off of classifier-free guidance, measured: sample a conditional DDPM checkpoint at
several guidance weights w (Ho & Salimans: eps = (1 + w) eps_c - w eps_u; 0 = no guidance), score each set with
genmetrics (precision, recall, FID against ``--ref``) and plot the three against w.

    python benchmarks/guidance_sweep.py runs/ddpm --scales 0,0.5,1,2,4 --num-samples 2000 --out guidance_sweep.png

Every weight gets the same seed, so the same labels and initial noise: the curves differ by guidance alone. Prints
one row per weight (tab-separated) and writes the plot (PNG, matplotlib Agg) and, with ``--json``, the rows.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing
import genmetrics
from genmetrics.errors import ConfigError, GenMetricsError
from genmetrics_models.checkpoint import read_checkpoint
from genmetrics_models.data import REFERENCES, native
from genmetrics_models.files import write_bytes

METRICS = ("precision", "recall", "fid")


def sweep(checkpoint: str | Path, scales: Sequence[float], *, ref: str | None = None, num_samples: int = 1000,
          extractor: str = "inception", sampling_steps: int | None = None, seed: int = 0, device: str = "cpu",
          progress: bool = True) -> list[dict[str, float]]:
    """One row ``{"guidance": w, "precision", "recall", "fid"}`` per weight in ``scales``: ``num_samples`` samples of
    the conditional model at ``checkpoint`` (uniform random labels; ``sampling_steps`` None: the checkpoint's sampler)
    scored against ``ref`` (default: the shipped reference of the checkpoint's dataset) with ``extractor``."""
    loaded = read_checkpoint(checkpoint, device)
    model, dataset = loaded.model.eval(), loaded.config["dataset"]
    if not model.conditional or "guidance" not in model.sample_options:
        raise ConfigError(f"{str(checkpoint)!r} holds a {loaded.config['model']} model; the sweep needs a conditional "
                          "ddpm (genmetrics train ddpm)")
    rows = []
    for w in scales:
        options = {"guidance": w, "sampling_steps": sampling_steps}
        model.check_sample_options(options)  # before any sampling

        def source(n: int, generator: torch.Generator, options: dict = options):
            return native(dataset, model.sample(n, generator, **options).numpy())

        result = genmetrics.score(source, ref or REFERENCES[dataset], "fid,pr", num_samples=num_samples, seed=seed,
                                  extractor=extractor, device=device, progress=progress)
        rows.append({"guidance": float(w), **{key: float(result.metrics[key]) for key in METRICS}})
    return rows


def plot(rows: Sequence[dict[str, float]], path: str | Path, title: str = "") -> None:
    """A PNG at ``path``: precision and recall (left panel) and FID (right) against the guidance weight."""
    from matplotlib.figure import Figure  # Agg canvas, no pyplot

    scales = [row["guidance"] for row in rows]
    figure = Figure(figsize=(9, 3.5), layout="constrained")
    left, right = figure.subplots(1, 2)
    for key in ("precision", "recall"):
        left.plot(scales, [row[key] for row in rows], marker="o", label=key)
    left.set(xlabel="guidance weight w", ylim=(0, 1), title="precision / recall")
    left.legend()
    right.plot(scales, [row["fid"] for row in rows], marker="o", color="C3")
    right.set(xlabel="guidance weight w", title="FID")
    if title:
        figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    write_bytes(path, buffer.getvalue())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a conditional ddpm: training folder or step-*.json")
    parser.add_argument("--scales", default="0,0.5,1,2,4", help="guidance weights w, comma-separated (default "
                                                                "0,0.5,1,2,4)")
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
        rows = sweep(args.checkpoint, scales, ref=args.ref, num_samples=args.num_samples, extractor=args.extractor,
                     sampling_steps=args.sampling_steps, seed=args.seed, device=args.device,
                     progress=not args.no_progress)
        plot(rows, args.out, title=f"{args.checkpoint}: {args.num_samples} samples per weight")
        if args.json:
            write_bytes(args.json, (json.dumps(rows, indent=1) + "\n").encode())
    except GenMetricsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\t".join(["guidance", *METRICS]))
    for row in rows:
        print("\t".join(f"{row[key]:.6g}" for key in ("guidance", *METRICS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
