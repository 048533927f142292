"""The training loop: deterministic batches, periodic evaluation through genmetrics' public API, resumable
checkpoints, sample grids, and the loss/metric history with its plot, all in one output folder:

    step-SSSSSSSS.safetensors / .json   the last checkpoint (genmetrics_models.checkpoint)
    samples-SSSSSSSS.png                a grid of samples at each evaluation and at the end
    history.json                        {"losses": [{"step", <loss>: mean since the previous row}],
                                         "metrics": [{"step", <metric>: value}]}
    metrics.csv                         the metric rows of history.json
    plot.png                            losses and metrics over steps, at the end
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import genmetrics
from genmetrics.errors import ConfigError, InputError, spell
from genmetrics.seeding import CHUNK, chunk_generator
from genmetrics_models.base import Generator, resolve_hparams, spell_hparam, to_float
from genmetrics_models.checkpoint import (
    Checkpoint,
    latest_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from genmetrics_models.data import REFERENCES, check_dataset, load_dataset, native
from genmetrics_models.files import png_bytes, write_bytes, write_figure
from genmetrics_models.registry import build_model, model_class

@dataclass(frozen=True)
class TrainOptions:
    """How long to train and how to evaluate; unlike model, dataset, hyper-parameters and seed, these may change
    when a run is resumed."""

    steps: int
    eval_every: int = 0  # 0: evaluate at the end only
    eval_samples: int = 500  # 0: never evaluate
    eval_ref: str | None = None  # default: the dataset's shipped reference
    eval_metrics: str = "fid,kid,pr"
    eval_extractor: str = "inception"
    checkpoint_every: int = 500
    log_every: int = 10
    device: str = "cpu"
    progress: bool = True
    init_from: str | None = None  # warm start: a checkpoint whose weights (and EMA) a new run starts from


class BatchSampler:
    """Indices of each step's training images, a function of (seed, step) alone, so a resumed run sees the same
    batches: epoch ``e`` is a permutation drawn from ``genmetrics.seeding.chunk_generator(seed, e)``, cut into
    ``n // size`` batches (the remainder is dropped)."""

    def __init__(self, n: int, size: int, seed: int) -> None:
        self.n, self.size, self.seed = n, size, seed
        self.per_epoch = n // size
        self._epoch: tuple[int, torch.Tensor] | None = None

    def __call__(self, step: int) -> torch.Tensor:
        """(size,) long indices of the images of ``step`` (0-based)."""
        epoch, index = divmod(step, self.per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, torch.randperm(self.n, generator=chunk_generator(self.seed, epoch)))
        return self._epoch[1][index * self.size:(index + 1) * self.size]


def sampler(model: Generator, dataset: str) -> Callable[[int, torch.Generator], np.ndarray]:
    """``fn(n, generator) -> (n, H, W, 1) uint8``: samples of ``model`` in the format of ``dataset`` (a name), the
    source genmetrics.score takes."""
    def sample(n: int, generator: torch.Generator) -> np.ndarray:
        return native(dataset, model.sample(n, generator).numpy())

    return sample


def sample_chunks(model: Generator, dataset: str, n: int, seed: int, labels: Sequence[int] | None = None,
                  prompts: Sequence[str] | None = None, **options: Any
                  ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """``n`` samples in chunks of ``genmetrics.seeding.CHUNK``: (size, H, W, 1) uint8 images in the format of
    ``dataset`` (a name) and their labels (size,) int64 for a conditional model, chunk k drawn from
    ``chunk_generator(seed, k)``: the scheme genmetrics.score uses for a generator callable, so ``draw`` returns the
    images an evaluation scored.
    ``labels``: repeated cyclically over the samples; default (conditional models) uniform random labels, the
    first draw from each chunk's generator. ``prompts`` (t2i): repeated cyclically over the samples, each chunk
    given its own. ``options``: the model's sampling options (``Generator.sample``)."""
    for k, start in enumerate(range(0, n, CHUNK)):
        size = min(CHUNK, n - start)
        generator = chunk_generator(seed, k)
        chunk_labels = None
        if labels is not None:
            chunk_labels = torch.tensor([labels[i % len(labels)] for i in range(start, start + size)])
        elif model.conditional:
            chunk_labels = torch.randint(model.num_classes, (size,), generator=generator)
        if prompts is not None:
            options = {**options, "prompts": tuple(prompts[i % len(prompts)] for i in range(start, start + size))}
        images = native(dataset, model.sample(size, generator, chunk_labels, **options).numpy())
        yield images, None if chunk_labels is None else chunk_labels.numpy().astype(np.int64)


def draw(model: Generator, dataset: str, n: int, seed: int, labels: Sequence[int] | None = None,
         **options: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """All of :func:`sample_chunks` at once: (n, H, W, 1) uint8 images and (n,) int64 labels or None. So
    ``draw(model, dataset, n, seed)`` equals the images of an evaluation with ``num_samples=n`` and ``seed``."""
    chunks = list(sample_chunks(model, dataset, n, seed, labels, **options))
    drawn = [chunk_labels for _, chunk_labels in chunks if chunk_labels is not None]
    return np.concatenate([images for images, _ in chunks]), np.concatenate(drawn) if drawn else None


def image_grid(images: np.ndarray, columns: int, pad: int = 2) -> np.ndarray:
    """(N, H, W, 1) uint8 -> one (rows * (H + pad) + pad, columns * (W + pad) + pad) uint8 image, row-major, on a
    mid-gray background."""
    n, height, width = images.shape[:3]
    rows = -(-n // columns)
    grid = np.full((rows * (height + pad) + pad, columns * (width + pad) + pad), 128, np.uint8)
    for i, image in enumerate(images):
        top, left = pad + (i // columns) * (height + pad), pad + (i % columns) * (width + pad)
        grid[top:top + height, left:left + width] = image[..., 0]
    return grid


def sample_grid(model: Generator, seed: int) -> np.ndarray:
    """8 rows of fixed-noise samples (generator seeded ``seed``) at the model's resolution; a conditional model
    gets one column per class."""
    columns = model.num_classes if model.conditional else 8
    labels = torch.arange(8 * columns) % columns if model.conditional else None
    return image_grid(model.sample(8 * columns, torch.Generator().manual_seed(seed), labels).numpy(), columns)


@dataclass
class History:
    """Losses (mean over the steps since the previous row) and evaluation metrics, by step."""

    losses: list[dict[str, float]] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def load(cls, folder: Path, until: int) -> History:
        """``folder/history.json`` without rows after step ``until`` (written after that checkpoint); empty if
        there is none."""
        path = folder / "history.json"
        if not path.is_file():
            return cls()
        try:
            saved = json.loads(path.read_text())
            return cls([row for row in saved["losses"] if row["step"] <= until],
                       [row for row in saved["metrics"] if row["step"] <= until])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"cannot read {str(path)!r} to resume: {exc} (delete it to start the history "
                             "afresh)") from None

    def save(self, folder: Path) -> None:
        """Write ``history.json`` and ``metrics.csv`` atomically."""
        write_bytes(folder / "history.json", (json.dumps(asdict(self), indent=1) + "\n").encode())
        columns = ["step", *dict.fromkeys(key for row in self.metrics for key in row if key != "step")]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.metrics)
        write_bytes(folder / "metrics.csv", buffer.getvalue().encode())


def plot_history(history: History, path: Path) -> None:
    """A PNG with the losses over steps and one panel per metric (``*_mean`` with its ``*_std`` as error bars)."""
    from matplotlib.figure import Figure  # Agg canvas, no pyplot and no global backend

    names = list(dict.fromkeys(key for row in history.metrics for key in row
                               if key != "step" and not key.endswith("_std")))
    figure = Figure(figsize=(4.5 * (1 + len(names)), 3.5), layout="constrained")
    axes = figure.subplots(1, 1 + len(names), squeeze=False)[0]
    for key in dict.fromkeys(key for row in history.losses for key in row if key != "step"):
        rows = [row for row in history.losses if key in row]
        axes[0].plot([row["step"] for row in rows], [row[key] for row in rows], label=key)
    axes[0].set(title="losses", xlabel="step")
    if history.losses:
        axes[0].legend()
    for axis, key in zip(axes[1:], names):
        rows = [row for row in history.metrics if key in row]
        std_key = key[:-len("_mean")] + "_std" if key.endswith("_mean") else None
        errors = [row.get(std_key, 0.0) for row in rows] if std_key else None
        axis.errorbar([row["step"] for row in rows], [row[key] for row in rows], yerr=errors, marker="o")
        axis.set(title=key, xlabel="step")
    write_figure(path, figure, dpi=80)


def make_evaluator(dataset: str, options: TrainOptions, seed: int) -> genmetrics.Evaluator:
    """genmetrics' streaming evaluator of ``options.eval_metrics`` against ``options.eval_ref`` (default: the
    dataset's shipped reference) with ``options.eval_extractor``, KID subsets seeded ``seed``: built once per run,
    so the extractor and the reference are loaded once for all its evaluations."""
    return genmetrics.Evaluator(options.eval_ref or REFERENCES[dataset], options.eval_metrics,
                                extractor=options.eval_extractor, device=options.device, seed=seed)


def evaluate(model: Generator, dataset: str, evaluator: genmetrics.Evaluator, num_samples: int,
             seed: int) -> dict[str, float]:
    """The evaluator's metrics of ``num_samples`` samples of ``model`` (``sample_chunks`` with ``seed``, fed
    chunk by chunk)."""
    evaluator.reset()
    for images, _ in sample_chunks(model, dataset, num_samples, seed):
        evaluator.update(images)
    return evaluator.compute().metrics


def _check_training_memory(model_name: str, hparams: Mapping[str, Any]) -> None:
    """ConfigError, before any allocation, when the model's fp32 weights, gradients and Adam moments (16 bytes a
    parameter, counted on the meta device) exceed this machine's memory."""
    with torch.device("meta"):
        model = build_model(model_name, hparams, num_classes=10)  # both datasets have 10 classes
    parameters = sum(p.numel() for p in model.parameters())
    needed, total = 16 * parameters, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > total:
        raise ConfigError(f"model {model_name!r} with these hyper-parameters has {parameters:,} parameters: training "
                          f"needs {needed / 2**30:,.1f} GiB for weights, gradients and optimizer state, more than "
                          f"this machine's {total / 2**30:,.1f} GiB; lower its sizes ({spell('hparams', '...')})")


def _supported_dataset(model_name: str, dataset: str) -> str:
    """``dataset`` if ``model_name`` trains on it; ConfigError naming the ones it supports otherwise."""
    supported = model_class(model_name).datasets
    if supported is not None and check_dataset(dataset) not in supported:
        raise ConfigError(f"model {model_name!r} trains on {', '.join(supported)} only, not {dataset!r}; leave out "
                          f"{spell('dataset', dataset)}")
    return dataset


def _resolved_hparams(model_name: str, hparams: Mapping[str, Any]) -> dict[str, Any]:
    """The hyper-parameters of ``model_name`` with ``hparams`` over its defaults; ConfigError for a bad one."""
    cls = model_class(model_name)
    return resolve_hparams(model_name, cls.defaults, cls.choices, hparams, cls.nonnegative)


def _resume(latest: Path, model_name: str, dataset_name: str | None, hparams: Mapping[str, Any],
            seed: int | None, device: str) -> Checkpoint:
    """The checkpoint ``latest`` with optimizers and RNG state; ConfigError if the run it belongs to differs in
    model, dataset, seed or an explicitly given hyper-parameter."""
    checkpoint = read_checkpoint(latest, device, training=True)
    config = checkpoint.config
    wanted = _resolved_hparams(model_name, hparams)
    differences = [f"model {config['model']!r}" if config["model"] != model_name else None,
                   f"dataset {config['dataset']!r}" if dataset_name not in (None, config["dataset"]) else None,
                   f"seed {config['seed']}" if seed not in (None, config["seed"]) else None]
    if config["model"] == model_name:
        recorded = checkpoint.model.hparams
        differences += [f"{key}={recorded[key]!r}" for key in hparams if recorded[key] != wanted[key]]
    differences = [d for d in differences if d]
    if differences:
        raise ConfigError(f"{str(latest.parent)!r} holds a run with {', '.join(differences)} (at step "
                          f"{checkpoint.step}); resume it with the same settings or choose another folder "
                          f"({spell('out', 'FOLDER')})")
    return checkpoint


def _warm_start(options: TrainOptions, model_name: str, dataset: str | None, hparams: Mapping[str, Any],
                seed: int | None) -> tuple[Generator, int, int, Any, torch.Generator]:
    """A new run from the weights (EMA and buffers included) of checkpoint ``options.init_from`` with fresh
    optimizers: its model, dataset and step, its hyper-parameters with ``hparams`` over them (the architecture must
    stay), the training generator seeded ``seed`` (default: the checkpoint's), so the batches continue as the
    original run's would have (they depend on (seed, step) alone)."""
    start = read_checkpoint(options.init_from, options.device)
    config = start.config
    if config["model"] != model_name or dataset not in (None, config["dataset"]):
        raise ConfigError(f"{spell('init_from', repr(str(options.init_from)))} holds a {config['model']} model on "
                          f"{config['dataset']}; warm-start the same model and dataset")
    seed = config["seed"] if seed is None else seed
    wanted = {**start.model.hparams, **hparams}
    _resolved_hparams(model_name, wanted)
    _check_training_memory(model_name, wanted)
    data = load_dataset(config["dataset"])
    model = build_model(model_name, wanted, num_classes=config["num_classes"]).to(options.device)
    try:
        model.warm_start(start.model)
    except RuntimeError:
        changed = sorted(key for key in hparams if hparams[key] != start.model.hparams[key])
        raise ConfigError(f"cannot warm-start from {str(options.init_from)!r}: {', '.join(changed)} change the "
                          "architecture; change only those that keep it (lr, batch_size, ...)") from None
    return model, config["step"], seed, data, torch.Generator().manual_seed(seed)


def _out_folder(out: str | Path) -> tuple[Path, bool]:
    """The run folder ``out``, created if missing; and whether this call created it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{spell('out', repr(str(out)))} is a file; choose a folder")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the run folder {spell('out', repr(str(out)))}: "
                         f"{exc.strerror or exc}") from None
    return out, created


def train(model_name: str, out: str | Path, options: TrainOptions, *, dataset: str | None = None,
          hparams: Mapping[str, Any] | None = None, seed: int | None = None,
          log: Callable[[str], None] = lambda message: None) -> History:
    """Train ``model_name`` on ``dataset`` (default fashion-mnist) to ``options.steps`` steps in folder ``out``,
    resuming from its last checkpoint if it has one (then ``dataset``, ``seed`` and ``hparams`` must match the
    run's or be None/empty). ``seed`` (default 0) seeds the weights, the batches, the noise and the
    evaluations. ``log`` receives one-line notes (resuming, nothing to train). Returns the history (also in
    ``out``)."""
    out, created = _out_folder(out)
    try:
        return _train_in(model_name, out, options, dataset, dict(hparams or {}), seed, log)
    except BaseException:
        if created and latest_checkpoint(out) is None:  # failed before its first checkpoint: leave no empty run
            shutil.rmtree(out, ignore_errors=True)
        raise


def _train_in(model_name: str, out: Path, options: TrainOptions, dataset: str | None, hparams: dict[str, Any],
              seed: int | None, log: Callable[[str], None]) -> History:
    """:func:`train` in the existing folder ``out``."""
    latest = latest_checkpoint(out)
    if latest is not None:
        checkpoint = _resume(latest, model_name, dataset, hparams, seed, options.device)
        log(f"resuming {latest} (step {checkpoint.step})")
        if checkpoint.step >= options.steps:
            log(f"{out} is already at step {checkpoint.step} ({spell('steps', str(options.steps))}): nothing to "
                "train")
        data = load_dataset(checkpoint.config["dataset"])
        model, step, seed = checkpoint.model, checkpoint.step, checkpoint.config["seed"]
        generator = torch.Generator()
        generator.set_state(checkpoint.rng_state)
        history = History.load(out, until=step)
    elif options.init_from is not None:
        model, step, seed, data, generator = _warm_start(options, model_name, dataset, hparams, seed)
        log(f"warm start from {options.init_from} (step {step}): its weights, fresh optimizers")
        history = History()
    else:
        seed = 0 if seed is None else seed
        _resolved_hparams(model_name, hparams)  # a bad hyper-parameter is refused before the dataset is read
        _check_training_memory(model_name, hparams)
        data = load_dataset(_supported_dataset(model_name, dataset or "fashion-mnist"))
        generator = torch.Generator().manual_seed(seed)
        model = build_model(model_name, hparams, num_classes=data.num_classes, generator=generator).to(options.device)
        step, history = 0, History()
    per_step = model.hparams["batch_size"] * model.batches_per_step
    if model.hparams["batch_size"] < 2 or per_step > len(data.images):
        raise ConfigError(f"{spell_hparam('batch_size', str(model.hparams['batch_size']))} "
                          f"(x{model.batches_per_step} batches per step) "
                          f"must be at least 2 and fit in the {len(data.images)} training images of {data.name}")
    images, labels = torch.tensor(data.images), torch.tensor(data.labels)  # copies: the dataset is read-only
    batches = BatchSampler(len(images), per_step, seed)
    window: dict[str, list[float]] = {}
    evaluator: genmetrics.Evaluator | None = None
    model.train()
    with tqdm(total=options.steps, initial=step, desc=f"train {model_name}", unit="step",
              disable=not options.progress) as bar:
        while step < options.steps:
            index = batches(step)
            with model.precision_context():
                losses = model.train_step(to_float(images[index]).to(options.device),
                                          labels[index].to(options.device), generator)
            step += 1
            for key, value in losses.items():
                if not math.isfinite(value):
                    raise ConfigError(f"{model_name} {key} became {value} at step {step}; lower the learning rate "
                                      f"({spell_hparam('lr', '...')}) and train again in a new folder "
                                      f"({spell('out', 'FOLDER')})")
                window.setdefault(key, []).append(value)
            bar.update(1)
            bar.set_postfix({key: f"{value:.3g}" for key, value in losses.items()}, refresh=False)
            at_end = step == options.steps
            evaluate_now = options.eval_samples > 0 and (at_end or (options.eval_every > 0
                                                                     and step % options.eval_every == 0))
            checkpoint_now = at_end or evaluate_now or step % options.checkpoint_every == 0
            if checkpoint_now or step % options.log_every == 0:
                history.losses.append({"step": step, **{key: float(np.mean(v)) for key, v in window.items()}})
                window = {}
            if evaluate_now:
                evaluator = evaluator or make_evaluator(data.name, options, seed)
                history.metrics.append({"step": step, **evaluate(model, data.name, evaluator, options.eval_samples,
                                                                 seed)})
            if evaluate_now or at_end:
                write_bytes(out / f"samples-{step:08d}.png", png_bytes(sample_grid(model, seed)))
            if checkpoint_now:
                history.save(out)  # before the checkpoint: rows past a checkpoint are dropped on resume
                save_checkpoint(out, model, step=step, dataset=data.name, seed=seed, rng_state=generator.get_state(),
                                run=asdict(options))
    plot_history(history, out / "plot.png")
    return history
