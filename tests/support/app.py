"""The --app target of worker subprocesses: settings come from $QUEUE_TEST_SETTINGS.

A worker that a test finds stuck is sent SIGUSR1 before it is killed, and writes every
thread's stack to its stderr, so that the failure shows where it hung."""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import time
from typing import Any

from queue_core import ExecEvent, Queue, WorkerEvent, create_queue

from .jobs import append

if hasattr(signal, "SIGUSR1"):
    faulthandler.register(signal.SIGUSR1, all_threads=True)


def mark_ready(event: WorkerEvent) -> None:
    path = os.environ.get("QUEUE_TEST_READY")
    if path:
        append(path, str(os.getpid()))


def log_exec(event: ExecEvent) -> None:
    """'<pid> <job id> <attempt>' per run, so tests see attempts on any driver."""
    path = os.environ.get("QUEUE_TEST_EXEC_LOG")
    if path:
        append(path, f"{os.getpid()} {event.id} {event.attempt}")


def log_done(event: ExecEvent) -> None:
    """'<pid> <job id>' per completed run."""
    path = os.environ.get("QUEUE_TEST_DONE_LOG")
    if path:
        append(path, f"{os.getpid()} {event.id}")


def slow_exit(event: WorkerEvent) -> None:
    """Mark the worker's exit and stay in it a while, so that a test can signal it there."""
    path = os.environ.get("QUEUE_TEST_EXITING")
    if path:
        append(path, str(os.getpid()))
        time.sleep(1)


def queue() -> Queue:
    if "exec" in sys.argv[1:] and os.environ.get("QUEUE_TEST_CHILD_START_DELAY"):
        # An exec child (isolate=exec) that takes this long to load the app: a loaded host.
        time.sleep(float(os.environ["QUEUE_TEST_CHILD_START_DELAY"]))
    settings: dict[str, Any] = json.loads(os.environ["QUEUE_TEST_SETTINGS"])
    built = create_queue(settings)
    built.on(Queue.EVENT_WORKER_START, mark_ready)
    built.on(Queue.EVENT_BEFORE_EXEC, log_exec)
    built.on(Queue.EVENT_AFTER_EXEC, log_done)
    if os.environ.get("QUEUE_TEST_EXITING"):
        built.on(Queue.EVENT_WORKER_STOP, slow_exit)
    return built
