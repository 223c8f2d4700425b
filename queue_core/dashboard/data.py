"""What the pages show, read from a Queue defensively.

A driver that cannot count, list or report workers makes its part of the page say
"not available" rather than fail the page, and a back end that errors is reported as
such: the dashboard is most needed when something is wrong.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import NotSupportedError, QueueError
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
class WorkerRow:
    host: str
    pid: str
    jobs: list[str]
    extra: dict[str, str]


def workers(queue: Queue) -> list[WorkerRow] | None:
    """The workers the store knows of, when it has a ``workers()`` call (None: it has
    not). Records are read by attribute or key, whichever they offer."""
    call = getattr(queue, "workers", None) or getattr(queue.driver, "workers", None)
    if not callable(call):
        return None
    try:
        records = call()
    except (QueueError, NotSupportedError) as exc:
        logger.warning("dashboard: listing workers of %s: %s", queue.driver.describe(), exc)
        return None
    rows = []
    for record in records or ():
        rows.append(WorkerRow(str(_field(record, "host") or "?"),
                              str(_field(record, "pid") or "?"),
                              _job_ids(_field(record, "jobs")),
                              {key: str(_field(record, key)) for key in ("started_at", "seen_at")
                               if _field(record, key) is not None}))
    return rows


def _field(record: Any, name: str) -> Any:
    if isinstance(record, dict):
        return record.get(name)
    return getattr(record, name, None)


def _job_ids(value: Any) -> list[str]:
    if value is None or isinstance(value, (str, bytes)):
        return [] if not value else [str(value)]
    if isinstance(value, dict):
        return [str(key) for key in value]
    if isinstance(value, Sequence) or hasattr(value, "__iter__"):
        return [str(_field(item, "id") or item) if not isinstance(item, str) else item
                for item in value]
    return [str(value)]
