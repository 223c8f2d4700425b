"""What the pages show, read from a Queue defensively.

A driver that cannot count, list or report workers makes its part of the page say
"not available" rather than fail the page, and a back end that errors is reported as
such: the dashboard is most needed when something is wrong.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..errors import QueueError
from ..model import JobInfo, JobStatus
from ..queue import Queue

logger = logging.getLogger(__name__)

CHART_MINUTES = 60
CHART_SCAN = 1000
"""Kept jobs read per status for the chart; beyond that the chart is a lower bound."""


@dataclass
class Throughput:
    """Jobs finished per minute over the last hour, oldest minute first."""

    done: list[int]
    failed: list[int]
    source: str
    """Where the numbers come from, shown under the chart."""
    capped: bool = False


@dataclass
class Unavailable:
    reason: str


def counts(queue: Queue) -> dict[JobStatus, int] | Unavailable:
    if not queue.capabilities.info:
        return Unavailable(f"the {queue.driver.name} driver cannot count jobs")
    try:
        return queue.info()
    except QueueError as exc:
        logger.warning("dashboard: counting jobs of %s: %s", queue.driver.describe(), exc)
        return Unavailable(f"{type(exc).__name__}: {exc}")


def oldest_waiting(queue: Queue) -> float | None | Unavailable:
    """Seconds the waiting job pushed first has waited (None: no job waits)."""
    if not queue.capabilities.waiting_age:
        return Unavailable(f"the {queue.driver.name} driver cannot tell")
    try:
        return queue.oldest_waiting_age()
    except QueueError as exc:
        logger.warning("dashboard: the oldest waiting job of %s: %s", queue.driver.describe(),
                       exc)
        return Unavailable(f"{type(exc).__name__}: {exc}")


def listable(queue: Queue, status: JobStatus) -> bool:
    return status in queue.capabilities.listing


def jobs(queue: Queue, status: JobStatus, limit: int) -> list[JobInfo] | Unavailable:
    if not listable(queue, status):
        return Unavailable(f"the {queue.driver.name} driver cannot list {status} jobs")
    try:
        return queue.jobs(status, limit)
    except QueueError as exc:
        logger.warning("dashboard: listing %s jobs of %s: %s", status,
                       queue.driver.describe(), exc)
        return Unavailable(f"{type(exc).__name__}: {exc}")


def throughput(queue: Queue, now: float | None = None) -> Throughput | Unavailable:
    """Per-minute finishes from the finish times of the jobs the store keeps.

    Honest about its source: completed jobs count only when the queue keeps them
    (keep_completed), failed ones when it keeps those; removed or cleared jobs are gone
    from the chart too."""
    now = time.time() if now is None else now
    start = now - CHART_MINUTES * 60
    kept = [(status, flag) for status, flag in ((JobStatus.DONE, queue.keep_completed),
                                                (JobStatus.FAILED, queue.keep_failed))
            if flag and listable(queue, status)]
    if not kept:
        return Unavailable("not available: this queue keeps no finished jobs that its "
                           f"{queue.driver.name} driver can list (keep_completed / "
                           "keep_failed)")
    series = {JobStatus.DONE: [0] * CHART_MINUTES, JobStatus.FAILED: [0] * CHART_MINUTES}
    capped = False
    for status, _ in kept:
        try:
            found = queue.jobs(status, CHART_SCAN)
        except QueueError as exc:
            return Unavailable(f"not available: {type(exc).__name__}: {exc}")
        capped = capped or len(found) >= CHART_SCAN
        for info in found:
            finished = info.finished_at
            if isinstance(finished, (int, float)) and start <= finished <= now:
                series[status][min(int((finished - start) // 60), CHART_MINUTES - 1)] += 1
    what = " and ".join("completed" if status is JobStatus.DONE else "failed"
                        for status, _ in kept)
    source = f"finish times of the {what} jobs the store keeps"
    if not queue.keep_completed:
        source += " (completed jobs are not kept: keep_completed is off)"
    if capped:
        source += f"; only {CHART_SCAN} per status were read, so the bars are a lower bound"
    return Throughput(series[JobStatus.DONE], series[JobStatus.FAILED], source, capped)


@dataclass
class RunningRow:
    id: str
    name: str
    seconds: float


@dataclass
class WorkerRow:
    host: str
    pid: int
    state: str
    """"live", or "stopped beating" (hung, frozen or gone)."""
    last_beat: float
    """Seconds since its last beat."""
    jobs: list[RunningRow]
    done: int
    failed: int
    memory_mb: float | None


def workers(queue: Queue, now: float | None = None) -> list[WorkerRow] | None:
    """The workers of ``queue`` from their heartbeats (None: its driver stores none)."""
    if not queue.capabilities.heartbeats:
        return None
    try:
        records = queue.workers()
    except QueueError as exc:
        logger.warning("dashboard: listing workers of %s: %s", queue.driver.describe(), exc)
        return None
    now = time.time() if now is None else now
    return [WorkerRow(record.host, record.pid,
                      "stopped beating" if record.stopped_beating(now) else "live",
                      record.age(now),
                      [RunningRow(job.id, job.name, max(0.0, now - job.started_at))
                       for job in record.jobs],
                      record.done, record.failed, record.memory_mb)
            for record in records]
