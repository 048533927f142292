"""``genmetrics score GEN REF``."""
from __future__ import annotations

import click

from genmetrics_cli.options import metrics_option, caption_options, extraction_options, trust_stats_option
from genmetrics.errors import ConfigError
from genmetrics.metrics.registry import parse_metrics
from genmetrics.evaluate import score as score_api
from genmetrics.features.distributed import is_main_process
from genmetrics.io.atomic import check_writable
from genmetrics.references import demo_sources
from genmetrics.report import to_json, to_table, write_per_sample


@click.command()
@click.argument("gen", required=False)
@click.argument("ref", required=False)
@metrics_option(compare=False)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of KID's subsets.")
@click.option("--kid-subsets", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--kid-subset-size", type=click.IntRange(min=2), default=1000, show_default=True)
@click.option("--pr-k", type=click.IntRange(min=1), default=3, show_default=True, help="k of precision/recall.")
@click.option("--dc-k", type=click.IntRange(min=1), default=5, show_default=True, help="k of density/coverage.")
@click.option("--captions", type=click.Path(), default=None,
              help="Captions of GEN for clip_score: CSV/TSV/JSONL (file name -> caption) or a folder of .txt files.")
@caption_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object {metrics, provenance}.")
@click.option("--force", is_flag=True, help="Accept a reference stats file computed at another --precision.")
@trust_stats_option
@click.option("--train", default=None,
              help="The training set (images, a stats file with features, or a shipped name) for the memorisation "
                   "metrics authpct and ct; REF is then the held-out test set.")
@click.option("--labels", default=None, type=click.Path(dir_okay=False),
              help="Class labels of GEN for vendi_per_class: a CSV/TSV file with file and label columns.")
@extraction_options
def score(gen, ref, metrics, seed, kid_subsets, kid_subset_size, pr_k, dc_k, captions, references, clip_w,
          clip_prefix, per_sample, as_json, force, trust_stats, train, labels, **extraction) -> None:
    """Score generated images GEN against reference REF.

    GEN and REF: a folder (recursive), a .zip, or a .npy/.npz uint8 array (NHWC or NCHW); REF may also be a
    stats file from `genmetrics stats` or a shipped reference name (`genmetrics stats --list`). Without
    arguments, scores the embedded demo: 300 Fashion-MNIST test images against shipped training statistics.
    """
    if gen is None:
        demo_gen, demo_ref = demo_sources()
        gen, ref = str(demo_gen), demo_ref
        click.echo(f"no GEN/REF given: scoring the embedded demo ({gen} vs {ref})", err=True)
    if per_sample and not {"clip_score", "realism"} & set(parse_metrics(metrics)):
        raise ConfigError("--per-sample writes per-image CLIPScores or realism scores: add clip_score (with "
                          "--captions) or realism to --metrics")
    if per_sample:
        check_writable(per_sample, [gen, ref, captions, references])  # fail before extracting any feature
    result = score_api(gen, ref, metrics, seed=seed, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                       pr_k=pr_k, dc_k=dc_k, captions=captions, references=references, clip_w=clip_w,
                       clip_prefix=clip_prefix, force=force, trust_stats=trust_stats, train=train, labels=labels,
                       **extraction)
    if not is_main_process():  # under torchrun, rank 0 alone writes and prints
        return
    if per_sample:
        write_per_sample(per_sample, result)
    click.echo(to_json(result) if as_json else to_table(result))
