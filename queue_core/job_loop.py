"""The event loop that runs ``async def execute`` jobs, in a thread of its own.

Each job is a task on the one loop; at its ttr the watch cancels the task. A job that
blocks the loop stalls every async job of this worker: once such a run is given up as
stuck and the loop has not turned for ``STUCK_GRACE`` seconds, later jobs go to a new loop
and the blocked one is left to its thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import threading
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from . import control
from .inflight import STUCK_GRACE, Finished, Run, TtrWatch

if TYPE_CHECKING:
    from .queue import Queue

logger = logging.getLogger(__name__)

BEAT = 0.5
"""Seconds between two marks the loop leaves to show it still turns."""


_ASYNC: dict[type, bool] = {}


def is_async(job: object) -> bool:
    """Whether ``job``'s execute is a coroutine function (``async def``)."""
    kind = type(job)
    found = _ASYNC.get(kind)
    if found is None:
        found = _ASYNC[kind] = inspect.iscoroutinefunction(getattr(kind, "execute", None))
    return found


class JobLoop:
    def __init__(self, queue: Queue, watch: TtrWatch, finished: Finished) -> None:
        self._queue = queue
        self._watch = watch
        self._finished = finished
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._beat = 0.0
        self._lock = threading.Lock()

    def submit(self, runs: list[Run]) -> None:
        with self._lock:
            if self._loop is None:
                self._start_loop()
            loop = self._loop
        assert loop is not None
        # One wake-up of the loop for them all.
        loop.call_soon_threadsafe(self._begin_all, runs)

    def _begin_all(self, runs: list[Run]) -> None:
        for run in runs:
            self._begin(run)

    def _start_loop(self) -> None:
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(started.set)
            loop.call_soon(self._mark, loop)
            try:
                loop.run_forever()
            finally:
                loop.close()

        # Tasks copy the loop thread's context variables, and the loop thread the worker's
        # (see job_threads.py).
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(serve,),
                                        name="queue-core event loop", daemon=True)
        self._thread.start()
        started.wait()
        self._loop = loop
        self._beat = time.monotonic()

    def _mark(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is self._loop:
            self._beat = time.monotonic()
        loop.call_later(BEAT, self._mark, loop)

    def replace(self, run: Run) -> None:
        """``run`` was given up as stuck; if it holds the loop, later jobs get a new one."""
        with self._lock:
            if self._loop is not None and time.monotonic() - self._beat > STUCK_GRACE:
                logger.error("the event loop has not turned for %.0fs (an async job blocks "
                             "it, such as job %s): async jobs go to a new loop",
                             time.monotonic() - self._beat, run.message.id)
                self._loop = None

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
            thread, self._thread = self._thread, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=1.0)

    def _begin(self, run: Run) -> None:
        try:
            task: asyncio.Task[Any] = asyncio.ensure_future(_outcome(run.job.execute(self._queue)))
        except BaseException as error:  # execute raised before its first await, or is odd
            run.error = error
            self._finished.put(run)
            return
        loop = task.get_loop()
        run.thread_id = threading.get_ident()

        def interrupt(_run: Run) -> None:
            loop.call_soon_threadsafe(task.cancel)

        run.interrupt = interrupt
        run.control = control.begin(run.job, run.message.id, self._queue.driver)
        run.control.on_cancel = lambda: interrupt(run)
        with self._watch.lock:
            self._watch.watch(run)
        task.add_done_callback(lambda done: self._end(run, done))

    def _end(self, run: Run, task: asyncio.Task[Any]) -> None:
        if run.control is not None:
            control.end(run.job, run.control)
        with self._watch.lock:
            self._watch.forget(run)
        if run.abandoned:
            logger.warning("job %s ended %.0fs after it was given up as stuck; its outcome "
                           "is dropped (its lease brings the job back)", run.message.id,
                           time.monotonic() - run.started, extra=run.log_extra(self._queue))
            return
        if task.cancelled():
            if not run.expired:
                run.error = asyncio.CancelledError()
        else:
            ok, value = task.result()
            if ok:
                run.result = value
            else:
                run.error = value
        self._finished.put(run)


async def _outcome(job_run: Awaitable[Any]) -> tuple[bool, Any]:
    """(True, result) or (False, error): a job's SystemExit or KeyboardInterrupt is its
    failure, where a task would raise it out of the loop and stop every job on it."""
    try:
        return True, await job_run
    except asyncio.CancelledError:
        raise
    except BaseException as error:
        return False, error
