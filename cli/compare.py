"""``genmetrics compare BASELINE CANDIDATE --ref REF``: exit 0 when every check passes, 1 on a regression."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from genmetrics_cli.options import metrics_option, extraction_options, trust_stats_option
from genmetrics.compare import DEFAULT_BOOTSTRAP
from genmetrics.compare import compare as compare_api
from genmetrics.errors import ConfigError
from genmetrics.features.distributed import is_main_process
from genmetrics.io.atomic import atomic_write, check_writable
from genmetrics.report import COMPARISON_FORMATS
from genmetrics_models.checkpoint import latest_checkpoint, read_checkpoint


@click.command()
@click.argument("baseline")
@click.argument("candidate")
@click.option("--ref", required=True,
              help="Reference: a source (folder, zip, array file), a stats file, or a shipped name "
                   "(`genmetrics stats --list`).")
@metrics_option(compare=True)
@click.option("--bootstrap", "bootstrap_replicates", type=int, default=DEFAULT_BOOTSTRAP, show_default=True,
              help="Bootstrap replicates of each side's generated features (95% percentile intervals).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the bootstrap and of the --num-samples subsets.")
@click.option("--num-samples", type=click.IntRange(min=2), default=None,
              help="Use this many images of each side (a seeded subset); fewer available is an error.")
@click.option("--fail-if", "fail_if", multiple=True,
              help='Check on candidate - baseline, e.g. "fid>+0.5" or "recall<-0.02"; it fails only when the '
                   "whole 95% interval of the difference lies beyond the change. Repeatable.")
@click.option("--format", "output_format", type=click.Choice(list(COMPARISON_FORMATS)), default="table",
              show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Also write the report to this file (atomically).")
@click.option("--pr-k", type=click.IntRange(min=1), default=3, show_default=True, help="k of precision/recall.")
@click.option("--dc-k", type=click.IntRange(min=1), default=5, show_default=True, help="k of density/coverage.")
@click.option("--force", is_flag=True, help="Accept a reference stats file computed at another --precision.")
@trust_stats_option
@extraction_options
def compare(baseline, candidate, ref, metrics, bootstrap_replicates, seed, num_samples, fail_if, output_format,
            output, pr_k, dc_k, force, trust_stats, **extraction) -> None:
    """Compare the samples of two checkpoints, BASELINE and CANDIDATE, against one reference.

    BASELINE and CANDIDATE: a folder, a .zip or a .npy/.npz uint8 array, or a checkpoint of the models package
    (a `genmetrics train` folder or its step-*.json), sampled --num-samples times with --seed. Every metric gets a 95% bootstrap
    interval for each side and for the difference. Exit code 0: every --fail-if check passes; 1: a check
    failed (a regression); 2: an error.
    """
    if output:
        check_writable(output, [baseline, candidate, ref])  # fail before extracting any feature
    baseline, candidate = (_samples(path, num_samples, extraction["device"]) for path in (baseline, candidate))
    comparison = compare_api(baseline, candidate, ref, metrics, fail_if=fail_if,
                             bootstrap_replicates=bootstrap_replicates, seed=seed, num_samples=num_samples,
                             pr_k=pr_k, dc_k=dc_k, force=force, trust_stats=trust_stats,
                             **extraction)
    if is_main_process():
        report = COMPARISON_FORMATS[output_format](comparison)
        if output:
            with atomic_write(output) as handle:
                handle.write((report + "\n").encode("utf-8"))
        click.echo(report)
    if not comparison.passed:
        sys.exit(1)


def _is_checkpoint(path: Path) -> bool:
    """A `genmetrics train` folder holding a checkpoint, or a checkpoint's JSON file (read_checkpoint checks it)."""
    return (path.is_dir() and latest_checkpoint(path) is not None) or (path.suffix == ".json" and path.is_file())


def _samples(path: str, num_samples: int | None, device: str) -> Any:
    """``path`` itself, or for a models checkpoint a callable ``fn(n, generator)`` drawing its samples."""
    if not _is_checkpoint(Path(path)):
        return path
    if num_samples is None:
        raise ConfigError(f"{path!r} is a model checkpoint: pass --num-samples N (and --seed S) to sample it "
                          "(10,000 for reportable numbers)")
    loaded = read_checkpoint(path, device)
    model = loaded.model.eval()

    def sample(n: int, generator: Any) -> Any:
        return model.sample(n, generator=generator)

    sample.__qualname__ = f"sample[{loaded.config['model']} step {loaded.step} of {loaded.path}]"
    return sample
