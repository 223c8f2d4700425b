"""Cancellation and progress across processes: ``queue.cancel`` here, the job in a real
worker process (``queue-core listen``), which learns of the cancel from the back end. A
running job ends FAILED with JobCancelledError within a second of the cancel, whatever
runs it: a thread that checks ``self.cancelled()``, an asyncio task, an isolated child."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from queue_core import JobStatus, Queue, create_queue
from tests.support.jobs import (
    AsyncCancellable,
    Cancellable,
    Progressing,
    Record,
    Sleep,
    count,
    read_lines,
)
from tests.support.procs import ROOT, kill_group, queue_core, stop, wait_for, worker_env

pytestmark = [pytest.mark.needs("cancel", "status", "failed_store", "!runs_at_push",
                                "multiprocess"), pytest.mark.slow]

CANCELLED = "queue_core.errors.JobCancelledError"
WITHIN = 1.0
"""Seconds from the cancel call to the FAILED status (the issue's bound)."""


def cancel_and_time(queue: Queue, job_id: str) -> float:
    """Cancel ``job_id``; the seconds until its status reads FAILED."""
    asked = time.monotonic()
    assert queue.cancel(job_id) is True
    wait_for(lambda: queue.status(job_id) is JobStatus.FAILED, 10, "the job to fail",
             every=0.01)
    return time.monotonic() - asked


def check_cancelled(queue: Queue, job_id: str, took: float) -> None:
    assert took < WITHIN, f"the job failed {took:.3f}s after the cancel"
    info = queue.get(job_id)
    assert info.status is JobStatus.FAILED
    assert info.error is not None and info.error.type == CANCELLED, info.error
    assert info.attempt == 1


@pytest.mark.worker_modes("c1")
def test_a_cancelled_waiting_job_never_runs(queue_settings, journal: str) -> None:
    settings = queue_settings(attempts=3)
    queue = create_queue(settings)
    held = queue.push(Cancellable(journal, "first", seconds=1.0))
    cancelled = queue.push(Record(journal, "cancelled"))
    after = queue.push(Record(journal, "after"))
    assert queue.cancel(cancelled) is True
    worker = queue_core(settings, "listen", "--timeout", "0.2")
    try:
        wait_for(lambda: count(journal, "after"), 30, "the job after it")
        code, _, err = stop(worker)
    finally:
        kill_group(worker)
    assert code == 0, err
    assert "cancelled" not in read_lines(journal)
    assert queue.status(held) is JobStatus.DONE
    info = queue.get(cancelled)
    assert info.status is JobStatus.FAILED and info.attempt == 0
    assert info.error.type == CANCELLED
    assert queue.status(after) is JobStatus.DONE


@pytest.mark.worker_modes("c1", "threads8")
def test_a_thread_job_that_checks_is_cancelled_within_a_second(queue_settings,
                                                                 journal: str) -> None:
    settings = queue_settings(attempts=3)
    queue = create_queue(settings)
    job_id = queue.push(Cancellable(journal, "thread", seconds=30))
    worker = queue_core(settings, "listen", "--timeout", "0.2")
    try:
        wait_for(lambda: count(journal, "start thread"), 30, "the job to start")
        took = cancel_and_time(queue, job_id)
        code, _, err = stop(worker)
    finally:
        kill_group(worker)
    assert code == 0, err
    check_cancelled(queue, job_id, took)
    assert count(journal, "noticed thread") == 1
    assert count(journal, "start thread") == 1  # never retried


@pytest.mark.worker_modes("c1", "threads8")
def test_an_async_job_is_cancelled_within_a_second(queue_settings, journal: str) -> None:
    settings = queue_settings(attempts=3)
    queue = create_queue(settings)
    job_id = queue.push(AsyncCancellable(journal, "async", seconds=30))
    worker = queue_core(settings, "listen", "--timeout", "0.2")
    try:
        wait_for(lambda: count(journal, "start async"), 30, "the job to start")
        took = cancel_and_time(queue, job_id)
        code, _, err = stop(worker)
    finally:
        kill_group(worker)
    assert code == 0, err
    check_cancelled(queue, job_id, took)
    assert count(journal, "cancelled async") == 1  # its task was cancelled
    assert count(journal, "start async") == 1


@pytest.mark.worker_modes("c1", "threads8")
@pytest.mark.parametrize("isolate", ["fork", "exec"])
def test_an_isolated_job_is_killed_within_a_second(queue_settings, journal: str,
                                                   isolate: str) -> None:
    settings = queue_settings(attempts=3)
    queue = create_queue(settings)
    # A job that never checks: its child is killed.
    job_id = queue.push(Sleep(journal, "isolated", 30))
    after = queue.push(Record(journal, "after"))
    worker = queue_core(settings, "listen", "--timeout", "0.2", "--isolate", isolate)
    try:
        wait_for(lambda: count(journal, "start isolated"), 30, "the job to start")
        took = cancel_and_time(queue, job_id)
        wait_for(lambda: count(journal, "after"), 30, "the next job")
        code, _, err = stop(worker)
    finally:
        kill_group(worker)
    assert code == 0, err
    check_cancelled(queue, job_id, took)
    assert count(journal, "end isolated") == 0
    assert count(journal, "start isolated") == 1
    assert queue.status(after) is JobStatus.DONE  # the worker went on with a new child


@pytest.mark.worker_modes("c1", "threads8")
@pytest.mark.needs("progress")
@pytest.mark.parametrize("isolate", [None, "fork", "exec"])
def test_progress_shows_in_get_and_the_status_command_while_it_runs(
        queue_settings, journal: str, tmp_path: Path, isolate: str | None) -> None:
    settings = queue_settings()
    queue = create_queue(settings)
    hold = tmp_path / "hold"
    hold.touch()
    job_id = queue.push(Progressing(journal, "p", steps=3, hold=str(hold)))
    extra = ("--isolate", isolate) if isolate else ()
    worker = queue_core(settings, "listen", "--timeout", "0.2", *extra)
    try:
        wait_for(lambda: (found := queue.get(job_id).progress) is not None
                 and found.fraction == 1.0, 30, "the progress")
        info = queue.get(job_id)
        assert info.status is JobStatus.RESERVED
        assert info.progress is not None and info.progress.message == "step 3"
        shown = status_command(settings, job_id)
        assert "progress:  100.0% step 3" in shown, shown
        as_json = json.loads(status_command(settings, job_id, "--json"))
        assert as_json["progress"]["fraction"] == 1.0
        assert as_json["progress"]["message"] == "step 3"
        hold.unlink()
        wait_for(lambda: count(journal, "end p"), 30, "the job to end")
        code, _, err = stop(worker)
    finally:
        kill_group(worker)
    assert code == 0, err


def status_command(settings: dict, job_id: str, *extra: str) -> str:  # type: ignore[type-arg]
    done = subprocess.run(
        [sys.executable, "-m", "queue_core", "--app", "tests.support.app:queue", "status",
         job_id, *extra], env=worker_env(settings), cwd=ROOT, capture_output=True, text=True,
        timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout
