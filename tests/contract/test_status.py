"""status() and get(): drivers that declare status."""

from __future__ import annotations

import time

import pytest

from queue_core import ExecEvent, JobNotFoundError, JobStatus, Queue
from tests.support.jobs import Fail, Record, read_lines
from tests.support.run import run_until

pytestmark = pytest.mark.needs("status")


@pytest.mark.needs("!runs_at_push")
def test_a_pushed_job_is_waiting_then_done(queue: Queue, journal: str) -> None:
    job_id = queue.push(Record(journal, "a"))
    assert queue.status(job_id) is JobStatus.WAITING
    run_until(queue, lambda: read_lines(journal))
    assert queue.status(job_id) is JobStatus.DONE


def test_an_unknown_id_reads_done(queue: Queue) -> None:
    assert queue.status("123456789") is JobStatus.DONE
    assert queue.status("not-an-id") is JobStatus.DONE


def test_get_of_an_unknown_id_raises(queue: Queue) -> None:
    with pytest.raises(JobNotFoundError):
        queue.get("123456789")


def test_a_running_job_is_reserved(queue: Queue, journal: str) -> None:
    seen: list[JobStatus] = []

    def look(event: ExecEvent) -> None:
        seen.append(queue.status(event.id))
    queue.on(Queue.EVENT_BEFORE_EXEC, look)
    queue.push(Record(journal, "a"))
    run_until(queue, lambda: read_lines(journal))
    assert seen == [JobStatus.RESERVED]


@pytest.mark.needs("keep_completed")
def test_get_of_a_kept_completed_job(make_queue, journal: str) -> None:
    queue = make_queue(keep_completed=True)
    before = time.time()
    job_id = queue.push(Record(journal, "a"), ttr=42)
    run_until(queue, lambda: read_lines(journal))
    info = queue.get(job_id)
    assert info.id == job_id
    assert info.status is JobStatus.DONE
    assert info.attempt == 1
    assert info.result == "a"
    assert info.error is None
    assert info.job_name == "tests.support.jobs.Record"
    assert info.ttr == 42
    assert before - 1 <= info.pushed_at <= info.started_at <= info.finished_at <= time.time() + 1


def test_a_failed_job_keeps_its_error(queue: Queue, journal: str) -> None:
    job_id = queue.push(Fail(journal, "f"))
    run_until(queue, lambda: read_lines(journal))
    assert queue.status(job_id) is JobStatus.FAILED
    info = queue.get(job_id)
    assert info.status is JobStatus.FAILED
    assert info.attempt == 1
    assert info.error is not None
    assert info.error.type == "RuntimeError"
    assert info.error.message == "f failed on run 1"
    assert "Traceback" in info.error.traceback and "in execute" in info.error.traceback
    assert info.finished_at is not None


def test_keep_failed_false_deletes_failed_jobs(make_queue, journal: str) -> None:
    queue = make_queue(keep_failed=False)
    job_id = queue.push(Fail(journal, "f"))
    run_until(queue, lambda: read_lines(journal))
    queue.run()
    with pytest.raises(JobNotFoundError):
        queue.get(job_id)
