"""The pool of threads that runs synchronous jobs when a worker has several in flight.

Threads start as jobs need them, up to the worker's concurrency. At a job's ttr the watch
raises ``JobTimeoutError`` inside its thread (``PyThreadState_SetAsyncExc``, as watchdog.py
does for one job). A thread given up as stuck is replaced at once and, should its job ever
return, drops the outcome and exits.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import queue as stdqueue
import threading
import time
from typing import TYPE_CHECKING

from . import control
from .errors import JobTimeoutError
from .inflight import Finished, Run, TtrWatch
from .watchdog import _raise_in

if TYPE_CHECKING:
    from .queue import Queue

logger = logging.getLogger(__name__)


class JobThreads:
    def __init__(self, queue: Queue, size: int, watch: TtrWatch, finished: Finished) -> None:
        self._queue = queue
        self._size = size
        self._watch = watch
        self._finished = finished
        self._tasks: stdqueue.SimpleQueue[Run | None] = stdqueue.SimpleQueue()
        self._threads: dict[int, threading.Thread] = {}
        """Live threads by ident; one given up as stuck leaves it."""
        self._idle = 0
        self._count = 0
        self._lock = threading.Lock()

    def submit(self, run: Run) -> None:
        with self._lock:
            if self._idle == 0 and len(self._threads) < self._size:
                self._start_thread()
            else:
                self._idle -= 1
        self._tasks.put(run)

    def _start_thread(self) -> None:
        self._count += 1
        # A copy of the worker's context variables: what a framework set up for the whole
        # worker (Flask's app context, pushed when its worker loads the app) is there in
        # every job thread, as it is in the worker's own thread.
        thread = threading.Thread(target=contextvars.copy_context().run, args=(self._serve,),
                                  name=f"queue-core job {self._count}", daemon=True)
        thread.start()
        assert thread.ident is not None
        self._threads[thread.ident] = thread

    def replace(self, run: Run) -> None:
        """``run`` was given up as stuck: its thread no longer counts."""
        with self._lock:
            self._threads.pop(run.thread_id, None)

    def close(self) -> None:
        """Let each live thread exit once it is idle."""
        with self._lock:
            count = len(self._threads)
        for _ in range(count):
            self._tasks.put(None)

    def _serve(self) -> None:
        me = threading.get_ident()
        while True:
            run = self._tasks.get()
            if run is None:
                return
            self._execute(run, me)
            if run.abandoned:
                logger.warning("job %s returned %.0fs after it was given up as stuck; its "
                               "outcome is dropped (its lease brings the job back)",
                               run.message.id, time.monotonic() - run.started,
                               extra=run.log_extra(self._queue))
                return
            self._finished.put(run)
            with self._lock:
                self._idle += 1

    def _execute(self, run: Run, me: int) -> None:
        run.thread_id = me
        run.interrupt = _interrupt
        # Told only, never interrupted for a cancel: see control.py and docs/flow.md.
        run.control = control.begin(run.job, run.message.id, self._queue.driver)
        try:
            try:
                with self._watch.lock:
                    self._watch.watch(run)
                result = run.job.execute(self._queue)
                if inspect.isawaitable(result):
                    _close(result)
                    raise TypeError(f"{type(run.job).__qualname__}.execute returned an "
                                    "awaitable: declare it 'async def' to run it on the "
                                    "worker's event loop")
                run.result = result
            finally:
                self._end(run, me)
        except BaseException as error:  # a job's SystemExit or KeyboardInterrupt is its own
            self._end(run, me)
            run.error = error

    def _end(self, run: Run, me: int) -> None:
        if run.control is not None:
            control.end(run.job, run.control)
        with self._watch.lock:
            self._watch.forget(run)
            if run.expired or run.stopped:
                _raise_in(me, None)  # an interrupt sent but not yet raised is withdrawn


def _interrupt(run: Run) -> None:
    # The class the job sees is the one it may catch; the run's ``expired`` flag, not the
    # exception, tells the worker that its ttr ran out.
    _raise_in(run.thread_id, JobTimeoutError)


def _close(awaitable: object) -> None:
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()

