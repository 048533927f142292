"""benchmarks/train_speed.py on tiny models: it times real training steps of the default and of the float32
baseline and prints one row per model."""
from __future__ import annotations

import pytest

from benchmarks import train_speed
from genmetrics_models.registry import build_model
from tests.models.conftest import TINY


@pytest.mark.parametrize("name", ["ddpm", "wgan-gp"])
def test_measure_times_default_and_baseline(name):
    seconds, baseline, per_step = train_speed.measure(name, steps=2, warmup=1, rounds=1, hparams=TINY[name])
    assert 0 < seconds < 30 and 0 < baseline < 30
    model = build_model(name, TINY[name])
    assert per_step == model.hparams["batch_size"] * model.batches_per_step  # wgan-gp: n_critic batches a step


def test_models_without_precision_are_timed_once():
    seconds, baseline, _ = train_speed.measure("vae", steps=1, warmup=1, rounds=1, hparams=TINY["vae"])
    assert seconds > 0 and baseline is None
