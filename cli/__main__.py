"""``python -m cli`` = the ``genmetrics`` command."""
from cli.main import cli

cli(prog_name="genmetrics")
