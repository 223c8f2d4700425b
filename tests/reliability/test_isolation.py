"""Isolated mode with real worker processes: a child that crashes is a failed attempt and
the parent lives on (the ttr kill is in test_worker_processes.py, for every mode)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from queue_core import ExecEvent, JobStatus, Queue, create_queue
from tests.support.jobs import Abort, Record, Temporary, count, read_lines
from tests.support.procs import kill_group, queue_core, stop, wait_for

# Isolated jobs run one at a time per worker (--workers N runs several).
pytestmark = [pytest.mark.needs("!runs_at_push", "multiprocess"), pytest.mark.worker_modes("c1")]


@pytest.mark.needs("retry")
def test_a_child_that_aborts_is_a_failed_attempt(queue_settings, journal: str,
                                                 tmp_path: Path) -> None:
    settings = queue_settings(attempts=2)
    queue = create_queue(settings)
    crash = queue.push(Abort(journal, "abort"))
    queue.push(Record(journal, "next"))
    worker = queue_core(settings, "listen", "--timeout", "0.2", "--isolate")
    try:
        # Both: on AMQP the retry goes behind "next", which was already waiting.
        wait_for(lambda: "next" in read_lines(journal) and count(journal, "start abort") >= 2,
                 30, "the next job and the retry")
        assert worker.poll() is None
        code, _, err = stop(worker)
    finally:
        kill_group(worker)
    assert code == 0, err
    assert count(journal, "start abort") == 2  # attempts=2: run, retried, failed for good
    assert "died with signal 6 (SIGABRT)" in err
    if queue.capabilities.status:
        info = queue.get(crash)
        assert info.status is JobStatus.FAILED and info.attempt == 2
        assert info.error.type == "queue_core.errors.WorkerLostError"


@pytest.mark.needs("retry")
def test_an_isolated_error_keeps_its_class_and_traceback(make_queue, journal: str) -> None:
    queue = make_queue(isolate=True, attempts=5)
    done: list[ExecEvent] = []
    errors: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_EXEC, done.append)
    queue.on(Queue.EVENT_AFTER_ERROR, errors.append)
    job_id = queue.push(Temporary(journal, "t", times=2))
    deadline = time.monotonic() + 20
    while not done:
        assert time.monotonic() < deadline
        if not queue.run():
            time.sleep(0.05)
    # can_retry saw the child's TemporaryError as itself, so it allowed the retries.
    assert [type(e.error).__name__ for e in errors] == ["TemporaryError", "TemporaryError"]
    assert done[0].attempt == 3
    import os
    assert done[0].result.startswith("t pid ") and done[0].result != f"t pid {os.getpid()}"
    if queue.capabilities.status:
        assert queue.status(job_id) is JobStatus.DONE


def test_isolated_jobs_can_push_jobs(make_queue, journal: str) -> None:
    """A forked child pushes through its own connection, not the parent's."""
    from tests.support.jobs import Pusher
    queue = make_queue(isolate=True)
    queue.push(Pusher(journal, "child-pushed"))
    deadline = time.monotonic() + 20
    while "child-pushed" not in read_lines(journal):
        assert time.monotonic() < deadline, read_lines(journal)
        if not queue.run():
            time.sleep(0.05)
    assert read_lines(journal) == ["pusher", "child-pushed"]
