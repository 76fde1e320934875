"""Progress bars for long commands (seed-demo, CSV, backups): on a terminal only, quiet in logs and pipes."""

import sys

import click


def bar(length: int, label: str, stream=None):
    """A click progress bar on stderr; hidden when stderr is not a terminal (cron, CI, a log file).
    Use as `with bar(n, "Importing") as done: ... done.update(1)`."""
    stream = stream or sys.stderr
    return click.progressbar(length=length, label=label, file=stream, hidden=not stream.isatty())
