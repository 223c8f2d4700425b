"""queue_core.testing's helpers on real queues: drain's backoff modes and its bounds, the
memory driver's movable clock, and what the look-ups decode (through the registry only)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from queue_core import Backoff, ExecEvent, JobStatus, NotSupportedError, Queue, RetryableJob
from queue_core.testing import (
    DrainError,
    assert_failed,
    drain,
    failed_jobs,
    pushed,
    queue_for_test,
)


class Flaky(RetryableJob):
    """Fails its first ``fails`` runs (counted per id, across runs), then returns."""

    runs: ClassVar[dict[str, int]] = {}
    backoff = Backoff.exponential(60)

    def __init__(self, key: str, fails: int) -> None:
        self.key, self.fails = key, fails

    def execute(self, queue: Any) -> str:
        Flaky.runs[self.key] = Flaky.runs.get(self.key, 0) + 1
        if Flaky.runs[self.key] <= self.fails:
            raise ConnectionError(f"down ({Flaky.runs[self.key]})")
        return "sent"

    def can_retry(self, attempt: int, error: BaseException) -> bool:
        return attempt < 3


@dataclass
class Quick(RetryableJob):
    key: str
    backoff = 0.2

    def execute(self, queue: Any) -> None:
        Flaky.runs[self.key] = Flaky.runs.get(self.key, 0) + 1
        if Flaky.runs[self.key] == 1:
            raise ConnectionError("once")


@pytest.fixture
def memory_queue() -> Iterator[Queue]:
    queue = queue_for_test()
    yield queue
    queue.close()


def test_skip_runs_retries_at_once_on_a_file_queue(tmp_path: Path) -> None:
    with queue_for_test("file", directory=tmp_path) as queue:
        job_id = queue.push(Flaky("file", fails=2))
        result = drain(queue)
        assert [(r.attempt, r.outcome, r.delay) for r in result.runs] == [
            (1, "retried", 60), (2, "retried", 120), (3, "done", 0)]
        assert queue.status(job_id) is JobStatus.DONE
        with pytest.raises(NotSupportedError, match="the file driver has none"):
            drain(queue, backoff="travel")


def test_travel_moves_only_the_memory_store_clock(memory_queue: Queue) -> None:
    job_id = memory_queue.push(Flaky("travel", fails=0), delay=3600)
    assert drain(memory_queue).delayed == 1
    driver: Any = memory_queue.driver
    before = driver.now()
    driver.advance(3599)
    assert memory_queue.status(job_id) is JobStatus.DELAYED
    result = drain(memory_queue, backoff="travel")
    assert [r.outcome for r in result.runs] == ["done"]
    assert 0 < result.travelled <= 1
    assert driver.now() - before >= 3599   # as far as the job's time, 3600 s from its push
    with pytest.raises(ValueError, match="advance takes seconds >= 0"):
        driver.advance(-1)


def test_real_waits_and_gives_up_at_its_timeout() -> None:
    with queue_for_test(attempts=2) as queue:
        queue.push(Quick("real"))
        result = drain(queue, backoff="real")
        assert [(r.outcome, r.delay) for r in result.runs] == [("retried", 0.2), ("done", 0)]
        queue.push(Flaky("late", fails=1))
        with pytest.raises(DrainError, match=r"waited 0.1s and 1 jobs are still delayed"):
            drain(queue, backoff="real", timeout=0.1)


def test_handlers_decide_before_drain_records(memory_queue: Queue) -> None:
    def decide(event: ExecEvent) -> None:
        event.delay = 5 if event.attempt == 1 else -1   # -1: fail now

    memory_queue.on(Queue.EVENT_AFTER_ERROR, decide)
    memory_queue.push(Flaky("handled", fails=9))
    result = drain(memory_queue)
    assert [(r.attempt, r.outcome, r.delay) for r in result.runs] == [
        (1, "retried", 5), (2, "failed", 0)]
    assert (result.retried, result.failed) == (1, 1)
    assert memory_queue.has_handlers(Queue.EVENT_AFTER_EXEC) is False   # drain detached


def test_payloads_are_decoded_through_the_registry_only(memory_queue: Queue) -> None:
    unregistered = "tests.testing.not_imported_anywhere.Job"
    memory_queue.driver.push(b'{"job":"%s","args":{}}' % unregistered.encode(), ttr=60)
    memory_queue.push(Flaky("kept", fails=0), delay=60)
    assert [job.key for job in pushed(memory_queue, Flaky)] == ["kept"]
    result = drain(memory_queue)
    assert [(r.job, r.outcome) for r in result.runs] == [(None, "failed")]
    [failed] = failed_jobs(memory_queue)
    assert failed.job is None and failed.error is not None
    assert unregistered in failed.error.message
    assert "tests.testing.not_imported_anywhere" not in sys.modules
    assert_failed(memory_queue, error="SerializationError", match="not_imported_anywhere")
