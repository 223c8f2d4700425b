"""What the CLI shows on a terminal: a line per job with ``-v`` and a progress bar for
``run``. Both are event handlers, so they work the same in isolated mode."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import IO, Any

from . import events
from .events import ExecEvent, WorkerEvent
from .host import memory_mb
from .queue import Queue

logger = logging.getLogger(__name__)


def _memory() -> str:
    used = memory_mb()
    return "" if used is None else f", memory {used:.1f} MB"


def _job_name(event: ExecEvent) -> str:
    if event.job is None:
        return "?"
    return getattr(type(event.job), "job_name", type(event.job).__qualname__)


class VerboseReporter:
    """Yii's verbose mode: ``[id] name (attempt N, pid P) - Started / Done / Error``."""

    def __init__(self, queue: Queue, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.broken = False
        self._started: dict[str, float] = {}
        queue.on(events.BEFORE_EXEC, self._on_start)
        queue.on(events.AFTER_EXEC, self._on_done)
        queue.on(events.AFTER_ERROR, self._on_error)

    def _line(self, event: ExecEvent, text: str) -> None:
        if self.broken:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            self.stream.write(f"{stamp} [{event.id}] {_job_name(event)} (attempt "
                              f"{event.attempt}, pid {os.getpid()}) - {text}\n")
            self.stream.flush()
        except OSError as exc:
            # Whoever read our output has gone (a closed pipe): keep working, quietly.
            self.broken = True
            logger.warning("verbose output stopped: %s", exc)

    def _elapsed(self, event: ExecEvent) -> float:
        started = self._started.pop(event.id, None)
        return 0.0 if started is None else time.perf_counter() - started

    def _on_start(self, event: ExecEvent) -> None:
        self._started[event.id] = time.perf_counter()
        self._line(event, "started")

    def _on_done(self, event: ExecEvent) -> None:
        self._line(event, f"done in {self._elapsed(event):.3f}s{_memory()}")

    def _on_error(self, event: ExecEvent) -> None:
        fate = f"retry in {event.delay:.3g}s" if event.retry else "no retry"
        error = event.error
        what = f"{type(error).__name__}: {error}" if error is not None else "error"
        self._line(event, f"error in {self._elapsed(event):.3f}s{_memory()}: {what} ({fate})")


class ProgressBar:
    """``run`` on a terminal: how many of the jobs that were ready have been processed."""

    WIDTH = 30

    def __init__(self, queue: Queue, total: int | None, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.total = total
        self.done = 0
        self._drawn = 0.0
        queue.on(events.WORKER_LOOP, self._on_loop)

    def _on_loop(self, event: WorkerEvent) -> None:
        self.done = event.worker.processed
        now = time.monotonic()
        if now - self._drawn >= 0.1:
            self.draw()
            self._drawn = now

    def draw(self) -> None:
        if self.total:
            share = min(1.0, self.done / self.total)
            filled = int(share * self.WIDTH)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            text = f"\r[{bar}] {self.done}/{self.total} jobs"
        else:
            text = f"\r{self.done} jobs"
        self.stream.write(text)
        self.stream.flush()

    def finish(self) -> None:
        self.draw()
        self.stream.write("\n")
        self.stream.flush()


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
