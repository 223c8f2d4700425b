"""Commands a driver adds to the ``queue-core`` command line (the db driver's ``db init``).

A driver class lists them in its ``cli_commands``; the CLI registers those of every driver
class ``settings.SCHEMES`` names, so the core knows no driver's commands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import argparse

    from .queue import Queue


class DriverCommand(NamedTuple):
    """``queue-core GROUP NAME [arguments]``, run on the configured queue."""

    group: str
    group_help: str
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Queue, argparse.Namespace], int]
    """Returns the exit code; raises NotSupportedError when the queue's driver is not one
    the command is for."""
