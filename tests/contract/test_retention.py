"""Retention: kept DONE and FAILED jobs limited by count and age, trimmed by the driver
as later jobs finish (no cron), the newest kept."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from queue_core import JobStatus, Queue
from tests.support.jobs import Boom, FailOnce, Noop

MANY = 10_000
KEEP = 1_000


def _run_all(queue: Queue) -> None:
    """Run every job pushed (the sync driver ran them inside the push)."""
    if queue.capabilities.runs_at_push:
        return
    deadline = time.monotonic() + 300
    while queue.run():
        assert time.monotonic() < deadline, "the worker never ran out of jobs"


def _kept(queue: Queue, status: JobStatus, limit: int) -> set[str]:
    return {info.id for info in queue.jobs(status, limit)}


def _pushed(queue: Queue, jobs: list[Any]) -> list[str]:
    ids = queue.push_many(jobs)
    assert None not in ids
    return [str(job_id) for job_id in ids]


@pytest.mark.slow
@pytest.mark.worker_modes("c1")
@pytest.mark.needs("retention", "keep_completed", "info")
def test_max_count_keeps_the_newest_completed(make_queue, worker_mode: str) -> None:
    queue = make_queue(keep_completed={"max_count": KEEP})
    ids = _pushed(queue, [Noop() for _ in range(MANY)])
    _run_all(queue)
    assert queue.info()[JobStatus.DONE] == KEEP
    if JobStatus.DONE in queue.capabilities.listing:
        # One worker runs them in push order: the last pushed finished last.
        assert _kept(queue, JobStatus.DONE, 2 * KEEP) == set(ids[-KEEP:])


@pytest.mark.slow
@pytest.mark.worker_modes("c1")
@pytest.mark.needs("retention", "failed_store", "info")
def test_max_count_keeps_the_newest_failed(make_queue, worker_mode: str) -> None:
    queue = make_queue(keep_failed=KEEP)
    ids = _pushed(queue, [Boom(n) for n in range(MANY)])
    _run_all(queue)
    assert queue.info()[JobStatus.FAILED] == KEEP
    if JobStatus.FAILED in queue.capabilities.listing:
        assert _kept(queue, JobStatus.FAILED, 2 * KEEP) == set(ids[-KEEP:])


@pytest.mark.needs("retention", "keep_completed", "info")
def test_a_small_max_count_is_exact(make_queue, worker_mode: str) -> None:
    queue = make_queue(keep_completed=3, keep_failed={"max_count": 2})
    done = _pushed(queue, [Noop() for _ in range(150)])
    failed = _pushed(queue, [Boom(n) for n in range(40)])
    _run_all(queue)
    counts = queue.info()
    assert (counts[JobStatus.DONE], counts[JobStatus.FAILED]) == (3, 2)
    # Several jobs at once finish in any order; one at a time, in push order.
    if worker_mode == "c1" and {JobStatus.DONE, JobStatus.FAILED} <= queue.capabilities.listing:
        assert _kept(queue, JobStatus.DONE, 100) == set(done[-3:])
        assert _kept(queue, JobStatus.FAILED, 100) == set(failed[-2:])


MAX_AGE = 1.5


@pytest.mark.needs("retention", "keep_completed", "info")
def test_max_age_drops_jobs_that_finished_too_long_ago(make_queue, worker_mode: str) -> None:
    queue = make_queue(keep_completed={"max_age": MAX_AGE},
                       keep_failed={"max_age": MAX_AGE, "max_count": 100})
    began = time.monotonic()
    _pushed(queue, [Noop() for _ in range(5)] + [Boom(n) for n in range(4)])
    _run_all(queue)
    counts = queue.info()
    if time.monotonic() - began < MAX_AGE:  # (a machine this slow may have trimmed some)
        assert (counts[JobStatus.DONE], counts[JobStatus.FAILED]) == (5, 4)
    time.sleep(MAX_AGE + 0.3)
    # The next jobs to finish trim the ones kept longer than max_age.
    fresh = _pushed(queue, [Noop(), Noop(), Boom(99)])
    _run_all(queue)
    counts = queue.info()
    assert (counts[JobStatus.DONE], counts[JobStatus.FAILED]) == (2, 1)
    if {JobStatus.DONE, JobStatus.FAILED} <= queue.capabilities.listing:
        assert _kept(queue, JobStatus.DONE, 100) == set(fresh[:2])
        assert _kept(queue, JobStatus.FAILED, 100) == set(fresh[2:])


# keep_failed alone: also the drivers that keep failed jobs and no completed ones
# (beanstalk's buried jobs, amqp's failed queue).

@pytest.mark.needs("retention", "failed_store", "info")
def test_a_small_max_count_of_failed_jobs_is_exact(make_queue, worker_mode: str) -> None:
    queue = make_queue(keep_failed={"max_count": 3})
    failed = _pushed(queue, [Boom(n) for n in range(50)])
    _run_all(queue)
    assert queue.info()[JobStatus.FAILED] == 3
    if worker_mode == "c1" and JobStatus.FAILED in queue.capabilities.listing:
        kept = queue.jobs(JobStatus.FAILED, 100)
        assert {info.id for info in kept} == set(failed[-3:])
        assert all(info.error is not None and info.error.type for info in kept)
    # Later failures trim again: the limit holds run after run.
    more = _pushed(queue, [Boom(n) for n in range(50, 60)])
    _run_all(queue)
    assert queue.info()[JobStatus.FAILED] == 3
    if worker_mode == "c1" and JobStatus.FAILED in queue.capabilities.listing:
        assert _kept(queue, JobStatus.FAILED, 100) == set(more[-3:])


@pytest.mark.needs("retention", "failed_store", "info")
def test_max_age_drops_failed_jobs_that_failed_too_long_ago(make_queue,
                                                           worker_mode: str) -> None:
    queue = make_queue(keep_failed={"max_age": MAX_AGE})
    began = time.monotonic()
    _pushed(queue, [Boom(n) for n in range(4)])
    _run_all(queue)
    if time.monotonic() - began < MAX_AGE:  # (a machine this slow may have trimmed some)
        assert queue.info()[JobStatus.FAILED] == 4
    time.sleep(MAX_AGE + 0.3)
    fresh = _pushed(queue, [Boom(98), Boom(99)])
    _run_all(queue)
    assert queue.info()[JobStatus.FAILED] == 2
    if JobStatus.FAILED in queue.capabilities.listing:
        assert _kept(queue, JobStatus.FAILED, 100) == set(fresh)


@pytest.mark.needs("retention", "failed_store", "manual_retry")
@pytest.mark.worker_modes("c1")
def test_a_failed_job_retried_is_no_longer_bound_by_max_age(make_queue, worker_mode: str,
                                                             journal: str) -> None:
    queue = make_queue(keep_failed={"max_age": MAX_AGE, "max_count": 10})
    job_id = _pushed(queue, [FailOnce(journal, "again")])[0]
    _run_all(queue)
    if queue.capabilities.info:
        assert queue.info()[JobStatus.FAILED] == 1
    queue.retry(job_id)
    # Waiting again, it outlives max_age: the age limit is on failed jobs only.
    time.sleep(MAX_AGE + 0.3)
    _run_all(queue)
    assert [line.split()[0] for line in Path(journal).read_text().splitlines()] == [
        "start", "start", "end"]
