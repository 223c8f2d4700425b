"""``manage.py queue [--queue NAME] listen|run|info|failed|retry|status|remove|clear|...``:
the ``queue-core`` command on a queue of ``settings.QUEUE_CORE`` (default: "default").
``manage.py queue --help`` lists the commands."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from queue_core.contrib.django.cli import run


class Command(BaseCommand):  # type: ignore[misc]
    help = ("Run and inspect a queue of settings.QUEUE_CORE: the queue-core command "
            "(listen, run, info, failed, retry, status, remove, clear, ...); --queue NAME "
            "picks the queue (default: 'default').")

    def run_from_argv(self, argv: list[str]) -> None:
        # The queue-core parser takes the whole command line: its options (-v, --workers,
        # ...) are not Django's.
        try:
            code = run(argv[2:])
        finally:
            connections.close_all()
        if code:
            sys.exit(code)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--queue", default="default", help="the queue's name in QUEUE_CORE")
        parser.add_argument("arguments", nargs=argparse.REMAINDER,
                            help="a queue-core command and its options")

    def handle(self, *args: Any, **options: Any) -> None:
        """``call_command("queue", "info", queue="mail")``."""
        code = run(["--queue", options["queue"], *options["arguments"]])
        if code:
            raise CommandError(f"queue-core exited with {code}", returncode=code)
