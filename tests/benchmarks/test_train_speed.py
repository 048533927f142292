"""benchmarks/train_speed.py on tiny models: it times real training steps and prints one row per model."""
from __future__ import annotations

import pytest

from benchmarks import train_speed
from genmetrics_models.registry import build_model
from tests.models.conftest import TINY


@pytest.mark.parametrize("name", ["ddpm", "wgan-gp"])
def test_step_seconds_times_training_steps(name):
    seconds, per_step = train_speed.step_seconds(name, steps=2, warmup=1, hparams=TINY[name])
    assert 0 < seconds < 30
    model = build_model(name, TINY[name])
    assert per_step == model.hparams["batch_size"] * model.batches_per_step  # wgan-gp: n_critic batches a step
