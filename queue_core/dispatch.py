"""Several jobs in flight in one worker: the main thread fetches, starts and settles.

Only ``execute`` leaves the main thread: a synchronous job runs on a pool thread, an
``async def`` one on the worker's event loop, an isolated one in a child process
(job_children.py) that a pool thread waits for. Decoding, the lost-run check, every event
handler, the retry decision and every call to the back end stay on the main thread, so a
driver's consumer is never used from two threads. A job is begun (and so counts as an
attempt) only when a slot is free for it; on stop, fetching ends and the jobs running are
let finish (each within its ttr), and what was fetched and not begun goes back uncharged.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from . import control
from .errors import NotSupportedError
from .inflight import STUCK_GRACE, Finished, Run, TtrWatch
from .job_loop import JobLoop, is_async
from .job_threads import JobThreads
from .model import Message
from .watchdog import available as thread_interrupts_available

if TYPE_CHECKING:
    from .job_children import ChildPool
    from .queue import Queue
    from .worker import Worker

logger = logging.getLogger(__name__)

STOP_NOW_WAIT = 2.0
"""Seconds the worker waits for the jobs it interrupted on a second stop signal; one
still running then is left to its lease."""
SWITCH_INTERVAL = 0.001
"""The interpreter's thread switch interval (seconds) while the worker has several jobs in
flight: the main thread begins the next job when one ends, and a job thread running Python
code would otherwise keep it waiting for the interpreter lock for up to the default 5 ms."""


class _FastSwitching:
    """The interpreter's switch interval at ``SWITCH_INTERVAL`` while any dispatcher of the
    process runs: dispatchers may overlap in several threads (a job that runs a worker of
    its own), and each putting back the value it found would leave the fast one for good
    when they end out of order. The first to come saves the value; the last to go puts it
    back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = 0.0

    def __enter__(self) -> None:
        with self._lock:
            if not self._users:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, SWITCH_INTERVAL))
            self._users += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if not self._users:
                sys.setswitchinterval(self._saved)


_fast_switching = _FastSwitching()

BUSY_WAIT = 0.05
"""Longest wait on the back end for one more job while others run: their outcomes are
settled only between two waits."""


class Runners:
    """One worker's pool threads, event loop and ttr watch, each made when first needed."""

    def __init__(self, queue: Queue, size: int, enforce_ttr: bool,
                 children: ChildPool | None = None) -> None:
        self.finished = Finished()
        self._children = children
        self._isolated: ThreadPoolExecutor | None = None
        self._queue = queue
        self._size = size
        self._watch = TtrWatch(self._stuck)
        self._enforce = enforce_ttr
        self._threads: JobThreads | None = None
        self._loop: JobLoop | None = None

    def start(self, runs: list[Run]) -> None:
        """Start ``runs``: async ones on the event loop (handed over together), the others
        on pool threads or in child processes."""
        if self._children is not None:
            if self._isolated is None:
                self._isolated = ThreadPoolExecutor(self._size, "queue-core isolated job")
            for run in runs:
                self._isolated.submit(self._run_isolated, run, self._children,
                                      self._children.take())
            return
        coroutines = []
        for run in runs:
            if is_async(run.job):
                coroutines.append(run)
                continue
            if self._threads is None:
                if self._enforce and not thread_interrupts_available():
                    raise NotSupportedError(
                        "ttr cannot be enforced on job threads: this interpreter cannot "
                        "raise an exception in another thread (no ctypes.pythonapi); run "
                        "with concurrency 1, --isolate, or enforce_ttr=False")
                self._threads = JobThreads(self._queue, self._size, self._watch, self.finished)
            self._threads.submit(run)
        if coroutines:
            if self._loop is None:
                self._loop = JobLoop(self._queue, self._watch, self.finished)
            self._loop.submit(coroutines)

    def run_one(self, run: Run, hurry: Callable[[], bool]) -> Run | None:
        """Start ``run`` alone and wait for it to end (or be given up); None if it was
        interrupted because of ``hurry`` and still runs ``STOP_NOW_WAIT`` seconds later."""
        self.start([run])
        interrupted = 0.0
        while True:
            ended = self.finished.take(0.1)
            if ended:
                return ended[0]
            if hurry():
                if not interrupted:
                    interrupted = time.monotonic()
                    self.interrupt({run})
                elif time.monotonic() - interrupted > STOP_NOW_WAIT:
                    logger.error("job %s still runs %gs after it was interrupted; its lease "
                                 "brings it back", run.message.id, STOP_NOW_WAIT,
                                 extra=run.log_extra(self._queue))
                    return None

    def _run_isolated(self, run: Run, children: ChildPool, child: Any) -> None:
        # The child is killed at the job's ttr: the watch has nothing to do here.
        run.started = time.monotonic()
        run.control = control.begin(run.job, run.message.id, self._queue.driver)
        run.control.on_cancel = lambda: children.cancel(child, run.message.id)
        try:
            outcome = children.run(child, run.message.id, run.message.payload, run.ttr,
                                   run.message.began)
            run.result, run.error, run.info = outcome.result, outcome.error, outcome.info
        except BaseException as error:  # noqa: BLE001 - a broken pipe is this job's end
            run.error = error
        finally:
            control.end(run.job, run.control)
        self.finished.put(run)

    def interrupt(self, runs: set[Run]) -> None:
        """Stop ``runs`` now (a second stop signal): a thread job gets an exception, an
        async one is cancelled, an isolated one's child is killed."""
        with self._watch.lock:
            for run in runs:
                run.stopped = True
                if run.interrupt is not None and self._watch.watching(run):
                    run.interrupt(run)
        if self._children is not None:
            self._children.kill_busy()

    def _stuck(self, run: Run) -> None:
        if is_async(run.job):
            if self._loop is not None:
                self._loop.replace(run)
        elif self._threads is not None:
            self._threads.replace(run)
        self.finished.put(run)

    def close(self) -> None:
        self._watch.close()
        if self._threads is not None:
            self._threads.close()
        if self._loop is not None:
            self._loop.close()
        if self._isolated is not None:
            self._isolated.shutdown(wait=False)


class Dispatcher:
    """The loops of a worker with ``concurrency`` above 1, or of one at concurrency 1 that
    met an async job (``inline``): then up to ``size`` async jobs run side by side and a
    synchronous one runs alone in the main thread, as at concurrency 1, while the async
    ones go on."""

    def __init__(self, worker: Worker, runners: Runners, size: int,
                 inline: bool = False) -> None:
        self.worker = worker
        self.runners = runners
        self.size = size
        self.running: set[Run] = set()
        self._inline = inline
        self._last = worker._runs_inline if inline else None
        self._async_streak = True
        """inline: the last batch held async jobs only. After a synchronous one, one job is
        fetched at a time, so that a worker busy with a slow one does not hold back jobs
        that another worker could run."""

    def adopt(self, run: Run) -> None:
        """Take ``run``, begun and prepared elsewhere, as one of this dispatcher's."""
        self._launch([run])

    def listen(self, wait: float) -> None:
        """Until the worker stops; a wait on the back end lasts up to ``wait`` seconds (a
        back end that fails is waited out by the worker)."""
        self._loop(wait, until_empty=False)

    def run(self) -> None:
        """Every job ready now, with up to ``size`` in flight."""
        self._loop(BUSY_WAIT, until_empty=True)

    def _loop(self, wait: float, until_empty: bool) -> None:
        with _fast_switching:
            self._dispatch(wait, until_empty)

    def _dispatch(self, wait: float, until_empty: bool) -> None:
        worker = self.worker
        finished = self.runners.finished
        while True:
            self._settle(finished.take(None))
            if worker._should_stop():
                break
            room = self._room()
            if not room:
                self._fetch_ahead()
                self._settle(finished.take(wait))
            else:
                if not self._async_streak:
                    room = 1
                if until_empty:
                    messages = worker._consuming().next_many(0, room, self._last)
                else:
                    messages = worker._reserve_many(
                        min(wait, BUSY_WAIT) if self.running else wait, room, self._last)
                if messages:
                    self._start(messages)
                elif until_empty:
                    if not self.running and not worker._consuming().throttled:
                        break
                    self._settle(finished.take(BUSY_WAIT))
            worker._loop_event()
        self.drain()

    def drain(self) -> None:
        """Wait for every job in flight to end and settle it."""
        if self.running:
            logger.info("waiting for %d running jobs to finish", len(self.running))
        interrupted = 0.0
        while self.running:
            if self.worker.hurry:
                if not interrupted:
                    interrupted = time.monotonic()
                    self.runners.interrupt(self.running)
                elif time.monotonic() - interrupted > STOP_NOW_WAIT:
                    logger.error("%d interrupted jobs still run %gs later; their leases bring "
                                 "them back", len(self.running), STOP_NOW_WAIT)
                    return
            self._settle(self.runners.finished.take(0.1))

    def _room(self) -> int:
        """How many more jobs may begin now."""
        worker = self.worker
        room = self.size - len(self.running)
        if worker.max_jobs is not None:
            # max_jobs counts jobs begun: no job is begun that the worker would not finish.
            room = min(room, worker.max_jobs - worker.processed - len(self.running))
        return max(0, room)

    def _fetch_ahead(self) -> None:
        if self.worker.stopping:
            return
        try:
            fetched = self.worker._consuming().fetch_ahead(self.size)
        except Exception as exc:  # noqa: BLE001 - the next fetch meets the outage and waits it out
            logger.debug("fetching ahead failed: %s", exc)
            return
        self.worker.decode_ahead(fetched)

    def _start(self, messages: list[Message]) -> None:
        worker = self.worker
        alone = None
        if self._inline:
            # The batch ends at its first job that is not async (see next_many's last).
            self._async_streak = not worker._runs_inline(messages[-1])
            if not self._async_streak:
                alone = messages.pop()
        runs = []
        for message in messages:
            prepared = worker.guarded(message, worker.prepare, message)
            if prepared is None:
                worker.processed += 1
                continue
            job, meta, event = prepared
            runs.append(Run(message, job, meta, event, float(message.ttr)))
        self._launch(runs)
        if alone is not None:
            # Here, in the main thread, as at concurrency 1: its ttr is the worker's timer,
            # and the async jobs' outcomes wait until it ends.
            worker._take(alone, False)

    def _launch(self, runs: list[Run]) -> None:
        activity = self.worker._activity
        if activity is not None:
            for run in runs:
                activity.began(run.message)
        self.running.update(runs)
        try:
            self.runners.start(runs)
        except BaseException:
            self.running.difference_update(runs)
            raise

    def _settle(self, ended: list[Run]) -> None:
        worker = self.worker
        activity = worker._activity
        for run in ended:
            if activity is not None:
                activity.ended(run.message)
            self.running.discard(run)
            worker.guarded(run.message, worker.conclude, run)
            worker.processed += 1


def stuck_message(run: Run) -> str:
    return (f"job {run.message.id} is still running {STUCK_GRACE:g}s past its ttr of "
            f"{run.ttr:g}s (blocked in C code, or an async job that blocks the event loop "
            "or will not be cancelled): its slot is given up and its lease brings the job "
            "back; run such jobs with --isolate, which kills them at their ttr")
