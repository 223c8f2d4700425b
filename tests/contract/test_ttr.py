"""ttr as a lease (a lost run comes back and counts) and as a time limit."""

from __future__ import annotations

import time

import pytest

from queue_core import ExecEvent, JobStatus, Queue
from tests.support.jobs import AsyncStubborn, Record, Sleep, Stubborn, read_lines
from tests.support.run import run_until


@pytest.mark.needs("ttr_lease", "retry")
def test_a_job_whose_worker_vanished_comes_back_after_its_lease(make_queue,
                                                                 journal: str) -> None:
    queue = make_queue(attempts=3)
    errors: list[ExecEvent] = []
    done: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_ERROR, errors.append)
    queue.on(Queue.EVENT_AFTER_EXEC, done.append)
    job_id = queue.push(Record(journal, "a"), ttr=1)
    lost = queue.consume().next(0)  # a worker takes the job, then dies without a word
    assert lost is not None and lost.attempt == 1
    reserved = time.monotonic()
    if queue.capabilities.status:
        assert queue.status(job_id) is JobStatus.RESERVED
    by_connection = queue.capabilities.lease_by_connection
    if by_connection:
        # Its connection closes with its process, and the server takes the job back. (A
        # beanstalkd 1.12 connection left open and silent may keep a reserved job past its
        # ttr: a server bug, see docs/drivers/beanstalk.md.)
        assert lost.owner is not None
        lost.owner.consumer.close()
    else:
        assert queue.run() == 0
    run_until(queue, lambda: done, timeout=15)
    waited = time.monotonic() - reserved
    if not by_connection:
        assert waited >= 1.0, waited  # not before its lease ran out
    assert read_lines(journal) == ["a"]
    assert done[0].attempt == 2
    assert [(e.attempt, type(e.error).__name__) for e in errors] == [(1, "WorkerLostError")]


@pytest.mark.needs("ttr_lease", "retry")
def test_a_lost_run_counts_against_attempts(make_queue, journal: str) -> None:
    queue = make_queue(attempts=1)
    failed: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_FAIL, failed.append)
    job_id = queue.push(Record(journal, "a"), ttr=1)
    assert queue.consume().next(0) is not None
    run_until(queue, lambda: failed, timeout=15)
    assert read_lines(journal) == []
    assert type(failed[0].error).__name__ == "WorkerLostError"
    if queue.capabilities.status:
        info = queue.get(job_id)
        assert info.status is JobStatus.FAILED
        assert info.error.type == "queue_core.errors.WorkerLostError"


@pytest.mark.needs("!runs_at_push")
def test_a_run_past_its_ttr_is_interrupted(queue: Queue, journal: str) -> None:
    failed: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_FAIL, failed.append)
    job_id = queue.push(Sleep(journal, "s", 30), ttr=1)
    took = run_until(queue, lambda: failed, timeout=10)
    assert took < 3, took
    assert read_lines(journal) == ["start s"]
    assert type(failed[0].error).__name__ == "JobTimeoutError"
    assert "ttr of 1s" in str(failed[0].error)
    if queue.capabilities.status:
        assert queue.get(job_id).error.type == "queue_core.errors.JobTimeoutError"


@pytest.mark.needs("!runs_at_push")
def test_a_job_that_swallows_the_interrupt_still_times_out(queue: Queue, journal: str,
                                                          worker_mode: str) -> None:
    failed: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_FAIL, failed.append)
    # It swallows the interrupt and returns at 0.8 s: past its ttr, inside its lease. On the
    # event loop the interrupt is the task's cancellation.
    on_loop = worker_mode == "async8"
    queue.push((AsyncStubborn if on_loop else Stubborn)(journal, 0.8), ttr=0.5)
    run_until(queue, lambda: failed, timeout=10)
    interrupt = "CancelledError" if on_loop else "JobTimeoutError"
    assert f"swallowed {interrupt}" in read_lines(journal)
    assert type(failed[0].error).__name__ == "JobTimeoutError"


@pytest.mark.needs("retry", "!runs_at_push")
def test_a_timed_out_attempt_goes_through_the_retry_decision(make_queue,
                                                             journal: str) -> None:
    queue = make_queue(attempts=2)
    errors: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_ERROR, errors.append)
    queue.push(Sleep(journal, "s", 30), ttr=0.5)
    run_until(queue, lambda: len(errors) == 2, timeout=15)
    assert [(e.attempt, e.retry) for e in errors] == [(1, True), (2, False)]
