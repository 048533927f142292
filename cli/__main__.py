"""``python -m genmetrics_cli`` = the ``genmetrics`` command."""
from genmetrics_cli.main import cli

cli(prog_name="genmetrics")
