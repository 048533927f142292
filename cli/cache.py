"""``genmetrics cache info`` and ``genmetrics cache clear [--spec DIGEST]``."""
from __future__ import annotations

import click

from genmetrics.features.cache import SpecUsage, cache_dir, cache_usage, clear_cache


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


def _describe(usage: SpecUsage) -> str:
    """One line per spec folder: digest prefix, extractor, resize and size, weights, version, entries, size."""
    record = usage.record
    if record is None:
        what = "(spec.json missing or unreadable)"
    else:
        spec = record.get("extractor", {})
        what = (f"{spec.get('name')} resize={spec.get('resize')}@{spec.get('image_size')} "
                f"weights={str(spec.get('weights_sha256'))[:12]} {spec.get('precision')} "
                f"genmetrics={record.get('genmetrics')}")
    return f"{usage.digest[:12]}  {what}  {usage.entries} entries, {_size(usage.size)}"


@click.group()
def cache() -> None:
    """The per-image feature cache ($GENMETRICS_CACHE_DIR, default ~/.cache/genmetrics)."""


@cache.command()
def info() -> None:
    """Print the cache folder, its entry count and size, and one line per extractor spec."""
    root = cache_dir()
    usage = cache_usage(root)
    click.echo(f"folder: {root}")
    click.echo(f"entries: {sum(u.entries for u in usage)}")
    click.echo(f"size: {_size(sum(u.size for u in usage))}")
    for u in usage:
        click.echo(_describe(u))


@cache.command()
@click.option("--spec", default=None, metavar="DIGEST",
              help="Delete only the entries of this extractor spec (a digest prefix from `genmetrics cache info`).")
def clear(spec: str | None) -> None:
    """Delete cached features (all of them, or one extractor spec's)."""
    root = cache_dir()
    removed = clear_cache(root, spec)
    click.echo(f"removed {sum(u.entries for u in removed)} entries ({_size(sum(u.size for u in removed))}) "
               f"from {root}")
