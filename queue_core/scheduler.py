"""The scheduler: pushes the firings of the queue's ``schedules`` (schedules.py).

Run by ``queue-core scheduler`` or as a thread of ``queue-core listen --scheduler``. Any
number may run at once, on any hosts: each firing is pushed with the unique key
``schedule:<name>:<fire time, ISO, UTC>`` and a ``unique_for`` that outlasts every
moment another scheduler could push that firing, so the back end stores it once. A
driver without unique jobs refuses a scheduler at start.

Interval schedules fire at whole multiples of ``every`` since the Unix epoch, so every
scheduler computes the same fire times. A firing is pushed on time when the scheduler
finds it due within ``GRACE`` seconds; older ones, and those from before a scheduler
started, are missed firings, and ``catch_up`` says which of them are pushed.

The clock is injectable (``clock``: a callable returning an aware datetime), and so is
the wait between two looks (``wait``), for tests.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from . import unique
from .errors import ConfigError, DriverError, NotSupportedError
from .schedules import CatchUp, Schedule, resolve_job

if TYPE_CHECKING:
    from .job import Job
    from .queue import Queue

logger = logging.getLogger(__name__)

UTC = timezone.utc
GRACE = 60.0
"""Seconds after its fire time within which a firing found due counts as on time."""
MARGIN = 300.0
"""Seconds a firing's unique key outlives the last moment a scheduler could push it
(clocks of several hosts disagree a little, and the back end keeps its own)."""
LONGEST_WAIT = 1.0
"""The longest a scheduler waits between two looks (a schedule's next firing is often
sooner)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    """Pushes the firings of ``queue.schedules`` until ``stop()``."""

    def __init__(self, queue: Queue, *, clock: Callable[[], datetime] = utc_now,
                 wait: Callable[[threading.Event, float], object] | None = None) -> None:
        if not queue.schedules:
            raise ConfigError("the queue has no schedules to run (settings: schedules)",
                              key="schedules")
        if not queue.capabilities.unique:
            raise NotSupportedError(
                f"the {queue.driver.name} driver does not support schedulers: they "
                "deduplicate each firing with a unique job, which it does not support")
        self.queue = queue
        self.catch_up: CatchUp = queue.catch_up
        self.clock = clock
        self._wait = wait or (lambda event, seconds: event.wait(seconds))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.jobs: dict[str, type[Job]] = {}
        queue.import_job_modules()  # registered job names come from them
        for index, schedule in enumerate(queue.schedules):
            where = f"schedules[{index}]"
            cls = resolve_job(schedule, where)
            try:
                cls(**copy.deepcopy(dict(schedule.args)))
            except Exception as exc:
                raise ConfigError(f"{where}.args: {cls.__qualname__}(**args) fails: "
                                  f"{type(exc).__name__}: {exc}", key=f"{where}.args") from exc
            self.jobs[schedule.name] = cls
        self.started = self._now()
        self.last: dict[str, datetime] = {s.name: self._start_point(s)
                                          for s in queue.schedules}
        """Per schedule, the newest fire time handled (pushed, or missed and dropped)."""
        self.pushed = 0

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ConfigError("the scheduler's clock must give aware datetimes")
        return now.astimezone(UTC)

    def _start_point(self, schedule: Schedule) -> datetime:
        """Firings after this one are due: the start, or before the missed firings that
        ``catch_up`` pushes."""
        if not self.catch_up.count:
            return self.started
        oldest = None
        for index, fire in enumerate(schedule.before(self.started), 1):
            oldest = fire
            if index >= self.catch_up.count:
                break
        if oldest is None:
            return self.started
        return oldest - timedelta(microseconds=1)

    # -- the loop ----------------------------------------------------------------------

    def tick(self) -> float:
        """Push every firing due now; the seconds until the next one."""
        now = self._now()
        soonest = LONGEST_WAIT
        for schedule in self.queue.schedules:
            self._tick_one(schedule, now)
            upcoming = next(schedule.after(max(now, self.last[schedule.name])))
            soonest = min(soonest, (upcoming - now).total_seconds())
        return max(soonest, 0.0)

    def _tick_one(self, schedule: Schedule, now: datetime) -> None:
        last = self.last[schedule.name]
        # Firings at or before the boundary are missed ones: from before this scheduler
        # started, or found due more than GRACE late (the process stalled, the host slept).
        boundary = max(self.started, now - timedelta(seconds=GRACE))
        first = next(schedule.after(last))
        if first > now:
            return  # the common look: nothing due
        kept: list[datetime] = []
        dropped = False
        if first <= boundary:
            for fire in schedule.before(boundary):
                if fire <= last:
                    break
                if len(kept) >= self.catch_up.count:
                    dropped = True
                    break
                kept.append(fire)
            kept.reverse()
        if dropped:
            logger.info("schedule %s: firings missed before %s; catch_up %s pushes %d",
                        schedule.name, boundary.isoformat(), self.catch_up, len(kept))
        for fire in schedule.after(max(last, boundary)):
            if fire > now:
                break
            kept.append(fire)
        for fire in kept:
            try:
                self._push(schedule, fire, now)
            except DriverError as exc:
                logger.warning("schedule %s: cannot push the firing of %s (%s); trying "
                               "again", schedule.name, fire.isoformat(), exc)
                # What came before it is handled; it and the rest come again next look.
                self.last[schedule.name] = fire - timedelta(microseconds=1)
                return
        self.last[schedule.name] = max(last, boundary, *kept)

    def _push(self, schedule: Schedule, fire: datetime, now: datetime) -> None:
        # The key must outlive every moment a scheduler may still push this firing: on
        # time, within GRACE; at a start, while it is one of the catch_up newest.
        until = max(fire + timedelta(seconds=GRACE),
                    schedule.nth_after(fire, self.catch_up.count))
        window = (until - now).total_seconds() + MARGIN
        window = min(max(window, 1.0), unique.MAX_FOR)
        key = f"schedule:{schedule.name}:{fire.isoformat()}"
        job = self.jobs[schedule.name](**copy.deepcopy(dict(schedule.args)))
        job_id = self.queue.push(job, unique_key=key, unique_for=window)
        self.pushed += 1
        logger.info("schedule %s: firing of %s pushed as job %s", schedule.name,
                    fire.isoformat(), job_id, extra=self.queue.log_extra(str(job_id), job))

    def run(self) -> None:
        """Look, push, wait; until ``stop()``. A back end that fails is retried."""
        logger.info("scheduler started: %d schedule(s), catch_up %s",
                    len(self.queue.schedules), self.catch_up)
        while not self._stop.is_set():
            try:
                pause = self.tick()
            except DriverError as exc:
                logger.warning("scheduler: %s; looking again in a second", exc)
                pause = LONGEST_WAIT
            except Exception:
                # A bug must not end the schedules silently: logged, and the loop goes on.
                logger.exception("scheduler: a look failed; looking again in a second")
                pause = LONGEST_WAIT
            self._wait(self._stop, min(max(pause, 0.005), LONGEST_WAIT))
        logger.info("scheduler stopped after pushing %d firing(s)", self.pushed)

    def start(self) -> threading.Thread:
        """Run in a daemon thread (``listen --scheduler``)."""
        self._thread = threading.Thread(target=self.run, name="queue-core-scheduler",
                                        daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)


def run_scheduler(queue: Queue, stop: threading.Event | None = None, **options: Any) -> int:
    """``queue-core scheduler``: run in this thread until ``stop`` is set."""
    scheduler = Scheduler(queue, **options)
    if stop is not None:
        scheduler._stop = stop
    scheduler.run()
    return 0
