"""Real worker processes, real signals: every driver with a ttr lease.

Exactly once when nothing fails; a killed run comes back and counts as an attempt."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from queue_core import JobStatus, create_queue
from tests.support.jobs import KillWorker, Record, Sleep, SleepOnce, count, read_lines
from tests.support.procs import kill_group, queue_core, stop, wait_for, workers

pytestmark = pytest.mark.needs("ttr_lease", "!runs_at_push", "multiprocess")


def exec_log(path: Path) -> list[tuple[str, str, int]]:
    rows = []
    for line in read_lines(str(path)):
        pid, job_id, attempt = line.split()
        rows.append((pid, job_id, int(attempt)))
    return rows


def test_sigkill_mid_job_then_another_worker_finishes_it_as_attempt_2(
        queue_settings, journal: str, tmp_path: Path) -> None:
    settings = queue_settings(attempts=3)
    queue = create_queue(settings)
    job_id = queue.push(SleepOnce(journal, "k", 60), ttr=2)
    log = tmp_path / "exec.log"
    first = queue_core(settings, "listen", "--timeout", "0.2", exec_log=log)
    try:
        wait_for(lambda: "start k" in read_lines(journal), 20, "the job to start")
        kill_group(first)
        killed_at = time.monotonic()
        second = queue_core(settings, "listen", "--timeout", "0.2", exec_log=log)
        wait_for(lambda: "end k" in read_lines(journal), 30, "the second worker to finish")
        if not queue.capabilities.lease_by_connection:
            # Nothing but the lease can tell the store the worker died: not before it ends.
            assert time.monotonic() - killed_at >= 1.0
        code, _, err = stop(second)
        assert code == 0, err
    finally:
        kill_group(first)
    runs = exec_log(log)
    assert [(job, attempt) for _, job, attempt in runs] == [(job_id, 1), (job_id, 2)]
    assert runs[0][0] != runs[1][0]
    assert read_lines(journal) == ["start k", "start k", "end k"]
    if queue.capabilities.status:
        assert queue.status(job_id) is JobStatus.DONE


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP],
                         ids=lambda s: signal.Signals(s).name)
# One job at a time: the next job waits behind the running one. With several in flight,
# see test_concurrency.py::test_a_stop_signal_lets_the_running_jobs_finish_and_gives_back_the_rest.
@pytest.mark.worker_modes("c1")
def test_a_stop_signal_lets_the_running_job_finish(queue_settings, journal: str,
                                                   sig: int) -> None:
    settings = queue_settings()
    queue = create_queue(settings)
    job_id = queue.push(Sleep(journal, "s", 1.5))
    queue.push(Record(journal, "never"))
    worker = queue_core(settings, "listen", "--timeout", "0.2")
    try:
        wait_for(lambda: "start s" in read_lines(journal), 20, "the job to start")
        code, _, err = stop(worker, sig, timeout=15)
    finally:
        kill_group(worker)
    assert code == 0, err
    assert read_lines(journal) == ["start s", "end s"]
    if queue.capabilities.status:
        assert queue.status(job_id) is JobStatus.DONE


def test_an_idle_worker_stops_within_a_second(queue_settings, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    worker = queue_core(queue_settings(), "listen", "--timeout", "3", ready=ready)
    try:
        wait_for(ready.exists, 20, "the worker to start")
        time.sleep(0.3)
        sent = time.monotonic()
        code, _, err = stop(worker, signal.SIGTERM)
        took = time.monotonic() - sent
    finally:
        kill_group(worker)
    assert code == 0, err
    assert took < 1.0, took


def test_two_workers_run_1000_jobs_exactly_once(queue_settings, journal: str,
                                               tmp_path: Path) -> None:
    settings = queue_settings()
    queue = create_queue(settings)
    log, ready = tmp_path / "exec.log", tmp_path / "ready"
    with workers(settings, 2, "listen", "--timeout", "0.2", exec_log=log,
                 ready=ready) as procs:
        # Push once both are up: a fast driver would drain the jobs before a second
        # interpreter has started, and the test is about two workers sharing them.
        wait_for(lambda: len(read_lines(str(ready))) == 2, 30, "two workers")
        queue.push_many([Record(journal, f"j{index}") for index in range(1000)])
        wait_for(lambda: len(read_lines(journal)) >= 1000, 120, "1,000 jobs", every=0.1)
        time.sleep(0.5)  # a duplicate would show up now
        for process in procs:
            assert stop(process)[0] == 0
    lines = read_lines(journal)
    assert Counter(lines) == Counter(f"j{index}" for index in range(1000))
    runs = exec_log(log)
    assert len(runs) == 1000 and all(attempt == 1 for _, _, attempt in runs)
    per_worker = Counter(pid for pid, _, _ in runs)
    assert len(per_worker) == 2, per_worker  # both took part
    if queue.capabilities.info:
        counts = queue.info()
        assert counts[JobStatus.WAITING] == counts.get(JobStatus.RESERVED, 0) == 0


def test_the_worker_kills_a_job_at_its_ttr_and_goes_on(queue_settings, journal: str) -> None:
    check_the_worker_kills_a_job_at_its_ttr_and_goes_on(queue_settings, journal, None)


@pytest.mark.parametrize("isolate", ["fork", "exec"])
def test_an_isolated_worker_kills_a_job_at_its_ttr_and_goes_on(queue_settings, journal: str,
                                                               isolate: str) -> None:
    check_the_worker_kills_a_job_at_its_ttr_and_goes_on(queue_settings, journal, isolate)


def check_the_worker_kills_a_job_at_its_ttr_and_goes_on(queue_settings, journal: str,
                                                        isolate: str | None) -> None:
    settings = queue_settings()
    queue = create_queue(settings)
    slow = queue.push(Sleep(journal, "slow", 60), ttr=1)
    queue.push(Record(journal, "next"))
    extra = ("--isolate", isolate) if isolate else ()
    worker = queue_core(settings, "listen", "--timeout", "0.2", *extra)
    try:
        started = time.monotonic()
        wait_for(lambda: "next" in read_lines(journal), 30, "the next job")
        took = time.monotonic() - started
        assert worker.poll() is None
        code, _, err = stop(worker)
    finally:
        kill_group(worker)
    assert code == 0
    assert took < 10, took
    if queue.concurrency == 1:
        assert read_lines(journal) == ["start slow", "next"]
    else:  # "next" runs beside the slow job
        assert sorted(read_lines(journal)) == ["next", "start slow"]
    assert "exceeded its ttr of 1s" in err
    if isolate:
        assert "its child process was killed" in err
    if queue.capabilities.status:
        info = queue.get(slow)
        assert info.status is JobStatus.FAILED
        assert info.error.type == "queue_core.errors.JobTimeoutError"


@pytest.mark.needs("status")
@pytest.mark.worker_modes("c1", "threads8")  # async8 starts isolated jobs as threads8 does
@pytest.mark.drivers("file", "redis", "postgresql")  # as test_isolation.py's POOL_DRIVERS
def test_a_job_whose_child_starts_too_slowly_times_out_within_its_lease(
        queue_settings, journal: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every child takes 2.5 s to load the app. The worker starts its children before it
    # takes a job, and a successor as soon as one is killed. A job begun while its child
    # still starts (ttr 1 s + lease grace 1 s) must be killed in time to be reported, not
    # left to come back as a lost run.
    monkeypatch.setenv("QUEUE_TEST_CHILD_START_DELAY", "2.5")
    settings = queue_settings()
    queue = create_queue(settings)
    blockers = [queue.push(Sleep(journal, f"block{i}", 60), ttr=1)
                for i in range(queue.concurrency)]
    late = queue.push(Sleep(journal, "late", 60), ttr=1)
    worker = queue_core(settings, "listen", "--timeout", "0.2", "--isolate", "exec")
    try:
        wait_for(lambda: queue.status(late) is JobStatus.FAILED, 60, "the late job to fail")
        assert worker.poll() is None
        code, _, err = stop(worker)
    finally:
        kill_group(worker)
    assert code == 0, err
    # The blockers had ready children; the late job's child never took it.
    assert sorted(read_lines(journal)) == sorted(f"start block{i}"
                                                 for i in range(len(blockers)))
    for blocker in blockers:
        info = queue.get(blocker)
        assert info.status is JobStatus.FAILED
        assert info.error.type == "queue_core.errors.JobTimeoutError", info.error
    info = queue.get(late)
    assert info.error.type == "queue_core.errors.JobTimeoutError", info.error
    assert "before its child process had started" in info.error.message
    assert "WorkerLostError" not in err and "vanished" not in err, err


# One job at a time: with several in flight, the jobs begun beside the one that kills the
# worker die with it and are charged too (see test_concurrency.py for that count).
@pytest.mark.worker_modes("c1")
@pytest.mark.needs("retry")
def test_a_job_that_kills_its_worker_ends_failed_after_its_attempts(
        queue_settings, journal: str, tmp_path: Path) -> None:
    settings = queue_settings(attempts=2)
    queue = create_queue(settings)
    job_id = queue.push(KillWorker(journal, "kill"), ttr=1)
    queue.push(Record(journal, "after"))
    log = tmp_path / "exec.log"
    deadline = time.monotonic() + 60

    def settled() -> bool:
        # The second fatal run is only judged once its lease has run out and a worker
        # takes the job back; without status, give that time after the last start.
        if queue.capabilities.status:
            return queue.status(job_id) is JobStatus.FAILED
        return "after" in read_lines(journal) and time.monotonic() - last_start > 4

    last_start = time.monotonic()
    while not settled():
        assert time.monotonic() < deadline, read_lines(journal)
        worker = queue_core(settings, "listen", "--timeout", "0.2", exec_log=log)
        starts = count(journal, "start kill")
        try:
            worker.wait(timeout=3)  # the job kills it, or it idles until we look again
        except Exception:
            pass
        finally:
            kill_group(worker)
        if count(journal, "start kill") > starts:
            last_start = time.monotonic()
    assert count(journal, "start kill") == 2
    assert "after" in read_lines(journal)
    assert [attempt for _, job, attempt in exec_log(log) if job == job_id] == [1, 2]
    if queue.capabilities.status:
        info = queue.get(job_id)
        assert info.status is JobStatus.FAILED
        assert info.error.type == "queue_core.errors.WorkerLostError"
