"""info, clear, remove, listing and manual retry."""

from __future__ import annotations

import pytest

from queue_core import (
    InvalidArgumentError,
    JobNotFoundError,
    JobNotInStateError,
    JobStatus,
    NotSupportedError,
    Queue,
    RetryEvent,
)
from tests.support.jobs import Fail, Record, count, read_lines
from tests.support.run import run_until


@pytest.mark.needs("info", "delay", "retry")
def test_info_counts_jobs_per_status(make_queue, journal: str) -> None:
    queue = make_queue(attempts=1)
    queue.push(Record(journal, "w1"))
    queue.push(Record(journal, "w2"))
    queue.push(Record(journal, "d"), delay=60)
    counts = queue.info()
    uncounted = queue.capabilities.uncounted
    assert set(counts) == set(JobStatus) - uncounted
    assert counts[JobStatus.WAITING] == 2
    assert counts[JobStatus.DELAYED] == 1
    held = queue.consume().next(0)  # held: a consumption dropped would give its job back
    assert held is not None
    after = queue.info()
    if JobStatus.RESERVED in uncounted:
        assert after[JobStatus.WAITING] == 1  # what can be seen of the reserve
    else:
        assert after[JobStatus.RESERVED] == 1
    failing = make_queue(attempts=1)
    failing.push(Fail(journal, "f"))
    run_until(failing, lambda: count(journal, "f"))
    if failing.capabilities.failed_store:
        assert failing.info()[JobStatus.FAILED] == 1


@pytest.mark.needs("clear", "!runs_at_push")
def test_clear_removes_every_job(queue: Queue, journal: str) -> None:
    for index in range(5):
        queue.push(Record(journal, f"j{index}"))
    if queue.capabilities.delay:
        queue.push(Record(journal, "later"), delay=0.5)
    queue.clear()
    if queue.capabilities.info:
        assert sum(queue.info().values()) == 0
    queue.run()
    assert read_lines(journal) == []


@pytest.mark.needs("remove", "!runs_at_push")
def test_remove_deletes_one_job(queue: Queue, journal: str) -> None:
    keep = queue.push(Record(journal, "keep"))
    gone = queue.push(Record(journal, "gone"))
    assert queue.remove(gone) is True
    assert queue.remove(gone) is False
    run_until(queue, lambda: read_lines(journal))
    assert read_lines(journal) == ["keep"]
    if queue.capabilities.status:
        assert queue.status(keep) is JobStatus.DONE


@pytest.mark.needs("listing")
def test_failed_lists_failed_jobs_with_their_error(queue: Queue, journal: str) -> None:
    ids = [queue.push(Fail(journal, f"f{index}")) for index in range(3)]
    run_until(queue, lambda: len(read_lines(journal)) == 3)
    listed = queue.failed(limit=10)
    assert sorted(info.id for info in listed) == sorted(ids)
    assert {info.job_name for info in listed} == {"tests.support.jobs.Fail"}
    assert all(info.error and info.error.type == "RuntimeError" for info in listed)
    assert len(queue.failed(limit=2)) == 2
    with pytest.raises(InvalidArgumentError):
        queue.failed(limit=0)


@pytest.mark.needs("manual_retry", "status")
def test_retry_sends_a_failed_job_back_to_waiting(queue: Queue, journal: str) -> None:
    events: list[RetryEvent] = []
    queue.on(Queue.EVENT_AFTER_RETRY, events.append)
    job_id = queue.push(Fail(journal, "f", times=1))
    run_until(queue, lambda: count(journal, "f") == 1)
    assert queue.status(job_id) is JobStatus.FAILED
    queue.retry(job_id)
    assert [e.id for e in events] == [job_id]
    if not queue.capabilities.runs_at_push:
        assert queue.status(job_id) is JobStatus.WAITING
        info = queue.get(job_id)
        assert info.error is None and info.finished_at is None
    run_until(queue, lambda: count(journal, "f") == 2)
    assert queue.status(job_id) is JobStatus.DONE


@pytest.mark.needs("manual_retry", "status", "keep_completed")
def test_retry_of_a_completed_job_and_attempt_counting(make_queue, journal: str) -> None:
    queue = make_queue(keep_completed=True)
    job_id = queue.push(Record(journal, "a"))
    run_until(queue, lambda: read_lines(journal))
    with pytest.raises(JobNotInStateError) as not_failed:
        queue.retry(job_id)
    assert not_failed.value.code == -3
    queue.retry(job_id, state="completed")
    run_until(queue, lambda: len(read_lines(journal)) == 2)
    assert queue.get(job_id).attempt == 2
    assert queue.get(job_id).result == "a"
    queue.retry(job_id, state=JobStatus.DONE, reset_attempts=True)
    run_until(queue, lambda: len(read_lines(journal)) == 3)
    assert queue.get(job_id).attempt == 1


@pytest.mark.needs("manual_retry", "status")
def test_retry_errors_carry_bullmq_codes(queue: Queue, journal: str) -> None:
    with pytest.raises(JobNotFoundError) as missing:
        queue.retry("123456")
    assert missing.value.code == -1
    if not queue.capabilities.runs_at_push:
        job_id = queue.push(Record(journal, "a"))
        with pytest.raises(JobNotInStateError) as waiting:
            queue.retry(job_id)
        assert waiting.value.code == -3
    with pytest.raises(InvalidArgumentError):
        queue.retry("123456", state="waiting")


@pytest.mark.needs("listing")
def test_only_the_statuses_a_driver_declares_can_be_listed(queue: Queue) -> None:
    for status in JobStatus:
        if status in queue.capabilities.listing:
            assert queue.jobs(status) == []
        else:
            with pytest.raises(NotSupportedError, match=f"does not support listing {status}"):
                queue.jobs(status)
