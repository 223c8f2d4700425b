"""``flask queue COMMAND``: the ``queue-core`` commands on a queue of the Flask app.

Each command is handed to ``queue_core.cli.main`` with ``--app`` naming
``worker_queue`` below, so that ``listen``, ``run``, ``info``, ``failed``, ``retry`` ...
take the same options, print the same and exit with the same codes as ``queue-core``.
``--queue NAME`` (before or after the command) picks one of the app's ``QUEUE_CORE``
queues. Processes a command starts (``listen --workers N``, ``--isolate exec``) load the
app again through ``worker_queue``, from the ``flask --app`` target passed in the
environment, and run their jobs inside its app context.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache

import click
from flask import current_app, has_app_context
from flask.cli import NoAppException, ScriptInfo, with_appcontext

from queue_core import cli as core_cli
from queue_core.errors import ConfigError
from queue_core.queue import Queue

from .config import DEFAULT
from .extension import app_queues

APP_ENV = "QUEUE_CORE_FLASK_APP"
"""The ``flask --app`` target, for the processes a command starts (empty: found as
``flask`` finds it, from wsgi.py or app.py in the working directory)."""
QUEUE_ENV = "QUEUE_CORE_FLASK_QUEUE"
"""The name of the queue, for the processes a command starts."""
WORKER_TARGET = f"{__name__}:worker_queue"
HIDDEN = ("exec",)
"""Core commands that only the core's own processes call (they still pass through)."""


def worker_queue() -> Queue:
    """The ``--app`` factory of the commands: a new queue (closed by the command), from
    the current app, or in a process the command started, from the app loaded anew."""
    name = os.environ.get(QUEUE_ENV) or DEFAULT
    if has_app_context():
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    else:
        target = os.environ.get(APP_ENV) or None
        try:
            app = ScriptInfo(app_import_path=target).load_app()
        except NoAppException as exc:
            raise ConfigError(f"cannot load the Flask app in a worker process: "
                              f"{exc.format_message()} (run the command as "
                              "'flask --app module queue ...')", key="--app") from exc
        # For the life of the process: jobs run inside the app's context.
        app.app_context().push()
    return app_queues(app).create(name)


class QueueGroup(click.Group):
    """Every ``queue-core`` command, passed through to its own argument parser."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in _core_help() if name not in HIDDEN]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return _pass_through(cmd_name, _core_help().get(cmd_name, ""))


@click.group("queue", cls=QueueGroup,
             help="Run and inspect the app's queues: the queue-core commands "
                  "('flask queue COMMAND --help' shows one's options).")
@click.option("--queue", "queue_name", default=None, metavar="NAME",
              help=f"the queue of QUEUE_CORE to use (default {DEFAULT!r}); may also "
                   "follow the command")
def queue_group(queue_name: str | None) -> None:
    pass


def _pass_through(name: str, help_text: str) -> click.Command:
    @click.command(name, help=help_text, short_help=help_text, add_help_option=False,
                   context_settings={"ignore_unknown_options": True,
                                     "allow_extra_args": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    @click.pass_context
    @with_appcontext
    def command(ctx: click.Context, args: tuple[str, ...]) -> None:
        chosen = ctx.parent.params.get("queue_name") if ctx.parent else None
        picked, rest = _pop_queue_option(args)
        queue_name = picked or chosen or DEFAULT
        if any(arg == "--app" or arg.startswith("--app=") for arg in rest):
            raise click.UsageError("--app is not taken here: 'flask --app' names the app, "
                                   "--queue NAME one of its queues")
        queues = app_queues(current_app)
        if queue_name not in queues:
            raise click.UsageError(f"no queue named {queue_name!r} in QUEUE_CORE (queues: "
                                   f"{', '.join(queues)})")
        info = ctx.ensure_object(ScriptInfo)
        with _environment({APP_ENV: info.app_import_path or "", QUEUE_ENV: queue_name}):
            code = core_cli.main(["--app", WORKER_TARGET, name, *rest], prog="flask queue")
        ctx.exit(code)

    return command


def _pop_queue_option(args: Sequence[str]) -> tuple[str | None, list[str]]:
    """``--queue NAME`` or ``--queue=NAME`` taken out of a command's arguments."""
    picked: str | None = None
    rest: list[str] = []
    words = iter(args)
    for word in words:
        if word == "--queue":
            picked = next(words, None)
            if picked is None:
                raise click.UsageError("--queue needs a queue name")
        elif word.startswith("--queue="):
            picked = word.partition("=")[2]
        else:
            rest.append(word)
    return picked, rest


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables (inherited by the processes started meanwhile), then
    put back what was there."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@cache
def _core_help() -> dict[str, str]:
    """Each core command's one-line help, from the core's parser (without the drivers'
    commands, which would import every driver)."""
    parser = core_cli.build_parser(["info"])
    found: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                found[choice.dest] = choice.help or ""
            for name in action.choices:
                found.setdefault(name, "")
    return found

