"""``genmetrics stats SRC -o out.npz`` and ``genmetrics stats --list``."""
from __future__ import annotations

import click

from genmetrics_cli.options import extraction_options
from genmetrics.errors import ConfigError
from genmetrics.evaluate import compute_stats
from genmetrics.features.distributed import is_main_process
from genmetrics.io.images import printable
from genmetrics.references import list_references


@click.command()
@click.argument("src", required=False)
@click.option("-o", "--output", type=click.Path(), help="Output .npz (written atomically).")
@click.option("--features", is_flag=True, help="Also store the feature matrix (needed for kid/pr/dc).")
@click.option("--sfid", is_flag=True,
              help="Also store sFID's spatial statistics (mu_s, sigma_s; inception, tf1, fp32 only).")
@click.option("--format", "output_format", type=click.Choice(["genmetrics", "adm"]), default="genmetrics",
              show_default=True,
              help="genmetrics: a stats file; adm: a guided-diffusion reference batch (arr_0 = a seeded subset of "
                   "at most 10,000 images, mu/sigma[/mu_s/sigma_s] of all of SRC).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the ADM batch's image subset.")
@click.option("--list", "list_shipped", is_flag=True, help="List the shipped reference statistics.")
@extraction_options
def stats(src, output, features, sfid, output_format, seed, list_shipped, **extraction) -> None:
    """Compute reference statistics (mu, sigma; pytorch-fid keys) of SRC and write them to OUTPUT."""
    if list_shipped:
        rows = [(e["name"], str(e["n"]), str(e.get("features", "-")), e["extractor"], e["weights_sha256"][:12],
                 e["resize"], e["sha256"][:12], e["source"]) for e in list_references()]
        header = ("name", "N", "features", "extractor", "weights sha256", "resize", "file sha256", "source")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        return
    if src is None or output is None:
        raise ConfigError("give a source and an output: `genmetrics stats SRC -o out.npz` (or --list)")
    result = compute_stats(src, output, features=features, sfid=sfid, format=output_format, seed=seed, **extraction)
    if is_main_process():  # under torchrun, rank 0 alone writes and prints
        extras = [name for name, given in (("features", features), ("sfid statistics", sfid)) if given]
        kind = "ADM reference batch " if output_format == "adm" else ""
        click.echo(f"wrote {kind}{printable(output)}: N={result.n}, dim={result.extractor.dim}, "
                   f"resize={result.extractor.resize}{''.join(', with ' + extra for extra in extras)}")
