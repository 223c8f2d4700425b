"""Runs in flight beside the worker's main thread, and the ttr watch over them.

A ``Run`` is one job handed to a pool thread (job_threads.py) or to the event loop
(job_loop.py); the runner fills in its outcome and hands it back through ``Finished``,
which the worker's main thread drains. ``TtrWatch`` is the one thread that keeps ttr a
real limit for every run in flight: at a run's ttr it interrupts it (an exception raised in
its thread, or its task cancelled), again every second while it goes on, and after
``STUCK_GRACE`` seconds more it gives the run up: its slot is freed and its lease brings
the job back.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .model import ErrorInfo, Message

if TYPE_CHECKING:
    from .control import RunControl
    from .events import ExecEvent
    from .job import Job
    from .queue import Queue

STUCK_GRACE = 5.0
"""Seconds past its ttr that a run which ignores the interrupt (blocked in C code, or a
coroutine that blocks the loop or will not be cancelled) keeps its slot."""
REPEAT = 1.0
"""Seconds between two interrupts of a run that swallowed the first."""


@dataclass(eq=False)
class Run:
    """One job in flight and, once it ended, how."""

    message: Message
    job: Job
    meta: dict[str, Any]
    event: ExecEvent | None
    ttr: float
    started: float = 0.0
    result: Any = None
    error: BaseException | None = None
    info: ErrorInfo | None = None
    """The error as an isolated child reported it (its traceback), if it ran in one."""
    expired: bool = False
    """The watch interrupted it at its ttr: whatever it ended with, it ran too long."""
    stopped: bool = False
    """Interrupted because the worker was told to stop at once (a second stop signal)."""
    abandoned: bool = False
    """Given up past its ttr + STUCK_GRACE: never settled here, its lease brings it back."""
    interrupt: Callable[[Run], None] | None = field(default=None, repr=False)
    """How the watch interrupts it (set by its runner)."""
    deadline: float = 0.0
    thread_id: int = 0
    control: RunControl | None = field(default=None, repr=False)
    """The run's cancel flag and progress writes (control.py), set by its runner."""
    """The thread running it (a pool thread, or the event loop's)."""

    def log_extra(self, queue: Queue) -> dict[str, Any]:
        """``extra`` for a log record about this run (logfields.py)."""
        return queue.log_extra(self.message.id, self.job, self.message.attempt)


class Finished:
    """Runs that ended (or were given up), waiting for the main thread to settle them.

    Not a ``queue.SimpleQueue``: on Python 3.11 its ``get(timeout=...)`` blocks for good
    when a signal handler (a stop signal) runs past the timeout, and the worker would never
    act on the signal. A lock's timed wait does not have that fault."""

    def __init__(self) -> None:
        self._ended: deque[Run] = deque()
        self._wake = threading.Event()

    def put(self, run: Run) -> None:
        self._ended.append(run)
        # The flag already set means the taker has not cleared it since, and it looks at
        # the runs again after clearing it: no need to pay for set() on every run.
        if not self._wake.is_set():
            self._wake.set()

    def take(self, timeout: float | None) -> list[Run]:
        """The runs ended so far; waits up to ``timeout`` seconds (None: not at all) for
        the first."""
        ended = self._drain()
        if ended or timeout is None:
            return ended
        self._wake.clear()
        ended = self._drain()  # put between the drain and the clear: its flag is gone
        if not ended:
            self._wake.wait(timeout)
            ended = self._drain()
        return ended

    def _drain(self) -> list[Run]:
        ended = self._ended
        return [ended.popleft() for _ in range(len(ended))]


class TtrWatch:
    """The thread that interrupts runs at their ttr and gives up those stuck past it."""

    def __init__(self, on_stuck: Callable[[Run], None]) -> None:
        self._on_stuck = on_stuck
        self.lock = threading.Lock()
        """Held by a runner while it marks a run begun or ended: an interrupt is only ever
        sent to a run the runner still has in hand."""
        self._runs: set[Run] = set()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._next = 0.0
        """When the watch thread wakes next (infinity: not until woken)."""

    def watch(self, run: Run) -> None:
        """Start the clock of ``run`` (call with ``lock`` held)."""
        run.started = time.monotonic()
        run.deadline = run.started + run.ttr
        self._runs.add(run)
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="queue-core ttr watch",
                                            daemon=True)
            self._thread.start()
        if run.deadline < self._next:
            self._wake.set()  # it sleeps until a later deadline: wake it to wait for this one

    def watching(self, run: Run) -> bool:
        """Whether ``run`` is still in hand (call with ``lock`` held)."""
        return run in self._runs

    def forget(self, run: Run) -> bool:
        """Stop watching ``run`` (call with ``lock`` held); False if it was given up."""
        if run in self._runs:
            self._runs.discard(run)
            return True
        return False

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.clear()
            stuck: list[Run] = []
            now = time.monotonic()
            with self.lock:
                for run in list(self._runs):
                    if now >= run.started + run.ttr + STUCK_GRACE:
                        self._runs.discard(run)
                        run.abandoned = True
                        stuck.append(run)
                    elif now >= run.deadline:
                        run.expired = True
                        run.deadline = now + REPEAT
                        if run.interrupt is not None:
                            run.interrupt(run)
                soonest = min((r.deadline for r in self._runs), default=None)
                self._next = math.inf if soonest is None else soonest
            for run in stuck:
                self._on_stuck(run)
            self._wake.wait(None if soonest is None else max(0.0, soonest - time.monotonic()))
