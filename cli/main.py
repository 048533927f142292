"""``genmetrics`` click group: GenMetricsError -> one line on stderr and exit code 2 (traceback with --debug);
Python warnings -> one ``warning:`` line each. Subcommands run within ``genmetrics.errors.cli_spelling``, so
messages name arguments by their flags (``--skip-bad``, not ``skip_bad=True``)."""
from __future__ import annotations

import sys
import warnings

import click

from genmetrics._version import __version__
from genmetrics.errors import GenMetricsError, cli_spelling
from genmetrics.io.images import printable


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      line: str | None = None) -> str:
    """Warnings as the CLI prints its own: ``warning: message``, without the source line."""
    return f"warning: {printable(str(message))}\n"


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            with cli_spelling():
                return super().invoke(ctx)
        except GenMetricsError as error:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {printable(str(error))}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="genmetrics")
@click.option("--debug", is_flag=True, help="Show the full traceback of errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Evaluate image generators offline: FID, KID, IS, precision/recall, density/coverage, CMMD, CLIPScore."""
    ctx.ensure_object(dict)["debug"] = debug
    if not debug:
        warnings.formatwarning = _one_line_warning


def _register() -> None:
    from genmetrics_cli.cache import cache
    from genmetrics_cli.clipscore import clipscore
    from genmetrics_cli.compare import compare
    from genmetrics_cli.models import sample, train
    from genmetrics_cli.score import score
    from genmetrics_cli.stats import stats

    cli.add_command(clipscore)
    cli.add_command(score)
    cli.add_command(compare)
    cli.add_command(stats)
    cli.add_command(cache)
    cli.add_command(train)
    cli.add_command(sample)


_register()
