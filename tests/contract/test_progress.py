"""self.progress(fraction, message) from inside a job: stored by the driver, throttled, the
last value stored before the outcome, shown by get(); what is read back is checked."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import pytest

from queue_core import JobStatus, Progress
from tests.support.jobs import AsyncProgressing, Progressing, count
from tests.support.run import run_until

pytestmark = pytest.mark.needs("progress", "status", "keep_completed")


@pytest.mark.worker_modes("c1", "threads8", "async8")
def test_the_last_progress_is_stored_before_the_outcome(make_queue, journal: str) -> None:
    queue = make_queue(keep_completed=True)
    job_id = queue.push(Progressing(journal, "p", steps=400))
    run_until(queue, lambda: count(journal, "end p"))
    info = queue.get(job_id)
    assert info.status is JobStatus.DONE
    assert info.progress is not None
    assert (info.progress.fraction, info.progress.message) == (1.0, "step 400")
    assert abs(info.progress.at - time.time()) < 60


@pytest.mark.worker_modes("c1")
def test_progress_in_a_tight_loop_is_throttled(make_queue, journal: str) -> None:
    queue = make_queue(keep_completed=True)
    writes: list[float] = []
    original = queue.driver.set_progress

    def counted(job_id: str, value: Progress) -> None:
        writes.append(value.fraction)
        original(job_id, value)

    queue.driver.set_progress = counted  # type: ignore[method-assign]
    started = time.monotonic()
    job_id = queue.push(Progressing(journal, "tight", steps=5000))
    run_until(queue, lambda: count(journal, "end tight"))
    took = time.monotonic() - started
    # One write at once, then at most one per half second, and the last at the end.
    assert len(writes) <= 2 + took / 0.5, (len(writes), took)
    assert writes[-1] == 1.0
    assert queue.get(job_id).progress.fraction == 1.0


@pytest.mark.worker_modes("c1", "threads8")
@pytest.mark.needs("!runs_at_push")
def test_progress_shows_while_the_job_runs(make_queue, journal: str, tmp_path: Path) -> None:
    queue = make_queue(keep_completed=True)
    hold = tmp_path / "hold"
    hold.touch()
    job_id = queue.push(Progressing(journal, "held", steps=4, hold=str(hold)))
    worker = queue.worker(handle_signals=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        end = time.monotonic() + 15
        while True:
            info = queue.get(job_id)
            if info.progress is not None and info.progress.fraction == 1.0:
                break
            assert time.monotonic() < end, info
            time.sleep(0.05)
        assert info.status is JobStatus.RESERVED
        assert info.progress.message == "step 4"
    finally:
        hold.unlink()
        thread.join(timeout=30)
    assert queue.status(job_id) is JobStatus.DONE


@pytest.mark.worker_modes("c1")
def test_an_async_job_reports_progress(make_queue, journal: str) -> None:
    queue = make_queue(keep_completed=True)
    job_id = queue.push(AsyncProgressing(journal, "a"))
    run_until(queue, lambda: count(journal, "end a"))
    progress = queue.get(job_id).progress
    assert progress is not None and (progress.fraction, progress.message) == (0.75, "async")


@pytest.mark.worker_modes("c1")
@pytest.mark.needs("!runs_at_push")
def test_a_damaged_stored_progress_reads_as_none(make_queue, journal: str,
                                                 tmp_path: Path) -> None:
    queue = make_queue(keep_completed=True)
    hold = tmp_path / "hold"
    hold.touch()
    job_id = queue.push(Progressing(journal, "bad", steps=1, hold=str(hold)))
    worker = queue.worker(handle_signals=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        end = time.monotonic() + 15
        while queue.get(job_id).progress is None:
            assert time.monotonic() < end
            time.sleep(0.05)
        # Stored as the drivers store it, but holding no usable fraction: a lookup
        # ignores it rather than fail or show it.
        queue.driver.set_progress(job_id, Progress(math.nan, "x", time.time()))
        info = queue.get(job_id)
        assert info.status is JobStatus.RESERVED
        assert info.progress is None
    finally:
        hold.unlink()
        thread.join(timeout=30)
