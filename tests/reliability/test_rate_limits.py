"""Rate limits hold across real worker processes: 4 workers on ``rate: 20/s,
bucket_size: 1`` run 200 jobs in 10 s (+-10%) with no more than 21 starts in any second,
and ``max_concurrent: 2`` never lets a third job run, the queue's limits and a job type's
alike. A job held back by a limit is never charged an attempt (every run is attempt 1).
Every driver that declares rate limits, real processes, the starts recorded by the jobs."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from queue_core import Job, create_queue
from tests.support.jobs import read_lines
from tests.support.procs import kill_group, queue_core, stop, wait_for

pytestmark = [pytest.mark.needs("rate_limit", "multiprocess", "!runs_at_push")]

WORKERS = 4
IMPORTS = ["tests.support.jobs", "tests.support.limited_jobs"]


def _times(journal: str, kind: str) -> dict[str, float]:
    found = {}
    for line in read_lines(journal):
        tag, what, when = line.split()
        if what == kind:
            found[tag] = float(when)
    return found


def _attempts(exec_log: Path) -> list[int]:
    if not exec_log.exists():
        return []
    return [int(line.split()[2]) for line in exec_log.read_text().splitlines()]


def _most_in_a_second(starts: list[float]) -> int:
    """The most starts in any window of one second (each window opening at a start)."""
    ordered = sorted(starts)
    return max(bisect.bisect_left(ordered, begin + 1.0) - index
               for index, begin in enumerate(ordered))


def _most_at_once(starts: dict[str, float], ends: dict[str, float]) -> int:
    events = sorted([(when, 1) for when in starts.values()]
                    + [(when, -1) for when in ends.values()])  # an end first at a tie
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def _run_workers(settings: dict[str, Any], tmp_path: Path, done: Callable[[], bool],
                 timeout: float) -> Path:
    """Start WORKERS worker processes, wait until ``done()``, stop them; the exec log."""
    exec_log = tmp_path / "exec.log"
    workers = [queue_core(settings, "listen", "--timeout", "0.2", exec_log=exec_log)
               for _ in range(WORKERS)]
    try:
        wait_for(done, timeout, "every job done", every=0.05)
        for worker in workers:
            code, _, err = stop(worker)
            assert code == 0, err
    finally:
        for worker in workers:
            kill_group(worker)
    return exec_log


def _push_all(settings: dict[str, Any], jobs: list[Job]) -> None:
    queue = create_queue(settings)
    try:
        queue.push_many(jobs)
    finally:
        queue.close()


@pytest.mark.slow
@pytest.mark.worker_modes("c1", "threads8")
def test_queue_rate_20_per_second_on_four_workers(queue_settings, journal: str,
                                                  tmp_path: Path) -> None:
    _rate_20_per_second(queue_settings, journal, tmp_path, "queue")


@pytest.mark.slow
@pytest.mark.worker_modes("c1")
def test_job_type_rate_20_per_second_on_four_workers(queue_settings, journal: str,
                                                     tmp_path: Path) -> None:
    _rate_20_per_second(queue_settings, journal, tmp_path, "job type")


def _rate_20_per_second(queue_settings: Callable[..., dict[str, Any]], journal: str,
                        tmp_path: Path, where: str) -> None:
    from tests.support.limited_jobs import MeteredStamp, Stamp
    count = 200
    if where == "queue":
        settings = queue_settings(imports=IMPORTS, rate="20/s", bucket_size=1)
        jobs: list[Job] = [Stamp(journal, f"j{i}") for i in range(count)]
    else:
        settings = queue_settings(imports=IMPORTS)
        jobs = [MeteredStamp(journal, f"j{i}") for i in range(count)]
    _push_all(settings, jobs)
    exec_log = _run_workers(settings, tmp_path, lambda: len(_times(journal, "end")) >= count,
                            60)
    starts = sorted(_times(journal, "start").values())
    assert len(starts) == count
    took = starts[-1] - starts[0]
    # 200 tokens at 20/s from a bucket of one: the first at once, 199 more over 9.95 s.
    gaps = sorted(later - earlier for earlier, later in zip(starts, starts[1:], strict=False))
    assert 9.0 <= took <= 11.0, (took, gaps[-10:])
    assert _most_in_a_second(starts) <= 21
    attempts = _attempts(exec_log)
    assert len(attempts) == count and set(attempts) == {1}, attempts


@pytest.mark.slow
@pytest.mark.worker_modes("c1", "threads8")
def test_queue_max_concurrent_two_on_four_workers(queue_settings, journal: str,
                                                  tmp_path: Path) -> None:
    _max_concurrent_two(queue_settings, journal, tmp_path, "queue")


@pytest.mark.slow
@pytest.mark.worker_modes("threads8")
def test_job_type_max_concurrent_two_on_four_workers(queue_settings, journal: str,
                                                     tmp_path: Path) -> None:
    _max_concurrent_two(queue_settings, journal, tmp_path, "job type")


def _max_concurrent_two(queue_settings: Callable[..., dict[str, Any]], journal: str,
                        tmp_path: Path, where: str) -> None:
    from tests.support.limited_jobs import CrowdedStamp, Stamp
    count = 24
    if where == "queue":
        settings = queue_settings(imports=IMPORTS, max_concurrent=2)
        jobs: list[Job] = [Stamp(journal, f"j{i}", 0.2) for i in range(count)]
    else:
        settings = queue_settings(imports=IMPORTS)
        jobs = [CrowdedStamp(journal, f"j{i}", 0.2) for i in range(count)]
    _push_all(settings, jobs)
    started = time.monotonic()
    exec_log = _run_workers(settings, tmp_path, lambda: len(_times(journal, "end")) >= count,
                            60)
    starts, ends = _times(journal, "start"), _times(journal, "end")
    assert len(starts) == len(ends) == count
    assert _most_at_once(starts, ends) <= 2
    # Two at a time at most, yet two at a time: the limit is no stricter than it says.
    assert _most_at_once(starts, ends) == 2
    assert time.monotonic() - started >= count / 2 * 0.2
    attempts = _attempts(exec_log)
    assert len(attempts) == count and set(attempts) == {1}, attempts


@pytest.mark.worker_modes("c1", "threads8")
@pytest.mark.needs("status", "attempt_count")
def test_a_worker_waiting_for_tokens_stops_at_once_and_charges_nothing(
        make_queue, queue_settings, journal: str, tmp_path: Path) -> None:
    from tests.support.limited_jobs import Stamp
    settings = queue_settings(imports=IMPORTS, rate="1/h", bucket_size=1)
    queue = make_queue(imports=IMPORTS, rate="1/h", bucket_size=1)
    ids = queue.push_many([Stamp(journal, f"j{i}") for i in range(3)])
    exec_log = tmp_path / "exec.log"
    worker = queue_core(settings, "listen", "--timeout", "0.5", exec_log=exec_log)
    try:
        wait_for(lambda: len(_times(journal, "end")) == 1, 30, "the one job a token allows")
        time.sleep(1.5)  # held past HOLD_MAX: given back and fetched again meanwhile
        asked = time.monotonic()
        code, _, err = stop(worker)
        took = time.monotonic() - asked
    finally:
        kill_group(worker)
    assert code == 0, err
    assert took < 2.0, took
    assert len(_times(journal, "start")) == 1
    assert _attempts(exec_log) == [1]
    ran = next(tag for tag in _times(journal, "start"))
    waiting = [job_id for index, job_id in enumerate(ids) if f"j{index}" != ran]
    for job_id in waiting:
        assert job_id is not None
        info = queue.get(job_id)
        assert info.status.value == "waiting" and info.attempt == 0, info


@pytest.mark.slow
@pytest.mark.worker_modes("c1")
@pytest.mark.needs("retry", "ttr_lease")
def test_the_slot_of_a_worker_killed_mid_job_frees_with_its_lease(
        queue_settings, journal: str, tmp_path: Path) -> None:
    from tests.support.jobs import Hold
    from tests.support.limited_jobs import Stamp
    hold = tmp_path / "hold"
    hold.touch()
    held = str(tmp_path / "held.txt")
    settings = queue_settings(imports=IMPORTS, max_concurrent=1, ttr=3, attempts=3)
    queue = create_queue(settings)
    try:
        queue.push(Hold(held, "held", str(hold)))
        queue.push(Stamp(journal, "after"))
    finally:
        queue.close()
    first = queue_core(settings, "listen", "--timeout", "0.2")
    try:
        wait_for(lambda: "start held" in read_lines(held), 30, "the held job running")
        kill_group(first)  # SIGKILL: its slot is never freed by it
    finally:
        kill_group(first)
    hold.unlink()
    second = queue_core(settings, "listen", "--timeout", "0.2")
    try:
        # The slot goes when its lease (the job's ttr plus lease_grace) ends, and the
        # killed run comes back as the job's own lease ends: both jobs run.
        wait_for(lambda: "after" in _times(journal, "end") and "end held" in read_lines(held),
                 30, "both jobs done")
        code, _, err = stop(second)
    finally:
        kill_group(second)
    assert code == 0, err
