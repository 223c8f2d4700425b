"""Several jobs in flight in one worker process: a SIGKILL charges exactly the jobs that had
started, a stop signal lets the running ones finish and gives back the rest, and ttr ends a
job spinning in Python (on a thread, or at concurrency 1 in the main thread) and an async
job awaiting forever while the others finish. Every driver, real worker processes, real
signals; async jobs also as they run at concurrency 1, side by side (async_beside)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from queue_core import ExecEvent, JobStatus, Queue, create_queue
from tests.support.jobs import AwaitForever, Hold, Record, Sleep, Spin, read_lines
from tests.support.procs import kill_group, queue_core, stop, wait_for
from tests.support.run import run_until

pytestmark = [pytest.mark.needs("!runs_at_push", "multiprocess"),
              pytest.mark.worker_modes("threads8", "async8", "async_beside")]


def exec_lines(path: Path) -> list[tuple[str, str, int]]:
    """'<pid> <job id> <attempt>' lines of the exec log (see tests/support/app.py)."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        pid, job_id, attempt = line.split()
        found.append((pid, job_id, int(attempt)))
    return found


def _push_held(queue: Queue, journal: str, tmp_path: Path,
               count: int) -> tuple[Path, list[str | None]]:
    """``count`` Hold jobs, held until the file it returns is removed; their ids."""
    hold = tmp_path / "hold"
    hold.touch()
    return hold, [queue.push(Hold(journal, f"j{index}", str(hold))) for index in range(count)]


@pytest.mark.slow
@pytest.mark.needs("retry", "ttr_lease")
def test_sigkill_with_eight_running_charges_exactly_those_eight(
        queue_settings, journal: str, tmp_path: Path) -> None:
    settings = queue_settings(ttr=3, attempts=3)
    queue = create_queue(settings)
    hold, ids = _push_held(queue, journal, tmp_path, 20)
    exec_log, done_log = tmp_path / "exec.log", tmp_path / "done.log"
    first = queue_core(settings, "listen", "--timeout", "0.2", exec_log=exec_log)
    try:
        wait_for(lambda: len(exec_lines(exec_log)) >= 8, 30, "eight jobs running")
        time.sleep(0.3)  # a ninth start, were there one, would show by now
        kill_group(first)
    finally:
        kill_group(first)
    begun = exec_lines(exec_log)
    assert len(begun) == 8, begun
    assert all(attempt == 1 for _, _, attempt in begun)
    killed = {job_id for _, job_id, _ in begun}
    hold.unlink()

    second = queue_core(settings, "listen", "--timeout", "0.2", exec_log=exec_log,
                        done_log=done_log)
    try:
        wait_for(lambda: done_log.exists() and len(done_log.read_text().split("\n")) > 20,
                 60, "every job done")
        code, _, err = stop(second)
    finally:
        kill_group(second)
    assert code == 0, err
    done = [line.split()[1] for line in done_log.read_text().splitlines()]
    assert sorted(done) == sorted(ids)  # every job, once
    runs = exec_lines(exec_log)[8:]
    attempts = {job_id: attempt for _, job_id, attempt in runs}
    assert len(runs) == 20 and len(attempts) == 20, runs
    # The eight that had started come back as lost runs; no other job is charged.
    assert {job_id for job_id, attempt in attempts.items() if attempt == 2} == killed
    assert all(attempts[job_id] == 1 for job_id in ids if job_id not in killed)


@pytest.mark.needs("retry")
def test_a_stop_signal_lets_the_running_jobs_finish_and_gives_back_the_rest(
        queue_settings, journal: str, tmp_path: Path) -> None:
    settings = queue_settings(attempts=2)
    queue = create_queue(settings)
    ids = [queue.push(Sleep(journal, f"j{index}", 1.0)) for index in range(12)]
    exec_log = tmp_path / "exec.log"
    worker = queue_core(settings, "listen", "--timeout", "0.2", exec_log=exec_log)
    try:
        wait_for(lambda: len(exec_lines(exec_log)) >= 8, 30, "eight jobs running")
        worker.send_signal(signal.SIGTERM)
        code, _, err = stop(worker, timeout=20)
    finally:
        kill_group(worker)
    assert code == 0, err
    lines = read_lines(journal)
    started = [line[6:] for line in lines if line.startswith("start ")]
    ended = [line[4:] for line in lines if line.startswith("end ")]
    assert len(started) == 8 and sorted(ended) == sorted(started), lines
    rest = [job_id for index, job_id in enumerate(ids) if f"j{index}" not in started]
    if queue.capabilities.status:
        # Never begun: back to waiting, uncharged.
        assert all(queue.status(job_id) is JobStatus.WAITING for job_id in rest)
    attempts: dict[str, int] = {}
    queue.on(Queue.EVENT_BEFORE_EXEC, lambda e: attempts.setdefault(e.id, e.attempt))
    run_until(queue, lambda: len(read_lines(journal)) == 24, timeout=30)
    assert sorted(attempts) == sorted(rest) and set(attempts.values()) == {1}, attempts


@pytest.mark.worker_modes("c1")  # the test sets its own concurrency
@pytest.mark.parametrize("concurrency", [8, 1], ids=["threads", "main_thread"])
def test_ttr_ends_a_spinning_thread_job_and_an_async_job_while_the_others_finish(
        make_queue, journal: str, concurrency: int) -> None:
    # At concurrency 1 the synchronous jobs run one at a time in the main thread (the
    # worker's timer interrupts the spinning one) and the async one beside them.
    queue: Queue = make_queue(concurrency=concurrency)
    started: dict[str, float] = {}
    failed: dict[str, tuple[float, BaseException | None]] = {}
    queue.on(Queue.EVENT_BEFORE_EXEC,
             lambda e: started.setdefault(e.job.tag, time.monotonic()))

    def on_fail(event: ExecEvent) -> None:
        failed[event.job.tag] = (time.monotonic(), event.error)
    queue.on(Queue.EVENT_AFTER_FAIL, on_fail)
    queue.push(Spin(journal, "spin"), ttr=2)
    queue.push(AwaitForever(journal, "await"), ttr=2)
    for index in range(6):
        queue.push(Record(journal, f"r{index}"))
    queue.push(Sleep(journal, "sleep", 1.0), ttr=30)
    run_until(queue, lambda: len(failed) == 2 and "end sleep" in read_lines(journal),
              timeout=20, what="both timeouts and the other jobs")
    for tag in ("spin", "await"):
        when, error = failed[tag]
        assert type(error).__name__ == "JobTimeoutError", error
        assert "ttr of 2s" in str(error)
        assert 2.0 <= when - started[tag] <= 3.0, (tag, when - started[tag])
    lines = read_lines(journal)
    assert {f"r{index}" for index in range(6)} <= set(lines)
    assert "end sleep" in lines


@pytest.mark.worker_modes("c1", "threads8", "async8", "async_beside")
@pytest.mark.needs("retry")
def test_a_second_stop_signal_interrupts_the_running_jobs_as_charged_attempts(
        queue_settings, journal: str, tmp_path: Path) -> None:
    settings = queue_settings(attempts=3, backoff=0)
    queue = create_queue(settings)
    running = settings.get("concurrency", settings.get("async_concurrency", 1))
    hold, ids = _push_held(queue, journal, tmp_path, running + 2)
    exec_log = tmp_path / "exec.log"
    worker = queue_core(settings, "listen", "--timeout", "0.2", exec_log=exec_log)
    try:
        wait_for(lambda: len(exec_lines(exec_log)) >= running, 30, "the jobs running")
        worker.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert worker.poll() is None  # the first signal waits for the running jobs
        asked = time.monotonic()
        code, _, err = stop(worker, timeout=15)  # the second
        took = time.monotonic() - asked
    finally:
        kill_group(worker)
    assert code == 0, err
    assert took < 4, (took, err)
    assert "again: interrupting the running jobs" in err
    begun = {job_id for _, job_id, _ in exec_lines(exec_log)}
    assert len(begun) == running
    assert not [line for line in read_lines(journal) if line.startswith("end ")]
    if queue.capabilities.status:
        for job_id in begun:
            info = queue.get(job_id)
            assert info.status in (JobStatus.WAITING, JobStatus.DELAYED), info
            if queue.capabilities.last_error:
                assert info.error is not None and info.error.type == (
                    "queue_core.errors.WorkerLostError"), info
                assert "told to stop at once" in info.error.message
    hold.unlink()
    attempts: dict[str, int] = {}
    queue.on(Queue.EVENT_BEFORE_EXEC, lambda e: attempts.setdefault(e.id, e.attempt))
    run_until(queue, lambda: len(attempts) == len(ids), timeout=30)
    # The interrupted runs were charged; the jobs never begun were not.
    assert {job_id for job_id, attempt in attempts.items() if attempt == 2} == begun
    assert all(attempts[job_id] == 1 for job_id in ids if job_id not in begun)
