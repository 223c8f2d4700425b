"""Retry counts, limits and backoff: drivers that declare retry."""

from __future__ import annotations

import time

import pytest

from queue_core import Backoff, ExecEvent, JobStatus, Queue
from tests.support.jobs import Fail, FailWithBackoff, Retryable, count, read_lines
from tests.support.run import run_until

pytestmark = pytest.mark.needs("retry")


def _final(queue: Queue, job_id: str | None, expected: JobStatus) -> None:
    if queue.capabilities.status and job_id is not None:
        assert queue.status(job_id) is expected


def test_attempts_is_the_total_number_of_runs(make_queue, journal: str) -> None:
    queue = make_queue(attempts=3)
    failures: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_FAIL, failures.append)
    job_id = queue.push(Fail(journal, "f"))
    run_until(queue, lambda: failures)
    assert count(journal, "f") == 3
    assert [e.attempt for e in failures] == [3]
    _final(queue, job_id, JobStatus.FAILED)
    if queue.capabilities.status:
        assert queue.get(job_id).attempt == 3


def test_a_job_that_recovers_before_the_limit_is_done(make_queue, journal: str) -> None:
    queue = make_queue(attempts=3)
    done: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_EXEC, done.append)
    job_id = queue.push(Fail(journal, "f", times=2))
    run_until(queue, lambda: done)
    assert count(journal, "f") == 3
    assert done[0].attempt == 3
    _final(queue, job_id, JobStatus.DONE)


def test_after_error_sees_each_attempt_and_the_decision(make_queue, journal: str) -> None:
    queue = make_queue(attempts=3)
    seen: list[tuple[int, bool, str]] = []
    queue.on(Queue.EVENT_AFTER_ERROR, lambda e: seen.append((e.attempt, e.retry, str(e.error))))
    queue.push(Fail(journal, "f"))
    run_until(queue, lambda: len(seen) == 3)
    assert seen == [(1, True, "f failed on run 1"), (2, True, "f failed on run 2"),
                    (3, False, "f failed on run 3")]


def test_attempts_none_retries_without_limit(make_queue, journal: str) -> None:
    queue = make_queue(attempts=None)
    job_id = queue.push(Fail(journal, "f", times=6))
    run_until(queue, lambda: count(journal, "f") == 7)
    queue.run()
    _final(queue, job_id, JobStatus.DONE)


def test_push_attempts_replaces_the_queue_setting(make_queue, journal: str) -> None:
    queue = make_queue(attempts=1)
    job_id = queue.push(Fail(journal, "f"), attempts=4)
    run_until(queue, lambda: count(journal, "f") == 4)
    queue.run()
    assert count(journal, "f") == 4
    _final(queue, job_id, JobStatus.FAILED)


def test_can_retry_replaces_attempts(make_queue, journal: str) -> None:
    queue = make_queue(attempts=10)
    job_id = queue.push(Retryable(journal, "r", retry_until=2))
    run_until(queue, lambda: count(journal, "r") == 2)
    queue.run()
    assert count(journal, "r") == 2
    _final(queue, job_id, JobStatus.FAILED)


def test_after_error_has_the_last_word_on_retry(make_queue, journal: str) -> None:
    queue = make_queue(attempts=1)

    def insist(event: ExecEvent) -> None:
        event.retry = event.attempt < 3
    queue.on(Queue.EVENT_AFTER_ERROR, insist)
    queue.push(Fail(journal, "f"))
    run_until(queue, lambda: count(journal, "f") == 3)
    queue.run()
    assert count(journal, "f") == 3


def test_age_limit_and_attempts_stop_only_when_both_are_exceeded(make_queue,
                                                                 journal: str) -> None:
    young = make_queue(attempts=1, age_limit=60)
    young.push(Fail(journal, "young", times=3))
    run_until(young, lambda: count(journal, "young") == 4)
    old = make_queue(attempts=2, age_limit=0.001)
    old.push(Fail(journal, "old"))
    time.sleep(0.01)
    run_until(old, lambda: count(journal, "old") == 2)
    old.run()
    assert count(journal, "old") == 2


def _retry_gap(queue: Queue, journal: str, tag: str) -> float:
    run_until(queue, lambda: count(journal, tag) == 1)
    first = time.monotonic()
    run_until(queue, lambda: count(journal, tag) == 2)
    return time.monotonic() - first


@pytest.mark.needs("delay")
def test_queue_backoff_spaces_the_retries(make_queue, journal: str) -> None:
    queue = make_queue(attempts=2, backoff=Backoff.fixed(0.6))
    job_id = queue.push(Fail(journal, "f"))
    run_until(queue, lambda: count(journal, "f") == 1)
    if queue.capabilities.status:
        assert queue.status(job_id) is JobStatus.DELAYED
    if queue.capabilities.last_error:
        assert queue.get(job_id).error.message == "f failed on run 1"
    gap = _retry_gap(queue, journal, "f")
    assert gap >= 0.5, gap


@pytest.mark.needs("delay")
def test_a_job_class_backoff_replaces_the_queue_backoff(make_queue, journal: str) -> None:
    queue = make_queue(attempts=2, backoff=30)
    queue.push(FailWithBackoff(journal, "f"))
    gap = _retry_gap(queue, journal, "f")
    assert 0.3 <= gap < 5, gap


@pytest.mark.needs("delay")
def test_push_backoff_replaces_the_job_class_backoff(make_queue, journal: str) -> None:
    queue = make_queue(attempts=2)
    queue.push(FailWithBackoff(journal, "f"), backoff={"type": "fixed", "delay": 1.5})
    gap = _retry_gap(queue, journal, "f")
    assert gap >= 1.4, gap


@pytest.mark.needs("delay")
def test_after_error_delay_has_the_last_word(make_queue, journal: str) -> None:
    queue = make_queue(attempts=2, backoff=30)

    def soon(event: ExecEvent) -> None:
        event.delay = 0.5
    queue.on(Queue.EVENT_AFTER_ERROR, soon)
    queue.push(Fail(journal, "f"))
    gap = _retry_gap(queue, journal, "f")
    assert 0.4 <= gap < 5, gap


def test_a_custom_backoff_of_zero_retries_at_once(make_queue, journal: str) -> None:
    queue = make_queue(attempts=3, backoff=lambda attempt, error, job: 0)
    queue.push(Fail(journal, "f"))
    took = run_until(queue, lambda: count(journal, "f") == 3)
    assert took < 2, took


def test_a_custom_backoff_of_minus_one_gives_up(make_queue, journal: str) -> None:
    queue = make_queue(attempts=5, backoff=lambda attempt, error, job: -1)
    failed: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_FAIL, failed.append)
    job_id = queue.push(Fail(journal, "f"))
    run_until(queue, lambda: failed)
    queue.run()
    assert count(journal, "f") == 1
    _final(queue, job_id, JobStatus.FAILED)


def test_a_backoff_that_returns_garbage_fails_the_job_with_the_reason(make_queue,
                                                                      journal: str) -> None:
    queue = make_queue(attempts=5, backoff=lambda attempt, error, job: "soon")
    job_id = queue.push(Fail(journal, "f"))
    run_until(queue, lambda: count(journal, "f") == 1)
    queue.run()
    assert count(journal, "f") == 1
    if queue.capabilities.status:
        info = queue.get(job_id)
        assert info.status is JobStatus.FAILED
        assert "backoff failed" in info.error.message and "'soon'" in info.error.message


def test_the_worker_survives_a_job_that_calls_sys_exit(make_queue, journal: str) -> None:
    from tests.support.jobs import Exit, Record
    queue = make_queue(attempts=1)
    job_id = queue.push(Exit())
    queue.push(Record(journal, "next"))
    run_until(queue, lambda: read_lines(journal))
    if queue.capabilities.status:
        assert queue.get(job_id).error.type == "SystemExit"
