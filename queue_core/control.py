"""What a running job may ask of its worker (``self.cancelled()``, ``self.progress()``)
and how a cancel reaches a run: a ``RunControl`` per run, and ``CancelWatch``, the thread
that asks the back end which of the runs in hand were cancelled.

``queue.cancel`` from any process leaves a mark in the store. The process's watch thread
(one, started by the first worker, for every worker and store of the process) reads the
marks of the runs that have gone on for ``POLL_AFTER`` seconds, in one batched call per
store every ``POLL_EVERY`` seconds; short jobs are never looked up, so the no-op path pays
only for registering each run. A run found cancelled is stopped the way its kind allows
(``RunControl.on_cancel``: its task cancelled, its child killed; a thread job is only
told, through ``cancelled()``), and its outcome, whatever it is, becomes a
``JobCancelledError``.

Progress writes are throttled to one per ``PROGRESS_EVERY`` seconds; a value held back is
written by a timer, and the last one always before the run's outcome (``finish``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import JobCancelledError, NotSupportedError
from .model import Progress

if TYPE_CHECKING:
    from .store import Store

logger = logging.getLogger(__name__)

POLL_EVERY = 0.25
"""Seconds between two looks for cancel marks while runs go on."""
POLL_AFTER = 0.2
"""Seconds a run goes on before its cancel mark is looked up at all."""
PROGRESS_EVERY = 0.5
"""Seconds between two progress writes of one run."""


class RunControl:
    """One run's link to its worker: the cancel flag and the progress writes.

    Made for every run: what most runs never use is a class default, so that making one
    sets three attributes."""

    cancelled = False
    on_cancel: Callable[[], None] | None = None
    """How to stop the run at once (set by its runner); None: the job is only told."""
    _lock: threading.Lock | None = None
    _pending: Progress | None = None
    _written_at = 0.0
    _timer: threading.Timer | None = None

    def __init__(self, job_id: str, store: Store) -> None:
        self.job_id = job_id
        self.store = store
        self.began = time.monotonic()

    def cancel(self) -> None:
        """Called by the watch when the store says the job was cancelled."""
        if self.cancelled:
            return
        self.cancelled = True
        logger.info("job %s was cancelled: stopping it", self.job_id)
        stop = self.on_cancel
        if stop is not None:
            try:
                stop()
            except Exception:  # noqa: BLE001 - the watch thread must go on
                logger.exception("job %s: could not stop the cancelled run", self.job_id)

    def cancelled_error(self) -> JobCancelledError:
        return JobCancelledError(f"job {self.job_id} was cancelled while it ran")

    # -- progress ------------------------------------------------------------------------

    def progress(self, fraction: float, message: str) -> None:
        if not self.store.capabilities.progress:
            raise NotSupportedError(f"the {self.store.name} driver does not support job "
                                    "progress")
        value = Progress(fraction, message, time.time())
        if self._lock is None:
            self._lock = threading.Lock()
        with self._lock:
            self._pending = value
            wait = self._written_at + PROGRESS_EVERY - time.monotonic()
            if wait > 0:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self._flush_later)
                    self._timer.daemon = True
                    self._timer.start()
                return
            self._write()

    def _flush_later(self) -> None:
        lock = self._lock
        assert lock is not None
        with lock:
            self._timer = None
            self._write()

    def _write(self) -> None:
        """Store the pending value (call with the lock held). A failing write is logged:
        progress is a hint, never a reason to fail the job."""
        value, self._pending = self._pending, None
        if value is None:
            return
        self._written_at = time.monotonic()
        try:
            self.store.set_progress(self.job_id, value)
        except Exception as exc:  # noqa: BLE001 - see above
            logger.warning("job %s: cannot store its progress: %s", self.job_id, exc)

    def finish(self) -> None:
        """The run ended: write a value still held back, before the outcome is."""
        lock = self._lock
        if lock is None:
            return  # no progress was reported: the common case costs nothing
        with lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._write()


_runs: dict[int, RunControl] = {}
"""The runs of this process in hand, by ``id(job)``: ``Job.cancelled`` and
``Job.progress`` find their run here. Changed by the runners' threads with single dict
operations, read by the watch with ``dict.copy`` (one step for the interpreter)."""


def begin(job: object, job_id: str, store: Store) -> RunControl:
    control = RunControl(job_id, store)
    _runs[id(job)] = control
    return control


def end(job: object, control: RunControl) -> None:
    """Forget the run and write its last progress (before its outcome is stored)."""
    _runs.pop(id(job), None)  # one job object is never in two runs at once
    if control._lock is not None:
        control.finish()


def of(job: object) -> RunControl | None:
    return _runs.get(id(job))


def forget_all() -> None:
    """In a child just forked: the parent's runs are not this process's."""
    _runs.clear()


class CancelWatch:
    """The thread that looks up the cancel marks of the runs in hand: of one store, or of
    every store (``store=None``, the process's watch)."""

    def __init__(self, store: Store | None = None, every: float = POLL_EVERY,
                 after: float = POLL_AFTER) -> None:
        self.store = store
        self.every = every
        self.after = after
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing: set[int] = set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="queue-core cancel watch",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.tick()

    def tick(self) -> int:
        """One look (a call per store with runs due); the number of runs found cancelled."""
        now = time.monotonic()
        by_store: dict[int, list[RunControl]] = {}
        for control in _runs.copy().values():
            if (not control.cancelled and now - control.began >= self.after
                    and control.store.capabilities.cancel
                    and (self.store is None or control.store is self.store)):
                by_store.setdefault(id(control.store), []).append(control)
        return sum(self._look(due) for due in by_store.values())

    def _look(self, due: list[RunControl]) -> int:
        store = due[0].store
        try:
            found = store.cancel_requested([c.job_id for c in due])
        except Exception as exc:  # noqa: BLE001 - the next look tries again
            if id(store) not in self._failing:
                self._failing.add(id(store))
                logger.warning("cannot look up cancelled jobs in %s: %s", store.describe(),
                               exc)
            return 0
        if id(store) in self._failing:
            self._failing.discard(id(store))
            logger.warning("cancelled jobs can be looked up in %s again", store.describe())
        count = 0
        for control in due:
            if control.job_id in found:
                control.cancel()
                count += 1
        return count


_watch: tuple[int, CancelWatch] | None = None
_watch_lock = threading.Lock()


def watch_runs() -> None:
    """Start the process's watch, once (a worker calls it as it starts). One thread for
    every worker and store of the process, for its life: it wakes every ``POLL_EVERY``
    seconds and asks a store only about runs that went on for ``POLL_AFTER``."""
    global _watch
    pid = os.getpid()
    if _watch is not None and _watch[0] == pid:
        return
    with _watch_lock:
        if _watch is None or _watch[0] != pid:  # a forked child has no thread of its own
            made = CancelWatch()
            made.start()
            _watch = (pid, made)
