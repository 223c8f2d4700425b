"""A worker's heartbeat: a small thread that writes the worker's record to the store every
period, and the rule that decides whether the worker is healthy enough to beat.

The thread, not the worker's main loop, writes the beats, so that a long job in the main
thread does not stop them. But a thread that beat whatever happened would hide a hung
worker, so it beats only while the worker is healthy: its main loop made progress lately,
or one of its running jobs is still within its ttr plus a grace (past that, the job should
have been interrupted: the worker is stuck in native code or deadlocked). A worker that
stops beating is replaced by its supervisor (supervisor.py); one stopped with SIGSTOP
stops beating by itself.

The thread only ever uses the Store (thread-safe), never the worker's consumer, which
belongs to the main thread. The worker tells it what it does through ``Activity``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from . import bounds
from .beats import new_worker_id
from .errors import InvalidArgumentError
from .host import memory_mb
from .inflight import STUCK_GRACE
from .model import Message, RunningJob, WorkerInfo

if TYPE_CHECKING:
    from .store import Store

logger = logging.getLogger(__name__)

DEFAULT_PERIOD = 5.0
STALL_MIN = 30.0
"""Seconds without progress of the main loop, and no job within its ttr, after which a
worker counts as hung (at least three periods): a wait on the back end is at most a
second or so, and a reconnecting worker marks progress between attempts."""
HUNG_GRACE = STUCK_GRACE
"""Seconds past its ttr that a running job still counts as legitimately running: by then
the worker should have interrupted it (the same grace the dispatcher gives a stuck run)."""


def healthy(now: float, progress_at: float, running: Iterable[tuple[float, float]],
            stall: float, grace: float) -> bool:
    """The health rule: the main loop made progress within ``stall`` seconds, or a running
    job (its start on the monotonic clock, its ttr) is still within its ttr + ``grace``."""
    if now - progress_at <= stall:
        return True
    return any(now - started <= ttr + grace for started, ttr in running)


def stall_after(period: float) -> float:
    return max(STALL_MIN, 3 * period)


class Activity:
    """What the worker's main thread tells the heartbeat: progress and the jobs running.

    Called for every job, so it takes no lock: the main thread alone changes ``running``,
    and the heartbeat thread reads it with ``dict.copy``, one step for the interpreter
    (the GIL, or the dict's own lock on a free-threaded build)."""

    def __init__(self) -> None:
        self.progress_at = time.monotonic()
        self.running: dict[int, tuple[Message, float]] = {}

    def progress(self) -> None:
        self.progress_at = time.monotonic()

    def began(self, message: Message) -> None:
        # setdefault: a run handed from the main thread to a dispatcher keeps its start.
        self.running.setdefault(id(message), (message, message.began or time.monotonic()))

    def ended(self, message: Message) -> None:
        self.running.pop(id(message), None)

    def snapshot(self) -> tuple[float, list[tuple[Message, float]]]:
        return self.progress_at, list(self.running.copy().values())


class Heartbeat:
    """The heartbeat thread of one worker session."""

    def __init__(self, store: Store, activity: Activity, period: float,
                 counts: Callable[[], tuple[int, int]],
                 job_name: Callable[[bytes], str | None]) -> None:
        self.store = store
        self.activity = activity
        self.period = period
        self.stall = stall_after(period)
        self.grace = HUNG_GRACE
        self._counts = counts
        self._job_name = job_name
        self._names: dict[int, str] = {}
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.id = new_worker_id(self.host, self.pid)
        self.started_at = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._hung = False
        self.beats = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="queue-core heartbeat",
                                        daemon=True)
        self._thread.start()

    def stop(self, forget: bool = True) -> None:
        """End the thread; with ``forget``, delete the record (a clean exit)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.period + 5)
        self._thread = None
        if forget:
            try:
                self.store.forget_worker(self.id)
            except Exception as exc:  # noqa: BLE001 - the record expires by itself
                logger.warning("could not delete the heartbeat record %s: %s", self.id, exc)

    def _loop(self) -> None:
        while True:
            self.tick()
            if self._stop.wait(self.period):
                return

    def tick(self) -> bool:
        """One beat, when the worker is healthy; True if a record was written."""
        progress_at, running = self.activity.snapshot()
        now = time.monotonic()
        if not healthy(now, progress_at, ((started, message.ttr) for message, started in running),
                       self.stall, self.grace):
            if not self._hung:
                self._hung = True
                logger.error("the worker looks hung (no progress for %.0fs and no job within "
                             "its ttr): heartbeats stop, so that its supervisor replaces it",
                             now - progress_at)
            return False
        if self._hung:
            self._hung = False
            logger.warning("the worker makes progress again: heartbeats resume")
        try:
            self.store.beat(self.record(running, now))
        except Exception as exc:  # noqa: BLE001 - a beat that fails must not end the thread
            if not self._failing:
                self._failing = True
                logger.warning("cannot write the heartbeat to %s: %s", self.store.describe(),
                               exc)
            return False
        if self._failing:
            self._failing = False
            logger.warning("heartbeats reach %s again", self.store.describe())
        self.beats += 1
        return True

    def _name_of(self, message: Message) -> str:
        """The job's registered name: from the job when it was decoded ahead, else read
        from the payload (once per run: the names are kept from beat to beat)."""
        decoded = message.decoded
        if isinstance(decoded, tuple) and decoded:
            name = getattr(type(decoded[0]), "job_name", None)
            if isinstance(name, str):
                return name
        try:
            return self._job_name(message.payload) or "?"
        except Exception:  # noqa: BLE001 - only a label
            return "?"

    def record(self, running: list[tuple[Message, float]], now: float) -> WorkerInfo:
        wall = time.time()
        names, self._names = self._names, {}
        jobs = []
        for message, started in sorted(running, key=lambda item: item[1]):
            key = id(message)
            name = names.get(key)
            if name is None:
                name = self._name_of(message)
            self._names[key] = name
            jobs.append(RunningJob(str(message.id), name, wall - (now - started)))
        done, failed = self._counts()
        return WorkerInfo(
            id=self.id, host=self.host, pid=self.pid, channel=self.store.channel,
            started_at=self.started_at, beat_at=wall, period=self.period, jobs=tuple(jobs),
            done=done, failed=failed, memory_mb=memory_mb())


def check_period(value: object, what: str = "heartbeat") -> float:
    """Seconds between beats: 0 (no heartbeat) or from 0.1 to 3600."""
    seconds = bounds.seconds(value, what, limit=3600.0)
    if 0 < seconds < 0.1:
        raise InvalidArgumentError(f"{what} must be 0 (off) or at least 0.1 seconds, "
                                   f"got {value!r}")
    return seconds
