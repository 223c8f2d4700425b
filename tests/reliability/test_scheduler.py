"""Schedulers in real processes: three ``queue-core scheduler`` at once on an
every-second schedule push each firing once, and together they leave no firing out."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from queue_core import JobStatus, create_queue
from tests.support.jobs import read_lines
from tests.support.procs import kill_group, queue_core, stop, wait_for

pytestmark = [pytest.mark.needs("unique", "multiprocess", "!runs_at_push"),
              pytest.mark.worker_modes("c1")]

PUSHED = re.compile(r"schedule tick: firing of (\S+) pushed as job (\S+)")


@pytest.mark.slow
def test_three_schedulers_push_each_firing_of_ten_seconds_once(
        queue_settings, journal: str, tmp_path: Path) -> None:
    settings = queue_settings(schedules=[{
        "name": "tick", "job": "tests.support.jobs.Record",
        "args": {"journal": journal, "tag": "tick"}, "every": 1}])
    procs = [queue_core(settings, "-vv", "scheduler") for _ in range(3)]
    try:
        time.sleep(10)
        outcomes = [stop(process) for process in procs]
    finally:
        for process in procs:
            kill_group(process)
    firings: dict[str, set[str]] = defaultdict(set)
    """Fire time -> the job ids the schedulers were given for it."""
    per_scheduler = []
    for code, _, err in outcomes:
        assert code == 0, err
        seen = PUSHED.findall(err)
        per_scheduler.append(len(seen))
        for fire, job_id in seen:
            firings[fire].add(job_id)
    # Every scheduler ran and pushed (most of its pushes found the firing pushed).
    assert all(count >= 5 for count in per_scheduler), per_scheduler
    # One job per firing, whichever scheduler pushed it first.
    assert all(len(ids) == 1 for ids in firings.values()), firings
    # No firing left out between the first and the last.
    times = sorted(datetime.fromisoformat(fire) for fire in firings)
    assert len(times) >= 8
    assert all(b - a == timedelta(seconds=1) for a, b in zip(times, times[1:], strict=False))
    # And the store holds exactly those jobs.
    queue = create_queue(settings)
    try:
        if queue.capabilities.info:
            assert queue.info()[JobStatus.WAITING] == len(firings)
        stored = {job_id for ids in firings.values() for job_id in ids}
        assert len(stored) == len(firings)
        if queue.capabilities.status:
            assert all(queue.status(job_id) is JobStatus.WAITING for job_id in stored)
    finally:
        queue.close()


@pytest.mark.slow
@pytest.mark.drivers("file", "redis")
@pytest.mark.parametrize("pool", [[], ["--workers", "2"]], ids=["worker", "supervisor"])
def test_listen_with_a_scheduler_runs_the_firings_it_pushes(
        queue_settings, journal: str, pool: list[str]) -> None:
    settings = queue_settings(schedules=[{
        "name": "tick", "job": "tests.support.jobs.Record",
        "args": {"journal": journal, "tag": "tick"}, "every": 1}])
    process = queue_core(settings, "listen", "--timeout", "0.2", "--scheduler", *pool)
    try:
        wait_for(lambda: read_lines(journal).count("tick") >= 3, 30, "three firings run")
        code, _, err = stop(process)
    finally:
        kill_group(process)
    assert code == 0, err
