"""Training speed of the reference generators: steps/s and images/s of each model at its default settings.

    python benchmarks/train_speed.py [--models ddpm wgan-gp] [--steps 20] [--warmup 3] [--threads T]

For each model: built with its default hyper-parameters (seed 0), then ``--warmup`` untimed and ``--steps`` timed
calls of ``train_step`` on batches of random 28x28 images with random labels (the speed of a step does not depend on
the pixels), on the CPU with ``--threads`` torch threads (default: all). Prints one row per model: seconds per step,
steps/s and training images/s (batch_size x batches_per_step per step). The generators issue's goal is >= 2x for
ddpm and wgan-gp against the numbers this prints for the current code (README, "Guidance and class fidelity").
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing
from genmetrics_models.base import to_float
from genmetrics_models.registry import MODELS, build_model


def step_seconds(name: str, steps: int, warmup: int, hparams: dict | None = None) -> tuple[float, int]:
    """Mean seconds per training step of model ``name`` and the images one step trains on."""
    generator = torch.Generator().manual_seed(0)
    model = build_model(name, hparams, generator=generator)
    model.train()
    per_step = model.hparams["batch_size"] * model.batches_per_step
    images = torch.randint(0, 256, (per_step, 28, 28, 1), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, 10, (per_step,), generator=generator)
    batch = to_float(images)
    for _ in range(warmup):
        model.train_step(batch, labels, generator)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_step(batch, labels, generator)
    return (time.perf_counter() - start) / steps, per_step


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} timed steps after "
          f"{args.warmup}")
    print("model\ts/step\tsteps/s\timages/s")
    for name in args.models:
        seconds, per_step = step_seconds(name, args.steps, args.warmup)
        print(f"{name}\t{seconds:.4f}\t{1 / seconds:.2f}\t{per_step / seconds:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
