"""``listen --workers 2`` with heartbeats, real processes: ``queue-core workers`` lists
them, and a worker that stops beating (SIGSTOP) is killed and replaced by the supervisor
within three periods, its job finishing on another worker as a lost run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from queue_core import JobStatus, create_queue
from tests.support.jobs import SleepOnce, read_lines
from tests.support.procs import (
    ROOT,
    alive,
    children,
    kill_group,
    queue_core,
    stop,
    wait_for,
    worker_env,
)

pytestmark = [pytest.mark.drivers("file", "redis"), pytest.mark.worker_modes("c1")]

PERIOD = 0.5
SLACK = 2.5
"""Seconds beyond three periods the supervisor may take: it reads the beats four times a
period, and two CPUs are shared with other test runs."""


def _runs(path: Path, job_id: str) -> list[tuple[int, int]]:
    """(pid, attempt) of each run of ``job_id`` the exec log holds."""
    found = []
    for line in read_lines(str(path)):
        pid, run_id, attempt = line.split()
        if run_id == job_id:
            found.append((int(pid), int(attempt)))
    return found


def test_a_worker_that_stops_beating_is_replaced_and_its_job_runs_again(
        queue_settings, journal: str, tmp_path: Path) -> None:
    # ttr 6: the job's first run is cut short by the kill, not by its time limit.
    settings = queue_settings(ttr=6, attempts=2, keep_completed=True, heartbeat=PERIOD)
    queue = create_queue(settings)
    exec_log = tmp_path / "exec.log"
    supervisor = queue_core(settings, "-vv", "listen", "--workers", "2", "--timeout", "0.2",
                            "--heartbeat", str(PERIOD), exec_log=exec_log,
                            stdout=subprocess.DEVNULL)
    victim = 0
    try:
        pids = wait_for(lambda: len(children(supervisor.pid)) == 2 and
                        children(supervisor.pid), 30, "two workers")
        wait_for(lambda: {info.pid for info in queue.workers()} == set(pids), 30,
                 "both workers' heartbeats")

        listed = subprocess.run(
            [sys.executable, "-m", "queue_core", "--app", "tests.support.app:queue", "workers"],
            env=worker_env(settings), cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert "2 live" in listed.stdout, listed.stdout
        for pid in pids:
            assert any(f" {pid} " in line and "live" in line
                       for line in listed.stdout.splitlines()), listed.stdout

        job_id = queue.push(SleepOnce(journal, "long", 60))
        assert job_id is not None
        victim = wait_for(lambda: _runs(exec_log, job_id) and _runs(exec_log, job_id)[0][0],
                          30, "the job to start")
        wait_for(lambda: any(info.pid == victim and [job.id for job in info.jobs] == [job_id]
                             for info in queue.workers()), 10,
                 "a beat that shows the job running")

        os.kill(victim, signal.SIGSTOP)
        stopped = time.monotonic()
        wait_for(lambda: not alive(victim), 3 * PERIOD + 15, "the silent worker's death")
        took = time.monotonic() - stopped
        print(f"killed {took:.2f}s after SIGSTOP")
        assert took <= 3 * PERIOD + SLACK, f"killed {took:.2f}s after it stopped beating"
        wait_for(lambda: len(children(supervisor.pid)) == 2 and
                 victim not in children(supervisor.pid), 30, "the replacement worker")
        assert victim not in {info.pid for info in queue.workers()}

        wait_for(lambda: queue.status(job_id) is JobStatus.DONE, 30, "the job to end done")
        info = queue.get(job_id)
        assert info.attempt == 2
        runs = _runs(exec_log, job_id)
        assert runs[0] == (victim, 1) and len(runs) == 2, runs
        assert runs[1][0] != victim and runs[1][1] == 2, runs
        code, _, err = stop(supervisor, timeout=20)
    finally:
        if victim and alive(victim):
            os.kill(victim, signal.SIGCONT)
        kill_group(supervisor)
    assert code == 0, err
    assert "has not beaten for" in err and "killing it (SIGKILL)" in err, err
    assert queue.workers() == []
