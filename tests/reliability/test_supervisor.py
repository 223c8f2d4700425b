"""``listen --workers N``: a supervisor and its worker processes, with real signals."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from queue_core import JobStatus, create_queue
from tests.support.jobs import Record, Sleep, read_lines
from tests.support.procs import alive, children, kill_group, queue_core, stop, wait_for

pytestmark = pytest.mark.needs("ttr_lease", "!runs_at_push", "multiprocess")


def _done(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split()) for line in read_lines(str(path))]  # type: ignore[misc]


def test_three_workers_run_1000_jobs_once_and_survive_a_sigkill(
        queue_settings, journal: str, tmp_path: Path) -> None:
    # attempts=2: the run the SIGKILL cuts short counts as a failed attempt; a short ttr
    # brings its job back 2.5 s after the kill. Completed jobs are kept so that the queue
    # itself says which jobs are done (a completion log written by an event handler could
    # miss the job the SIGKILL hit between its ack and the handler).
    keep = create_queue(queue_settings()).capabilities.keep_completed
    settings = queue_settings(ttr=2, attempts=2, keep_completed=keep)
    queue = create_queue(settings)
    ids = queue.push_many([Record(journal, f"j{index}") for index in range(1000)])
    done_log = tmp_path / "done.log"
    tags = {f"j{index}" for index in range(1000)}

    def finished() -> bool:
        counts = queue.info()
        if keep:
            return counts[JobStatus.DONE] + counts[JobStatus.FAILED] == 1000
        return (set(read_lines(journal)) == tags and counts[JobStatus.WAITING] == 0
                and counts.get(JobStatus.RESERVED, 0) == 0)

    supervisor = queue_core(settings, "-vv", "listen", "--workers", "3", "--timeout", "0.2",
                            done_log=done_log, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(children(supervisor.pid)) == 3, 30, "three workers")
        wait_for(lambda: len(_done(done_log)) >= 200, 60, "200 jobs")
        victim = int(_done(done_log)[-1][0])  # a worker that is busy with jobs
        os.kill(victim, signal.SIGKILL)
        done_at_kill = len(_done(done_log))
        wait_for(lambda: len(children(supervisor.pid)) == 3 and
                 victim not in children(supervisor.pid), 30, "the replacement worker")
        wait_for(finished, 120, "1000 finished jobs", every=0.2)
        code, _, err = stop(supervisor, timeout=20)
    finally:
        kill_group(supervisor)
    assert code == 0, err
    assert done_at_kill < 1000  # the kill happened while work remained
    assert "died (signal 9)" in err
    # The killed worker held at most ``in_flight`` jobs: each one running (the SIGKILL cut
    # it short) or finished with its ack not yet carried out (drivers that carry an ack
    # with the next reserve, DB and Redis, may run such a job once more). Only those can
    # have run twice, and each was charged one attempt more.
    in_flight = queue.concurrency
    started = Counter(read_lines(journal))
    assert set(started) == tags
    assert sum(n - 1 for n in started.values()) <= in_flight, started.most_common(3)
    if keep:
        infos = [queue.get(job_id) for job_id in ids]
        assert all(info.status is JobStatus.DONE for info in infos)
        assert sum(info.attempt for info in infos) <= 1000 + in_flight
    completed = Counter(job_id for _, job_id in _done(done_log))
    assert sum(n - 1 for n in completed.values()) <= in_flight, completed.most_common(3)


def test_sigterm_to_the_supervisor_stops_every_worker_after_its_job(
        queue_settings, journal: str) -> None:
    settings = queue_settings()
    queue = create_queue(settings)
    slots = 3 * queue.concurrency  # every worker's every slot busy with a long job
    for index in range(slots):
        queue.push(Sleep(journal, f"s{index}", 1.5))
    supervisor = queue_core(settings, "listen", "--workers", "3", "--timeout", "0.2")
    try:
        wait_for(lambda: sum(line.startswith("start") for line in read_lines(journal)) == slots,
                 30, f"{slots} jobs to start")
        # Pushed only now: with every slot busy, no worker may start one of these, neither
        # before the signal nor after. (Pushed before, one could go first: several workers
        # reserving at once skip one another's locked rows, so order across workers is not
        # FIFO.)
        queue.push_many([Record(journal, "never") for _ in range(5)])
        workers = children(supervisor.pid)
        assert len(workers) == 3
        code, _, err = stop(supervisor, signal.SIGTERM, timeout=20)
    finally:
        kill_group(supervisor)
    assert code == 0, err
    lines = read_lines(journal)
    assert sorted(line for line in lines if line.startswith("end")) == sorted(
        f"end s{index}" for index in range(slots))
    assert "never" not in lines
    assert not any(alive(pid) for pid in workers)


def test_max_jobs_makes_a_worker_exit_0_and_the_supervisor_replaces_it(
        queue_settings, journal: str, tmp_path: Path) -> None:
    settings = queue_settings()
    queue = create_queue(settings)
    queue.push_many([Record(journal, f"j{index}") for index in range(25)])
    done_log = tmp_path / "done.log"
    supervisor = queue_core(settings, "-vv", "listen", "--workers", "1", "--max-jobs", "10",
                            "--timeout", "0.2", done_log=done_log, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(_done(done_log)) == 25, 60, "25 jobs")
        assert supervisor.poll() is None
        code, _, err = stop(supervisor)
    finally:
        kill_group(supervisor)
    assert code == 0, err
    per_worker = Counter(pid for pid, _ in _done(done_log))
    assert sorted(per_worker.values()) == [5, 10, 10], per_worker
    assert err.count("exited cleanly") >= 2
    assert "processed 10 jobs (max_jobs): stopping" in err


def test_workers_stop_when_their_supervisor_is_killed(queue_settings) -> None:
    supervisor = queue_core(queue_settings(), "listen", "--workers", "2", "--timeout", "0.2")
    try:
        workers = wait_for(lambda: len(children(supervisor.pid)) == 2 and
                           children(supervisor.pid), 30, "two workers")
        os.kill(supervisor.pid, signal.SIGKILL)
        wait_for(lambda: not any(alive(pid) for pid in workers), 10,
                 "the orphaned workers to stop")
    finally:
        kill_group(supervisor)
