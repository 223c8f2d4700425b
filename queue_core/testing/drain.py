"""``drain(queue)``: run every job that is ready, retries included, and tell what ran.

A test should not wait out a backoff of minutes. ``backoff="skip"`` runs a retry at once
(the delay the queue chose is recorded, not waited); ``"travel"`` moves the memory
driver's clock forward to each delayed job instead, so jobs pushed with a delay run too;
``"real"`` waits for real, up to ``timeout``. The runs are observed through the queue's
own events (after_exec, after_error, after_fail), attached for the drain only and last,
so the application's handlers have had their say when a run is recorded.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from queue_core import events
from queue_core.errors import InvalidArgumentError, NotSupportedError, QueueError
from queue_core.events import ExecEvent
from queue_core.job import Job
from queue_core.model import JobStatus
from queue_core.queue import Queue

BackoffMode = Literal["skip", "travel", "real"]
BACKOFF_MODES = ("skip", "travel", "real")
REAL_POLL = 0.05
"""Seconds between looks at the delayed jobs while ``backoff="real"`` waits for them."""
LISTED = 10_000
"""Most delayed jobs read back to find the next one due (a test holds far fewer)."""


class DrainError(QueueError, AssertionError):
    """drain could not finish: a job keeps coming back, or delayed jobs outlast the wait.
    An AssertionError, so that pytest reports it as the test's failure."""


@dataclass
class Run:
    """One attempt drain saw end (or a job failed without one: an undecodable payload)."""

    id: str
    job: Job | None
    """The job as the worker decoded it; None when its payload could not be decoded."""
    attempt: int
    outcome: Literal["done", "retried", "failed"]
    error: BaseException | None = None
    delay: float = 0.0
    """For a retry: the seconds the queue chose to wait before it (``backoff="skip"`` does
    not wait them)."""
    result: Any = None
    lost: bool = False
    """The attempt ended because its worker was lost (ExecEvent.lost)."""

    def __str__(self) -> str:
        name = type(self.job).__qualname__ if self.job is not None else "undecodable job"
        text = f"job {self.id} {name} attempt {self.attempt}: {self.outcome}"
        if self.error is not None:
            text += f" ({type(self.error).__name__}: {self.error})"
        if self.outcome == "retried" and self.delay:
            text += f", retry after {self.delay:g}s"
        return text


@dataclass
class DrainResult:
    """What a drain ran, in order, with counts by outcome."""

    runs: list[Run] = field(default_factory=list)
    delayed: int = 0
    """Jobs still delayed when the drain ended (pushed with a delay, under "skip")."""
    travelled: float = 0.0
    """Seconds ``backoff="travel"`` moved the store's clock forward."""

    def _count(self, outcome: str) -> int:
        return sum(1 for run in self.runs if run.outcome == outcome)

    @property
    def done(self) -> int:
        return self._count("done")

    @property
    def retried(self) -> int:
        return self._count("retried")

    @property
    def failed(self) -> int:
        return self._count("failed")

    def of(self, what: str | type[Job]) -> list[Run]:
        """The runs of one job (its id) or of one job type."""
        if isinstance(what, str):
            return [run for run in self.runs if run.id == what]
        return [run for run in self.runs if isinstance(run.job, what)]

    @property
    def errors(self) -> list[BaseException]:
        return [run.error for run in self.runs if run.error is not None]

    def __str__(self) -> str:
        head = (f"{len(self.runs)} runs: {self.done} done, {self.retried} retried, "
                f"{self.failed} failed")
        if self.delayed:
            head += f", {self.delayed} still delayed"
        return "\n  ".join([head, *map(str, self.runs)])


class _Recorder:
    """The drain's event handlers: they record each run, and under "skip" zero the delay
    of a retry (being attached last, after the application's handlers decided it)."""

    def __init__(self, skip: bool) -> None:
        self.skip = skip
        self.runs: list[Run] = []

    def handlers(self) -> list[tuple[str, Any]]:
        return [(events.AFTER_EXEC, self.after_exec), (events.AFTER_ERROR, self.after_error),
                (events.AFTER_FAIL, self.after_fail)]

    def after_exec(self, event: ExecEvent) -> None:
        self.runs.append(Run(event.id, event.job, event.attempt, "done", result=event.result))

    def after_error(self, event: ExecEvent) -> None:
        retry = bool(event.retry)
        delay = event.delay if retry and isinstance(event.delay, (int, float)) else 0.0
        if self.skip and retry and delay > 0:
            event.delay = 0.0
        self.runs.append(Run(event.id, event.job, event.attempt,
                             "retried" if retry else "failed", error=event.error,
                             delay=float(delay), lost=event.lost))

    def after_fail(self, event: ExecEvent) -> None:
        # after_fail follows after_error when an attempt was the last; a payload that
        # could not be decoded, or an after_error verdict the core overruled, meets only it.
        for run in reversed(self.runs):
            if run.id == event.id:
                if run.attempt == event.attempt and run.outcome != "done":
                    run.outcome, run.delay = "failed", 0.0
                    return
                break
        self.runs.append(Run(event.id, event.job, event.attempt, "failed", error=event.error))


def drain(queue: Queue, *, backoff: BackoffMode = "skip", max_runs: int = 100,
          timeout: float = 10.0, **worker_options: Any) -> DrainResult:
    """Run what is ready on ``queue`` in this thread, again and again, until nothing is:
    retries and jobs pushed by the jobs themselves included.

    ``backoff``: ``"skip"`` runs retries at once (jobs pushed with a delay stay delayed,
    counted in ``delayed``); ``"travel"`` (memory driver) moves the store's clock to each
    delayed job, retries and delayed pushes alike; ``"real"`` waits for them, at most
    ``timeout`` seconds. Raises DrainError after ``max_runs`` runs while jobs are still
    ready (a job that retries forever), or when "real" runs out of time. ``worker_options``
    go to the worker (``queue.run``); ttr is enforced as a worker does, with SIGALRM in the
    main thread (``enforce_ttr=False`` turns that off)."""
    __tracebackhide__ = True  # pytest shows the test's line, not drain's
    if backoff not in BACKOFF_MODES:
        raise InvalidArgumentError(f"drain(backoff=) is one of {', '.join(BACKOFF_MODES)}, "
                                   f"got {backoff!r}")
    if isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1:
        raise InvalidArgumentError(f"drain(max_runs=) must be a whole number >= 1, "
                                   f"got {max_runs!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (
            0 <= timeout < math.inf):
        raise InvalidArgumentError(f"drain(timeout=) must be seconds >= 0, got {timeout!r}")
    advance = getattr(queue.driver, "advance", None)
    if backoff == "travel" and advance is None:
        raise NotSupportedError(
            f"drain(backoff='travel') moves the memory driver's clock; the "
            f"{queue.driver.name} driver has none: use backoff='skip' or 'real'")
    worker_options.setdefault("handle_signals", False)  # Ctrl-C stops the test run
    recorder = _Recorder(skip=backoff == "skip")
    result = DrainResult(recorder.runs)
    for name, handler in recorder.handlers():
        queue.on(name, handler)
    try:
        _loop(queue, backoff, max_runs, timeout, worker_options, result)
    finally:
        for name, handler in recorder.handlers():
            queue.off(name, handler)
    return result


def _loop(queue: Queue, backoff: str, max_runs: int, timeout: float,
          worker_options: dict[str, Any], result: DrainResult) -> None:
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    processed = rounds = 0
    while True:
        # A round runs jobs or moves the clock; one that did neither (a rate limit holding
        # back ready jobs) still counts, so the rounds are bounded even then. The waits
        # of "real" are bounded by the timeout.
        rounds += 1
        if rounds > 2 * max_runs + 2:
            raise DrainError(f"drain went round {rounds - 1} times without finishing"
                             f"\n  {result}")
        processed += queue.run(max_jobs=max_runs - processed, **worker_options)
        if processed >= max_runs:
            if _ready(queue) or (backoff != "skip" and _delayed(queue)):
                raise DrainError(_runaway(result, max_runs))
            result.delayed = len(_delayed(queue))
            return
        delayed = _delayed(queue)
        if not delayed or backoff == "skip":
            result.delayed = len(delayed)
            return
        if backoff == "travel":
            step = max(0.0, min(delayed) - queue.driver.now())  # type: ignore[attr-defined]
            queue.driver.advance(step)  # type: ignore[attr-defined]
            result.travelled += step
            continue
        while _delayed(queue) and not _ready(queue):
            if time.monotonic() >= deadline:
                raise DrainError(f"drain(backoff='real') waited {timeout:g}s and "
                                 f"{len(_delayed(queue))} jobs are still delayed; pass a "
                                 f"longer timeout, or backoff='skip'\n  {result}")
            time.sleep(REAL_POLL)


def _ready(queue: Queue) -> bool:
    """Whether a job is still waiting to run (the worker stopped at max_runs)."""
    if queue.capabilities.info:
        return queue.info().get(JobStatus.WAITING, 0) > 0
    return True  # cannot tell: treat as a runaway, which max_runs bounds anyway


def _delayed(queue: Queue) -> list[float]:
    """When each delayed job is due (store time); empty where the driver cannot tell."""
    if JobStatus.DELAYED in queue.capabilities.listing:
        return [info.ready_at if info.ready_at is not None else 0.0
                for info in queue.driver.jobs(JobStatus.DELAYED, LISTED)]
    if queue.capabilities.info:
        return [0.0] * queue.info().get(JobStatus.DELAYED, 0)
    return []


def _runaway(result: DrainResult, max_runs: int) -> str:
    counts = Counter(run.id for run in result.runs)
    lines = []
    for job_id, runs in counts.most_common(3):
        last = next(run for run in reversed(result.runs) if run.id == job_id)
        lines.append(f"job {job_id} ran {runs} times; last: {last}")
    return (f"drain stopped after {max_runs} runs (max_runs) and jobs keep coming back: "
            + "; ".join(lines) + ". A job that retries forever? Give it a limit (attempts, "
            "can_retry) or pass drain a larger max_runs.")
