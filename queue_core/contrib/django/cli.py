"""``manage.py queue [--queue NAME] COMMAND ...``: the ``queue-core`` command (every
command and option of queue_core/cli.py) on a queue of ``settings.QUEUE_CORE``, given to it
as ``--app queue_core.contrib.django.targets:NAME``."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ... import cli
from .registry import DEFAULT
from .targets import target

DJANGO_OPTIONS = {"--settings": True, "--pythonpath": True, "--traceback": False,
                  "--no-color": False, "--force-color": False}
"""Django's own options (True: takes a value), read by manage.py before the command."""


def run(argv: Sequence[str]) -> int:
    """Run ``queue-core`` with ``argv`` (``--queue NAME`` picks the queue) and return its
    exit code."""
    try:
        name, rest = split_arguments(argv)
    except cli.UsageError as exc:
        print(f"manage.py queue: error: {exc}", file=sys.stderr)
        return cli.EXIT_USAGE
    _children_find_the_project()
    return cli.main(["--app", target(name), *rest], prog="manage.py queue")


def split_arguments(argv: Sequence[str]) -> tuple[str, list[str]]:
    """``(queue name, the rest for queue-core)``; Django's options are dropped."""
    name = DEFAULT
    rest: list[str] = []
    words = iter(argv)
    for word in words:
        option, equals, value = word.partition("=")
        if option == "--queue":
            name = value if equals else next(words, "")
            if not name:
                raise cli.UsageError("--queue needs a queue name")
        elif option == "--app":
            raise cli.UsageError("--app is not taken here: --queue NAME picks a queue of "
                                 "settings.QUEUE_CORE")
        elif option in DJANGO_OPTIONS:
            if DJANGO_OPTIONS[option] and not equals:
                next(words, None)
        else:
            rest.append(word)
    return name, rest


def _children_find_the_project() -> None:
    """Worker processes started by ``listen --workers`` or ``--isolate exec`` import the
    settings module too: put the folder holding its package on their PYTHONPATH (the
    folder of manage.py is on this process's path only)."""
    module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    try:
        spec = importlib.util.find_spec(module.partition(".")[0]) if module else None
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None and not spec.submodule_search_locations:
        return
    if spec.submodule_search_locations:
        where = Path(list(spec.submodule_search_locations)[0]).parent
    else:
        where = Path(str(spec.origin)).parent
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(where) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(where), *paths]))
