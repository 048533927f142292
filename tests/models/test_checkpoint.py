"""Checkpoints: safetensors + JSON, round trips, newest-wins, corruption."""
from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch

from genmetrics.errors import InputError
from genmetrics_models.checkpoint import (
    FORMAT,
    export_weights,
    latest_checkpoint,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from genmetrics_models.registry import MODELS, build_model
from tests.models.conftest import TINY, seeded


def _trained(name: str, digit_batch, steps: int = 2):
    model = build_model(name, TINY[name], generator=seeded(0))
    generator = seeded(1)
    per_step = model.hparams["batch_size"] * model.batches_per_step
    for step in range(steps):
        model.train_step(digit_batch[0][:per_step], digit_batch[1][:per_step], generator)
    return model, generator


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_restores_weights_optimizers_and_rng(tmp_path, digit_batch, name):
    model, generator = _trained(name, digit_batch)
    path = save_checkpoint(tmp_path, model, step=2, dataset="digits", seed=7, rng_state=generator.get_state(),
                           run={"steps": 2})
    assert path.name == "step-00000002.json" and (tmp_path / "step-00000002.safetensors").is_file()
    config = json.loads(path.read_text())
    assert config["format"] == FORMAT and config["model"] == name and config["hparams"] == model.hparams
    assert (config["dataset"], config["step"], config["seed"], config["run"]) == ("digits", 2, 7, {"steps": 2})
    assert {"genmetrics", "torch", "safetensors", "numpy", "python"} <= set(config["versions"])
    loaded = load_checkpoint(tmp_path)  # a folder: its newest checkpoint
    assert not loaded.training
    assert torch.equal(loaded.sample(6, seeded(3)), model.sample(6, seeded(3)))
    for (key, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), key
    resumed = read_checkpoint(path, training=True)
    assert torch.equal(resumed.rng_state, generator.get_state()) and resumed.step == 2
    for opt_name, optimizer in model.optimizers.items():
        saved, restored = optimizer.state_dict(), resumed.model.optimizers[opt_name].state_dict()
        assert saved["param_groups"] == restored["param_groups"]
        for index, values in saved["state"].items():
            for key, value in values.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(restored["state"][index][key]))


def test_the_newest_checkpoint_replaces_older_ones(tmp_path, digit_batch):
    model, generator = _trained("dcgan", digit_batch)
    for step in (1, 5):
        save_checkpoint(tmp_path, model, step=step, dataset="digits", seed=0, rng_state=generator.get_state())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000005.json", "step-00000005.safetensors"]
    assert latest_checkpoint(tmp_path) == tmp_path / "step-00000005.json"
    assert read_checkpoint(tmp_path / "step-00000005.safetensors").step == 5


def test_files_hold_no_pickle(tmp_path, digit_batch):
    model, generator = _trained("vae", digit_batch)
    save_checkpoint(tmp_path, model, step=2, dataset="digits", seed=0, rng_state=generator.get_state())
    tensors = safetensors.torch.load_file(tmp_path / "step-00000002.safetensors")
    assert "rng.train" in tensors and "model.encoder.net.0.weight" in tensors
    assert any(key.startswith("optim.autoencoder.") for key in tensors)
    assert b"\x80\x04" not in (tmp_path / "step-00000002.json").read_bytes()


def test_corrupt_missing_or_foreign_checkpoints_are_input_errors(tmp_path, digit_batch):
    with pytest.raises(InputError, match=r"no checkpoint \(step-\*.json\) in folder"):
        load_checkpoint(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "step-00000001.json")
    model, generator = _trained("dcgan", digit_batch)
    path = save_checkpoint(tmp_path, model, step=2, dataset="digits", seed=0, rng_state=generator.get_state())
    weights = tmp_path / "step-00000002.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"step-00000002.safetensors' does not match the sha256 recorded"):
        load_checkpoint(tmp_path)
    weights.unlink()
    with pytest.raises(InputError, match=r"cannot load checkpoint .*FileNotFoundError"):
        load_checkpoint(path)
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match="is not a genmetrics model checkpoint"):
        load_checkpoint(path)
    path.write_text("{")
    with pytest.raises(InputError, match="cannot read checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("name", ["cgan", "vae"])
def test_exported_weights_sample_like_the_checkpoint_and_refuse_to_resume(tmp_path, digit_batch, name):
    model, generator = _trained(name, digit_batch)
    source = save_checkpoint(tmp_path, model, step=2, dataset="digits", seed=0,
                             rng_state=generator.get_state())
    exported = export_weights(source, tmp_path / "shipped")
    assert exported.name == "step-00000002.json"
    assert exported.with_suffix(".safetensors").stat().st_size < source.with_suffix(".safetensors").stat().st_size
    config = json.loads(exported.read_text())
    assert config["optimizers"] == {} and config["hparams"] == json.loads(source.read_text())["hparams"]
    original, shipped = load_checkpoint(source), load_checkpoint(tmp_path / "shipped")
    labels = [1, 2, 3, 4] if model.conditional else None
    assert torch.equal(original.sample(4, seeded(5), labels), shipped.sample(4, seeded(5), labels))
    with pytest.raises(InputError, match="weights-only checkpoint .* cannot resume training"):
        read_checkpoint(exported, training=True)


@pytest.mark.parametrize("name", ["ddpm", "wgan-gp"])
def test_checkpoints_from_before_precision_existed_load_as_fp32(tmp_path, digit_batch, name):
    model, generator = _trained(name, digit_batch)
    assert model.hparams["precision"] == "bf16"  # the default of new runs
    path = save_checkpoint(tmp_path, model, step=2, dataset="digits", seed=7, rng_state=generator.get_state(),
                           run={"steps": 2})
    config = json.loads(path.read_text())
    del config["hparams"]["precision"]  # as written before the hyper-parameter existed
    path.write_text(json.dumps(config))
    loaded = read_checkpoint(tmp_path, training=True).model
    assert loaded.hparams["precision"] == "fp32"
    assert not isinstance(loaded.precision_context(), torch.autocast)
    assert isinstance(model.precision_context(), torch.autocast)
