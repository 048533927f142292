"""``genmetrics train MODEL`` and ``genmetrics sample CKPT``: the reference generators of the ``models`` package."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from genmetrics.errors import ConfigError, InputError, spell
from genmetrics.metrics.registry import parse_metrics
from genmetrics.features.registry import EXTRACTORS
from genmetrics.io.captions import first_names, read_prompt_file
from genmetrics.io.images import printable
from genmetrics.references import is_reference_name, list_references
from genmetrics_models.base import spell_hparam
from genmetrics_models.checkpoint import latest_checkpoint, read_checkpoint, read_config
from genmetrics_models.data import REFERENCES, check_dataset
from genmetrics_models.files import check_sample_output, write_samples
from genmetrics_models.registry import model_class
from genmetrics_models.train import TrainOptions, sample_chunks
from genmetrics_models.train import train as train_run


def _parse_params(params: tuple[str, ...], **named: str | None) -> dict[str, Any]:
    """``("lr=1e-4", ...)`` -> {"lr": 0.0001, ...}: values read as JSON numbers where they parse, else strings;
    then the ``named`` hyper-parameters given by their own options (--gan-loss, --schedule) unless None."""
    parsed: dict[str, Any] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{spell('hparams', repr(item))}: expected KEY=VALUE, e.g. {spell_hparam('lr', '1e-4')}")
        try:
            parsed[key.strip()] = json.loads(value)
        except ValueError:
            parsed[key.strip()] = value
    parsed.update({key: value for key, value in named.items() if value is not None})
    return parsed


def _check_reference(ref: str) -> None:
    """Fail now, not after training, for a reference that is neither an existing path nor a shipped name (read as
    a name like genmetrics.score does: ``is_reference_name``)."""
    fix = (f"pass {spell('eval_ref', 'PATH')} (a stats file with features, or images) or "
           f"{spell('eval_samples', '0')}")
    if not is_reference_name(ref):
        if not Path(ref).exists():
            raise InputError(f"{spell('eval_ref', repr(ref))} does not exist; {fix}")
        return
    shipped = [entry["name"] for entry in list_references()]
    if ref not in shipped:
        raise ConfigError(f"{spell('eval_ref', repr(ref))} is not a shipped reference (shipped: "
                          f"{', '.join(shipped)}); {fix}")


@click.command()
@click.argument("model")
@click.option("--dataset", default=None,
              help=f"Training data: {' or '.join(REFERENCES)} (default: fashion-mnist, or the resumed run's).")
@click.option("--steps", type=click.IntRange(min=1), required=True, help="Train until this step.")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Run folder (checkpoint, sample grids, history, plot); a folder with a checkpoint is resumed.")
@click.option("--eval-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Evaluate every K steps; 0: at the end only.")
@click.option("--eval-samples", type=click.IntRange(min=0), default=500, show_default=True,
              help="Samples per evaluation; 0: no evaluation.")
@click.option("--eval-ref", default=None,
              help="Reference: a shipped name, a stats file with features, or images (default: "
                   + ", ".join(f"{ref} for {name}" for name, ref in REFERENCES.items()) + ").")
@click.option("--eval-metrics", default="fid,kid,pr", show_default=True, help="Metrics of each evaluation.")
@click.option("--eval-extractor", default="inception", show_default=True, help="Feature extractor of the metrics.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=500, show_default=True,
              help="Also checkpoint every K steps (and at each evaluation and the end).")
@click.option("--seed", type=int, default=None, help="Seed of weights, batches, noise and evaluations (default 0).")
@click.option("--gan-loss", type=click.Choice(["non-saturating", "saturating"]), default=None,
              help="dcgan/cgan generator loss: -E log D(G(z)) (default) or the minimax E log(1 - D(G(z))).")
@click.option("--schedule", type=click.Choice(["linear", "cosine"]), default=None,
              help="ddpm noise schedule: linear (Ho et al., the default) or cosine (Nichol & Dhariwal).")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A hyper-parameter, repeatable: -p lr=1e-4 -p batch_size=32 (see the README per model).")
@click.option("--device", default="cpu", show_default=True, help="torch device of training and evaluation.")
@click.option("--progress/--no-progress", default=True, help="Progress bars on stderr (default: on).")
@click.option("--init-from", type=click.Path(), default=None,
              help="Warm start a new OUT from this checkpoint (a training or shipped folder, or its step-*.json): its "
                   "weights, EMA and step, fresh optimizers; -p may change hyper-parameters that keep the "
                   "architecture. Recorded in the checkpoints' run settings.")
def train(model, dataset, steps, out, eval_every, eval_samples, eval_ref, eval_metrics, eval_extractor,
          checkpoint_every, seed, gan_loss, schedule, params, device, progress, init_from) -> None:
    """Train reference generator MODEL (dcgan, cgan, wgan, wgan-gp, ae, vae, pixelcnn, vqvae, ddpm, t2i) in folder OUT,
    resuming its last checkpoint; evaluates with genmetrics and writes sample grids, a history and a plot."""
    model_class(model)
    if dataset is not None:
        check_dataset(dataset)
    hparams = _parse_params(params, gan_loss=gan_loss, schedule=schedule)
    latest = latest_checkpoint(out) if Path(out).is_dir() else None
    origin = latest or init_from  # read_config takes a folder (its newest checkpoint) or a step-*.json
    run_dataset = dataset or (read_config(origin)["dataset"] if origin else "fashion-mnist")
    if eval_samples == 1:
        raise ConfigError(f"{spell('eval_samples', '1')}: must be 0 (no evaluation) or at least 2")
    if eval_samples:
        parse_metrics(eval_metrics)
        if eval_extractor not in EXTRACTORS:
            raise ConfigError(f"unknown {spell('eval_extractor', repr(eval_extractor))}; choose one of "
                              f"{', '.join(EXTRACTORS)}")
        _check_reference(eval_ref or REFERENCES[run_dataset])
    options = TrainOptions(steps=steps, eval_every=eval_every, eval_samples=eval_samples, eval_ref=eval_ref,
                           eval_metrics=eval_metrics, eval_extractor=eval_extractor,
                           checkpoint_every=checkpoint_every, device=device, progress=progress,
                           init_from=None if init_from is None else str(init_from))
    history = train_run(model, out, options, dataset=dataset, hparams=hparams, seed=seed,
                        log=lambda message: click.echo(printable(message), err=True))
    click.echo(f"wrote {printable(out)}: {latest_checkpoint(out).name}, samples-*.png, history.json, metrics.csv, "
               "plot.png", err=True)
    if history.metrics:
        last = history.metrics[-1]
        click.echo(f"step {last['step']}: " + ", ".join(f"{key} {value:.6g}" for key, value in last.items()
                                                          if key != "step"))


def _parse_labels(labels: str | None) -> list[int] | None:
    if labels is None:
        return None
    try:
        parsed = [int(item) for item in labels.split(",")]
    except ValueError:
        raise ConfigError(f"{spell('labels', repr(labels))}: expected comma-separated class indices, e.g. 3 or "
                          "0,1,2") from None
    return parsed


def _prompts(prompt: tuple[str, ...], prompts_file: str | None) -> list[str] | None:
    """The prompts of --prompt or --prompts (not both), or None."""
    if prompt and prompts_file:
        raise ConfigError(f"give prompts with {spell('prompt', 'TEXT')} or {spell('prompts', 'FILE')}, not both")
    if prompts_file:
        return read_prompt_file(prompts_file)
    if any(not text.strip() for text in prompt):
        raise ConfigError(f"{spell('prompt', repr(''))}: a prompt must not be empty")
    return [text.strip() for text in prompt] or None


def _warn_truncated(model: Any, prompts: list[str]) -> None:
    """Warn (stderr) about prompts longer than the text encoder's context, which are truncated like captions."""
    long = [p for p in prompts if model.text_encoder.is_truncated(p)]
    if long:
        click.echo(f"warning: {len(long)} prompt(s) longer than the {model.text_encoder.context_length}-token text "
                   f"context are truncated: {first_names(long)}", err=True)


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.option("-n", "--num", "n", type=click.IntRange(min=1), required=True, help="Number of samples.")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="A new (or empty) folder of PNGs, a .npz file ('images' (N, H, W, 1) uint8 [+ 'labels']) or a "
                   ".npy file (the images).")
@click.option("--labels", default=None,
              help="Class indices for a conditional model (cgan; ddpm and, with -p conditional=true, pixelcnn), "
                   "repeated over the samples: 3 or 0,1,2 (default: uniform random).")
@click.option("--guidance", type=float, default=None,
              help="ddpm/t2i classifier-free guidance weight w (Ho & Salimans): eps = (1 + w) eps_c - w eps_u; 0: "
                   "conditional without guidance, -1: unconditional (default: the checkpoint's: ddpm 0, t2i 2).")
@click.option("--classifier-scale", type=float, default=None,
              help="ddpm classifier guidance scale s: the mean moves by s * sigma_t^2 * grad log f(y | x_t, t) "
                   "(default: the checkpoint's, 0).")
@click.option("--sampling-steps", type=int, default=None,
              help="ddpm/t2i sampler: 0 = Algorithm 2 with all T steps, K = DDIM (eta 0) with K steps (default: "
                   "the checkpoint's, 50).")
@click.option("--prompt", "prompt", multiple=True,
              help="t2i: a text prompt, repeatable; the prompts are repeated over the samples (default: the class "
                   "prompts 'a photo of a {class}' of --labels).")
@click.option("--prompts", "prompts_file", type=click.Path(), default=None,
              help="t2i: a UTF-8 text file with one prompt per line (instead of --prompt). The output keeps each "
                   "sample's prompt ('prompts' in a .npz, NAME.txt beside NAME.png in a folder) for clipscore.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed; --seed S -n N gives the images a training evaluation with seed S and N samples scored.")
@click.option("--device", default="cpu", show_default=True, help="torch device.")
def sample(checkpoint, n, output, labels, guidance, classifier_scale, sampling_steps, prompt, prompts_file, seed,
           device) -> None:
    """Write N samples of the model at CHECKPOINT (a training folder: its last checkpoint; or a step-*.json file),
    in its dataset's format (Fashion-MNIST 28x28, digits 8x8), to OUTPUT."""
    wanted = _parse_labels(labels)
    given = _prompts(prompt, prompts_file)
    loaded = read_checkpoint(checkpoint, device)
    model = loaded.model.eval()
    options = {"guidance": guidance, "classifier_scale": classifier_scale, "sampling_steps": sampling_steps}
    options = {key: value for key, value in options.items() if value is not None}
    model.check_sample_options({**options, "prompts": given})  # checked once, before sampling
    if wanted is not None:  # checked in full once, not per chunk
        model.check_labels(len(wanted), wanted, None)
    check_sample_output(output, [checkpoint, *([prompts_file] if prompts_file else [])])
    per_sample = None if given is None else [given[i % len(given)] for i in range(n)]
    if given is not None:
        _warn_truncated(model, given)
    chunks = sample_chunks(model, loaded.config["dataset"], n, seed, wanted, prompts=given, **options)
    height, width, _ = write_samples(output, n, chunks, per_sample)
    settings = "".join(f", {key} {value}" for key, value in options.items())
    click.echo(f"wrote {n} samples {height}x{width} of {loaded.config['model']} "
               f"(step {loaded.step}, seed {seed}{settings}) to {printable(output)}")
