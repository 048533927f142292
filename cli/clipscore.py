"""``genmetrics clipscore IMAGES [CAPTIONS]``."""
from __future__ import annotations

import click

from genmetrics_cli.options import caption_options, clip_options
from genmetrics.evaluate import clip_score
from genmetrics.io.atomic import check_writable
from genmetrics.report import to_json, to_table, write_per_sample


@click.command()
@click.argument("images")
@click.argument("captions", required=False)
@caption_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object {metrics, provenance}.")
@clip_options
def clipscore(images, captions, references, clip_w, clip_prefix, per_sample, as_json, **extraction) -> None:
    """CLIPScore of IMAGES with their CAPTIONS: w * max(0, cos(image, caption)) per image, mean and std.

    IMAGES: a folder (recursive), a .zip, or a .npy/.npz uint8 array. CAPTIONS: a CSV/TSV/JSONL file mapping image
    file name -> caption (header e.g. file,caption; an image of a .npy/.npz is also named by its index, 0, 1, ...),
    or a folder of NAME.txt files beside NAME.png. Without CAPTIONS, IMAGES must be a .npz holding a 'prompts'
    string array beside its 'images' (one caption per image, by index). Needs local open_clip weights
    (--clip-weights or $GENMETRICS_CLIP_WEIGHTS).
    """
    if per_sample:
        check_writable(per_sample, [images, captions, references])  # fail before encoding any image
    result = clip_score(images, captions, references, w=clip_w, prefix=clip_prefix, **extraction)
    if per_sample:
        write_per_sample(per_sample, result)
    click.echo(to_json(result) if as_json else to_table(result))
