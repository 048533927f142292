"""One exception hierarchy for every user-facing failure, and the spelling of arguments in its messages.

Each message names the offending file or argument and says what to do about it. The CLI prints
``str(error)`` on one line and exits with code 2.

A message names an argument as its reader writes it: :func:`spell` gives ``skip_bad=True`` to Python callers and
``--skip-bad`` to CLI users, who run inside :func:`cli_spelling` (the ``genmetrics`` command sets it around every
subcommand). :func:`phrase` picks between two wordings where more than one argument's spelling differs (a whole
call, a command line).
"""
from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

CLI_NAMES: dict[str, str] = {
    "bootstrap_replicates": "--bootstrap",
    "cache=False": "--no-cache",
    "hparams": "-p",
    "progress=False": "--no-progress",
}
"""Python spellings whose CLI flag is not the default ``--`` + the name with dashes (``-x`` for a one-letter name):
a name, or ``name=value`` for a value that has a flag of its own."""

_CLI = contextvars.ContextVar("genmetrics_cli_spelling", default=False)


@contextmanager
def cli_spelling() -> Iterator[None]:
    """Within this block (in this thread or task), :func:`spell` and :func:`phrase` speak to CLI users."""
    token = _CLI.set(True)
    try:
        yield
    finally:
        _CLI.reset(token)


def phrase(python: str, cli: str) -> str:
    """``cli`` within :func:`cli_spelling`, else ``python``: for wordings that differ beyond one argument."""
    return cli if _CLI.get() else python


def spell(name: str, value: str | None = None) -> str:
    """The argument ``name`` (its Python name) with ``value`` (written as is) as the reader of the message writes it.

    Python callers: ``name=value``, or ``name=True`` for a flag (``value`` None). CLI users (within
    :func:`cli_spelling`): ``--name-with-dashes value``, or ``--name-with-dashes`` for a flag; :data:`CLI_NAMES`
    holds the flags spelled otherwise (``bootstrap_replicates`` -> ``--bootstrap``, ``cache=False`` ->
    ``--no-cache``).
    """
    if not _CLI.get():
        return f"{name}={'True' if value is None else value}"
    if value is not None and f"{name}={value}" in CLI_NAMES:
        return CLI_NAMES[f"{name}={value}"]
    flag = CLI_NAMES.get(name) or ("-" if len(name) == 1 else "--") + name.replace("_", "-")
    return flag if value is None else f"{flag} {value}"


class GenMetricsError(Exception):
    """Base class of every error genmetrics raises on purpose."""


class InputError(GenMetricsError):
    """A source of images (path, array, callable) is missing, empty, unreadable or malformed."""


class DecodeError(InputError):
    """One image file could not be decoded; ``path`` names it."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot decode image {path!r}: {reason} (fix or remove the file, or pass "
                         f"{spell('skip_bad')})")

    def __reduce__(self):  # picklable, so DataLoader workers can hand it to the main process
        return (DecodeError, (self.path, self.reason))


class WeightsError(GenMetricsError):
    """Model weights are missing, of the wrong kind, or fail their sha256 check."""


class StatsError(GenMetricsError):
    """A statistics file is malformed, or incompatible with the other side of a comparison."""


class MetricError(GenMetricsError):
    """A metric cannot be computed from the given features (too few samples, NaN, wrong shapes)."""


class ConfigError(GenMetricsError):
    """An option or argument has an invalid value."""
