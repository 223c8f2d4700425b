"""queue.cancel: a waiting or delayed job never runs; a running one is stopped by the worker
that runs it (in this process here; tests/reliability/test_cancel.py does it across
processes); either ends FAILED with JobCancelledError, never retried."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from queue_core import (
    ExecEvent,
    JobCancelledError,
    JobNotFoundError,
    JobStatus,
    Queue,
    QueueError,
)
from tests.support.jobs import Cancellable, Record, count, read_lines
from tests.support.run import run_until

CANCELLED = "queue_core.errors.JobCancelledError"

pytestmark = pytest.mark.needs("cancel")


def test_job_cancelled_error_is_a_queue_error() -> None:
    assert issubclass(JobCancelledError, QueueError)


@contextmanager
def worker_thread(queue: Queue) -> Iterator[threading.Thread]:
    """A worker in a thread of this process that runs until the queue is empty."""
    worker = queue.worker(handle_signals=False)
    thread = threading.Thread(target=worker.listen, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        worker.stop()
        thread.join(timeout=30)
        assert not thread.is_alive()


def wait_until(what: str, predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.worker_modes("c1")
@pytest.mark.needs("status", "failed_store")
def test_a_cancelled_waiting_job_never_runs(make_queue, journal: str) -> None:
    queue = make_queue(attempts=3)
    cancelled = queue.push(Record(journal, "cancelled"))
    kept = queue.push(Record(journal, "kept"))
    assert queue.cancel(cancelled) is True
    assert queue.status(cancelled) is JobStatus.FAILED
    run_until(queue, lambda: count(journal, "kept"))
    queue.run()
    assert read_lines(journal) == ["kept"]
    info = queue.get(cancelled)
    assert info.status is JobStatus.FAILED
    assert info.attempt == 0  # no attempt charged: it never ran
    assert info.error is not None and info.error.type == CANCELLED
    assert queue.status(kept) is JobStatus.DONE
    # Finished: nothing left to cancel, and the failed job stays as it was.
    assert queue.cancel(cancelled) is False
    assert queue.get(cancelled).error.type == CANCELLED


@pytest.mark.worker_modes("c1")
@pytest.mark.needs("delay", "status", "failed_store")
def test_a_cancelled_delayed_job_never_runs(make_queue, journal: str) -> None:
    queue = make_queue()
    job_id = queue.push(Record(journal, "later"), delay=0.3)
    assert queue.cancel(job_id) is True
    time.sleep(0.5)
    queue.run()
    assert read_lines(journal) == []
    assert queue.status(job_id) is JobStatus.FAILED
    assert queue.get(job_id).error.type == CANCELLED


@pytest.mark.worker_modes("c1")
@pytest.mark.needs("status")
def test_a_cancelled_job_is_not_kept_without_keep_failed(make_queue, journal: str) -> None:
    queue = make_queue(keep_failed=False)
    job_id = queue.push(Record(journal, "x"))
    assert queue.cancel(job_id) is True
    queue.run()
    assert read_lines(journal) == []
    assert queue.status(job_id) is JobStatus.DONE  # what a job no longer stored reads as
    with pytest.raises(JobNotFoundError):
        queue.get(job_id)


@pytest.mark.worker_modes("c1")
def test_cancel_of_an_unknown_or_finished_job_is_false(make_queue, journal: str) -> None:
    queue = make_queue()
    assert queue.cancel("424242") is False
    assert queue.cancel("not an id") is False
    done = queue.push(Record(journal, "done"))
    run_until(queue, lambda: count(journal, "done"))
    assert queue.cancel(done) is False


@pytest.mark.needs("status", "failed_store", "retry")
def test_a_running_job_is_stopped_and_never_retried(make_queue, journal: str,
                                                    worker_mode: str) -> None:
    queue = make_queue(attempts=5)
    errors: list[ExecEvent] = []

    def want_retry(event: ExecEvent) -> None:
        errors.append(event)
        event.retry = True  # overruled: a cancelled job is never retried

    queue.on(Queue.EVENT_AFTER_ERROR, want_retry)
    job_id = queue.push(Cancellable(journal, "c", seconds=5))
    with worker_thread(queue):
        wait_until("the job to start", lambda: count(journal, "start c"))
        asked = time.monotonic()
        assert queue.cancel(job_id) is True
        wait_until("the job to fail", lambda: queue.status(job_id) is JobStatus.FAILED)
        took = time.monotonic() - asked
        time.sleep(0.3)  # a retry, were there one, would start now
    assert took < 1.0, took
    assert count(journal, "start c") == 1
    if worker_mode != "async8":
        # A thread job is told through self.cancelled(); an async one (the twin) has its
        # task cancelled instead.
        assert count(journal, "noticed c") == 1
    info = queue.get(job_id)
    assert info.status is JobStatus.FAILED
    assert info.attempt == 1
    assert info.error is not None and info.error.type == CANCELLED
    assert [type(event.error) for event in errors] == [JobCancelledError]
    assert queue.cancel(job_id) is False


@pytest.mark.worker_modes("c1")
@pytest.mark.needs("status", "failed_store", "manual_retry")
def test_a_cancelled_job_retried_by_hand_runs_again(make_queue, journal: str) -> None:
    queue = make_queue()
    job_id = queue.push(Cancellable(journal, "again", seconds=0.6))
    with worker_thread(queue):
        wait_until("the job to start", lambda: count(journal, "start again"))
        assert queue.cancel(job_id)
        wait_until("the job to fail", lambda: queue.status(job_id) is JobStatus.FAILED)
        # The retry forgets the cancel: this run goes to its end.
        queue.retry(job_id)
        wait_until("the second run to end", lambda: count(journal, "end again"), 20)
    assert count(journal, "noticed again") == 1
    assert count(journal, "start again") == 2
