"""Isolated mode with real worker processes: a child that crashes is a failed attempt and
the parent lives on; children are reused, retired by count or memory, run side by side with
--concurrency, and die with their worker (the ttr kill is in test_worker_processes.py)."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from queue_core import ExecEvent, JobStatus, Queue, create_queue
from tests.support.jobs import Abort, Hog, Record, Temporary, count, read_lines
from tests.support.procs import alive, children, kill_group, queue_core, stop, wait_for

pytestmark = pytest.mark.needs("!runs_at_push", "multiprocess")


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


def _pids(journal: str) -> dict[str, str]:
    """tag -> the pid that ran it, from Hog lines."""
    return dict(line.split()[:2] for line in read_lines(journal))


def _ends(journal: str) -> list[float]:
    """When each Hog ended, from its line."""
    return sorted(float(line.split()[2]) for line in read_lines(journal))


# How the worker keeps its children does not depend on the back end; these three drivers
# cover a file, a server the child reconnects to, and a database connection pool.
POOL_DRIVERS = ("file", "redis", "postgresql")


@pytest.mark.drivers(*POOL_DRIVERS)
@pytest.mark.worker_modes("c1")  # one child at a time: the count per child is exact
@pytest.mark.parametrize("mode", ["fork", "exec"])
@pytest.mark.parametrize("limit", [None, 4])
def test_a_child_runs_job_after_job_until_max_jobs_per_child(queue_settings, journal: str,
                                                             mode: str,
                                                             limit: int | None) -> None:
    settings = queue_settings()
    queue = create_queue(settings)
    queue.push_many([Hog(journal, f"h{n}") for n in range(12)])
    extra = ("--max-jobs-per-child", str(limit)) if limit else ()
    worker = queue_core(settings, "run", "--isolate", mode, *extra)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    ran = _pids(journal)
    assert sorted(ran) == sorted(f"h{n}" for n in range(12))
    assert str(worker.pid) not in ran.values()
    jobs_per_child = Counter(ran.values())
    assert list(jobs_per_child.values()) == ([12] if limit is None else [4, 4, 4])


@pytest.mark.drivers(*POOL_DRIVERS)
@pytest.mark.worker_modes("c1")
def test_a_child_over_max_memory_per_child_is_replaced_after_its_job(queue_settings,
                                                                     journal: str) -> None:
    settings = queue_settings()
    queue = create_queue(settings)
    queue.push(Hog(journal, "small"))
    queue.push(Hog(journal, "leak", mb=300))
    queue.push(Hog(journal, "after"))
    queue.push(Hog(journal, "last"))
    worker = queue_core(settings, "run", "--isolate", "--max-memory-per-child", "200")
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    ran = _pids(journal)
    assert ran["small"] == ran["leak"]  # under the limit: the same child goes on
    assert ran["after"] != ran["leak"]  # the leak put it over: a fresh child
    assert ran["last"] == ran["after"]


@pytest.mark.drivers(*POOL_DRIVERS)
@pytest.mark.worker_modes("c1")  # sets its own concurrency
@pytest.mark.parametrize("mode", ["fork", "exec"])
def test_isolated_jobs_run_side_by_side_with_concurrency(queue_settings, journal: str,
                                                         mode: str) -> None:
    settings = queue_settings()
    queue = create_queue(settings)
    queue.push_many([Hog(journal, f"h{n}", seconds=1.5) for n in range(4)])
    worker = queue_core(settings, "run", "--isolate", mode, "--concurrency", "4")
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    ran = _pids(journal)
    assert sorted(ran) == ["h0", "h1", "h2", "h3"]
    assert len(set(ran.values())) == 4  # a child each
    # At the same time, not one after another: then their ends would lie 4.5 s apart.
    # (Timed by the jobs themselves, not from the worker's start, which a busy machine
    # slows down: how fast interpreters start is not what this checks.)
    ends = _ends(journal)
    assert ends[-1] - ends[0] < 3.0, ends


@pytest.mark.drivers(*POOL_DRIVERS)
def test_children_exit_when_their_worker_is_killed(queue_settings, journal: str) -> None:
    settings = queue_settings()
    queue = create_queue(settings)
    queue.push(Hog(journal, "long", seconds=60))
    worker = queue_core(settings, "listen", "--timeout", "0.2", "--isolate")
    try:
        wait_for(lambda: children(worker.pid), 30, "a child process")
        child = children(worker.pid)[0]
        time.sleep(0.5)
        os.kill(worker.pid, signal.SIGKILL)  # the worker alone, not its process group
        worker.wait()
        wait_for(lambda: not alive(child), 5, "the orphaned child to exit")
    finally:
        kill_group(worker)
