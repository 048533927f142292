"""Training speed of the reference generators: steps/s and images/s, now against the float32 baseline.

    python benchmarks/train_speed.py [--models ddpm wgan-gp] [--steps 10] [--warmup 2] [--rounds 3] [--threads T]

For each model, two copies built with the same weights (seed 0): one with its default hyper-parameters, one with
``precision=fp32`` (the code before the bfloat16 training step, for the models that have ``precision``; models without
it are timed once). Both run ``--warmup`` untimed and then, alternately for ``--rounds`` rounds (so that a change in
the machine's speed hits both alike), ``--steps`` timed calls of ``train_step`` (inside the model's
``precision_context``, as ``genmetrics train`` runs it) on batches of random 28x28 images with random labels (the
speed of a step does not depend on the pixels), on the CPU with ``--threads`` torch threads (default: all). Prints
one row per model: seconds per step and training images/s (batch_size x batches_per_step per step) of each, and
the speed-up, the baseline's time over the default's, from the median round.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing
from genmetrics_models.base import Generator, to_float
from genmetrics_models.registry import MODELS, build_model

BASELINE = {"precision": "fp32"}
"""The hyper-parameters that restore the training step before the speed-up."""


class Timed:
    """One model in training mode with a fixed batch of random images and labels."""

    def __init__(self, model: Generator) -> None:
        self.model = model.train()
        generator = torch.Generator().manual_seed(0)
        self.per_step = model.hparams["batch_size"] * model.batches_per_step
        images = torch.randint(0, 256, (self.per_step, 28, 28, 1), generator=generator, dtype=torch.uint8)
        self.batch = to_float(images)
        self.labels = torch.randint(0, 10, (self.per_step,), generator=generator)
        self.generator = generator

    def seconds_per_step(self, steps: int) -> float:
        """Mean seconds of ``steps`` training steps."""
        start = time.perf_counter()
        for _ in range(steps):
            with self.model.precision_context():
                self.model.train_step(self.batch, self.labels, self.generator)
        return (time.perf_counter() - start) / steps


def measure(name: str, steps: int, warmup: int, rounds: int,
            hparams: dict | None = None) -> tuple[float, float | None, int]:
    """Median seconds per step of model ``name`` at ``hparams`` over its defaults and at ``BASELINE`` over those
    (None: it has no such hyper-parameters, or already has their values), and the images one step trains on."""
    hparams = dict(hparams or {})
    defaults = {**MODELS[name].defaults, **hparams}
    runs = [Timed(build_model(name, hparams, generator=torch.Generator().manual_seed(0)))]
    if all(key in defaults for key in BASELINE) and any(defaults[k] != v for k, v in BASELINE.items()):
        runs.append(Timed(build_model(name, {**hparams, **BASELINE}, generator=torch.Generator().manual_seed(0))))
    for run in runs:
        run.seconds_per_step(warmup)
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for run, seconds in zip(runs, times):
            seconds.append(run.seconds_per_step(steps))
    medians = [statistics.median(seconds) for seconds in times]
    return medians[0], medians[1] if len(medians) > 1 else None, runs[0].per_step


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round and model (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds of {args.steps} "
          f"timed steps after {args.warmup}; baseline: {BASELINE}")
    print("model\ts/step\timages/s\tbaseline s/step\tbaseline images/s\tspeed-up")
    for name in args.models:
        seconds, baseline, per_step = measure(name, args.steps, args.warmup, args.rounds)
        row = f"{name}\t{seconds:.4f}\t{per_step / seconds:.0f}"
        if baseline is not None:
            row += f"\t{baseline:.4f}\t{per_step / baseline:.0f}\t{baseline / seconds:.2f}x"
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
