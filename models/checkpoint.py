"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint of step S in folder DIR is a pair written atomically, the tensors first:

* ``DIR/step-SSSSSSSS.safetensors``: ``model.<name>`` (the model's state_dict: weights and buffers),
  ``optim.<optimizer>.<param index>.<key>`` (optimizer state tensors) and ``rng.train`` (the training
  torch.Generator's state);
* ``DIR/step-SSSSSSSS.json``: ``format``, ``model``, ``hparams``, ``num_classes``, ``image_shape``, ``dataset``,
  ``step``, ``seed``, ``versions``, ``weights`` (the safetensors file name) and its ``sha256``, ``optimizers``
  (each optimizer's ``param_groups`` and non-tensor state; tensors are named ``{"tensor": key}``) and ``run``
  (the training options).

A JSON file exists only once its tensors are complete, so the newest JSON is the last checkpoint; older pairs
are removed after a new one is written.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from genmetrics.errors import InputError, phrase, spell
from genmetrics.versions import versions
from genmetrics_models.base import Generator
from genmetrics_models.files import write_bytes
from genmetrics_models.registry import build_model, model_class

FORMAT = "genmetrics-models/1"
PRETRAINED_DIR = Path(__file__).with_name("pretrained")
"""Shipped weights-only checkpoints, one folder per model (``benchmarks/reference_models.py --ship``)."""
_NAME = re.compile(r"step-(\d{8})\.json")


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (on its device, optimizers restored with ``training``), its JSON config and
    the training generator's state (with ``training``)."""

    model: Generator
    config: dict[str, Any]
    path: Path  # the JSON file
    rng_state: torch.Tensor | None

    @property
    def step(self) -> int:
        return int(self.config["step"])


def _optimizer_json(name: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """``optimizer.state_dict()`` as JSON, its state tensors moved into ``tensors`` as ``optim.NAME.INDEX.KEY``."""
    state = optimizer.state_dict()
    entries: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        entries[str(index)] = {}
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{name}.{index}.{key}"] = value
                value = {"tensor": f"optim.{name}.{index}.{key}"}
            entries[str(index)][key] = value
    return {"state": entries, "param_groups": state["param_groups"]}


def _optimizer_state(saved: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The inverse of :func:`_optimizer_json`: a state_dict for ``Optimizer.load_state_dict`` (JSON lists in the
    param groups, such as Adam's betas, become tuples again; ``params`` stays a list)."""
    state = {int(index): {key: tensors[value["tensor"]] if isinstance(value, dict) else value
                          for key, value in values.items()}
             for index, values in saved["state"].items()}
    groups = [{key: tuple(value) if isinstance(value, list) and key != "params" else value
               for key, value in group.items()} for group in saved["param_groups"]]
    return {"state": state, "param_groups": groups}


def save_checkpoint(folder: str | Path, model: Generator, *, step: int, dataset: str, seed: int,
                    rng_state: torch.Tensor, run: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint of ``step`` into ``folder`` (see the module docstring); returns its JSON path."""
    folder = Path(folder)
    stem = f"step-{step:08d}"
    tensors = {f"model.{key}": value for key, value in model.state_dict().items()}
    optimizers = {name: _optimizer_json(name, opt, tensors) for name, opt in model.optimizers.items()}
    tensors["rng.train"] = rng_state
    data = safetensors.torch.save({key: value.detach().cpu().contiguous() for key, value in tensors.items()},
                                  metadata={"format": FORMAT})
    write_bytes(folder / f"{stem}.safetensors", data)
    config = {"format": FORMAT, **model.config(), "dataset": dataset, "step": step, "seed": seed,
              "versions": versions(extra=("safetensors",)), "weights": f"{stem}.safetensors",
              "sha256": hashlib.sha256(data).hexdigest(), "optimizers": optimizers, "run": run or {}}
    path = folder / f"{stem}.json"
    write_bytes(path, (json.dumps(config, indent=1) + "\n").encode())
    for old in folder.glob("step-*.json"):
        if _NAME.fullmatch(old.name) and old != path:
            old.unlink(missing_ok=True)  # the JSON first: a JSON never names a missing weights file
            (folder / f"{old.stem}.safetensors").unlink(missing_ok=True)
    return path


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The JSON file of the highest step in ``folder``, or None."""
    found = [path for path in Path(folder).glob("step-*.json") if _NAME.fullmatch(path.name)]
    return max(found, key=lambda path: path.name) if found else None


def _json_path(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            how = phrase("`genmetrics_models.train.train(MODEL, FOLDER, options)`",
                         "`genmetrics train MODEL --out FOLDER`")
            raise InputError(f"no checkpoint (step-*.json) in folder {str(path)!r}; train one with {how}")
        return latest
    if path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    if not path.is_file():
        raise InputError(f"checkpoint {str(path)!r} does not exist; pass a training folder or its step-*.json file")
    return path


def read_config(path: str | Path) -> dict[str, Any]:
    """The JSON config of the checkpoint at ``path`` (a training folder: its newest), without loading tensors."""
    json_path = _json_path(path)
    try:
        config = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read checkpoint {str(json_path)!r}: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise InputError(f"{str(json_path)!r} is not a genmetrics model checkpoint (format {FORMAT!r})")
    return config


def read_checkpoint(path: str | Path, device: str = "cpu", training: bool = False) -> Checkpoint:
    """The checkpoint at ``path`` (a training folder: its newest; a ``step-*.json`` or ``.safetensors`` file).

    ``training``: also restore the optimizers and return the training generator's state. InputError for a
    missing, corrupt (sha256 mismatch) or foreign file.
    """
    json_path = _json_path(path)
    config = read_config(json_path)
    try:
        weights = json_path.parent / config["weights"]
        data = weights.read_bytes()
        if hashlib.sha256(data).hexdigest() != config["sha256"]:
            raise InputError(f"weights file {str(weights)!r} does not match the sha256 recorded in "
                             f"{str(json_path)!r}: it is corrupt or from another checkpoint")
        tensors = safetensors.torch.load(data)
        hparams = model_class(config["model"]).stored_hparams(config["hparams"])
        model = build_model(config["model"], hparams, num_classes=config["num_classes"])
        model.load_state_dict({key[len("model."):]: value for key, value in tensors.items()
                               if key.startswith("model.")})
        model.to(device)
        if training:
            if "rng.train" not in tensors:
                raise InputError(f"{str(json_path)!r} is a weights-only checkpoint "
                                 "(genmetrics_models.checkpoint.export_weights): it samples but cannot resume "
                                 f"training; train in a new folder ({spell('out', 'FOLDER')})")
            for name, optimizer in model.optimizers.items():
                optimizer.load_state_dict(_optimizer_state(config["optimizers"][name], tensors))
        rng_state = tensors["rng.train"] if training else None
    except (OSError, KeyError, TypeError, ValueError, RuntimeError, safetensors.SafetensorError) as exc:
        raise InputError(f"cannot load checkpoint {str(json_path)!r}: {type(exc).__name__}: {exc}") from None
    return Checkpoint(model, config, json_path, rng_state)


def load_checkpoint(path: str | Path, device: str = "cpu") -> Generator:
    """The model saved at ``path`` (a training folder: its newest checkpoint; or a ``step-*.json`` file), in eval
    mode on ``device``."""
    return read_checkpoint(path, device).model.eval()


def pretrained(model: str) -> Path:
    """The folder of the shipped checkpoint of ``model`` (trained on fashion-mnist; see the README's results), for
    :func:`load_checkpoint` or ``genmetrics sample``; InputError naming the shipped ones otherwise."""
    folder = PRETRAINED_DIR / model
    if latest_checkpoint(folder) is None:
        shipped = sorted(path.name for path in PRETRAINED_DIR.iterdir() if latest_checkpoint(path) is not None) \
            if PRETRAINED_DIR.is_dir() else []
        raise InputError(f"no shipped checkpoint for model {model!r}; shipped: {', '.join(shipped) or 'none'}")
    return folder


def export_weights(path: str | Path, folder: str | Path) -> Path:
    """Write the checkpoint at ``path`` into ``folder`` without its optimizer and RNG state (about a third of the
    size): a checkpoint that :func:`load_checkpoint` samples from exactly as from the original, but that cannot
    resume training. Returns the new JSON path."""
    checkpoint = read_checkpoint(path)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"step-{checkpoint.step:08d}"
    tensors = {f"model.{key}": value.detach().cpu().contiguous() for key, value in checkpoint.model.state_dict().items()}
    data = safetensors.torch.save(tensors, metadata={"format": FORMAT})
    write_bytes(folder / f"{stem}.safetensors", data)
    config = {**checkpoint.config, "weights": f"{stem}.safetensors", "sha256": hashlib.sha256(data).hexdigest(),
              "optimizers": {}}
    json_path = folder / f"{stem}.json"
    write_bytes(json_path, (json.dumps(config, indent=1) + "\n").encode())
    return json_path
