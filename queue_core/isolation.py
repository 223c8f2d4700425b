"""Isolated mode (``--isolate``): its setting, and what a child reports.

A job runs in a child process of the worker (job_children.py keeps a pool of them); the
worker keeps the reservation, the events and every decision. Two ways to make a child:

- ``fork`` (default where ``os.fork`` exists): a copy of the worker, ready at once. The
  driver's ``after_fork`` hook makes the child leave the worker's connections alone.
- ``exec`` (the default without ``os.fork``): a fresh interpreter running
  ``queue-core --app APP exec``: nothing is shared with the worker, at the price of an
  interpreter start for each child.

A child reports each job as a pickle of (ok, value, error info); the worker turns it into
an ``Outcome``: the job's result, or its error as itself (a custom class included, so
``can_retry`` can test it) with the child's traceback.
"""

from __future__ import annotations

import inspect
import os
import pickle
import signal
import traceback
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .driver import ErrorInfo
from .errors import ConfigError

if TYPE_CHECKING:
    from .job import Job
    from .queue import Queue

MODES = ("fork", "exec")
DEFAULT_MODE = "fork" if callable(getattr(os, "fork", None)) else "exec"
"""What ``isolate=True`` (or a bare ``--isolate``) means on this platform."""
_CHILD_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGQUIT",
                                                          "SIGHUP") if hasattr(signal, name))


def parse_mode(value: Any, key: str = "isolate") -> str | None:
    """``isolate`` setting: False/None (in-process), True (DEFAULT_MODE), "fork" or "exec".

    Whether the platform can do the mode is the worker's question, not the settings': a
    producer that shares the settings needs neither."""
    if value is None or value is False:
        return None
    if value is True:
        return DEFAULT_MODE
    if value in MODES:
        return str(value)
    raise ConfigError(f"{key} must be true, false, 'fork' or 'exec', got {value!r}", key=key)


@dataclass
class Outcome:
    """What the child reported: a result, or an error with the child's traceback."""

    ok: bool
    result: Any = None
    error: BaseException | None = None
    info: ErrorInfo | None = None


class RemoteJobError(Exception):
    """An error raised in the child that could not be sent back as itself."""


def encode_outcome(ok: bool, value: Any, error_text: str = "") -> bytes:
    if ok:
        try:
            return pickle.dumps((True, value, None), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            return pickle.dumps((True, repr(value), None))
    kind = type(value)
    name = kind.__qualname__ if kind.__module__ == "builtins" else (
        f"{kind.__module__}.{kind.__qualname__}")
    info = (name, str(value), error_text)
    try:
        return pickle.dumps((False, value, info), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return pickle.dumps((False, None, info))


def decode_outcome(data: bytes) -> Outcome:
    ok, value, info = pickle.loads(data)
    if ok:
        return Outcome(True, result=value)
    error_info = ErrorInfo(*info)
    error = value if isinstance(value, BaseException) else RemoteJobError(
        f"{error_info.type}: {error_info.message}")
    return Outcome(False, error=error, info=error_info)


def run_and_encode(queue: Queue, job: Job) -> bytes:
    """In a child: run ``job`` (an ``async def`` one on an event loop of its own) and
    encode what happened."""
    try:
        result = job.execute(queue)
        if inspect.isawaitable(result):
            import asyncio
            result = asyncio.run(_awaited(result))
        return encode_outcome(True, result)
    except BaseException as exc:  # noqa: BLE001 - the worker judges every error
        return encode_outcome(False, exc, "".join(traceback.format_exception(exc)))


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def ignore_stop_signals() -> None:
    # The worker decides when to stop; a Ctrl-C that reaches the whole process group must
    # not kill the job halfway.
    for signum in _CHILD_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def describe_exit(status: int) -> str:
    """How a process with the os.waitpid ``status`` ended."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = str(signum)
        return f"died with signal {signum} ({name})"
    return f"exited with code {os.WEXITSTATUS(status)}"
