"""Delayed jobs: drivers that declare delay."""

from __future__ import annotations

import time

import pytest

from queue_core import InvalidArgumentError, JobStatus, Queue
from tests.support.jobs import Record, read_lines
from tests.support.run import run_until

pytestmark = pytest.mark.needs("delay")


def test_a_delayed_job_waits_its_delay(queue: Queue, journal: str) -> None:
    pushed = time.monotonic()
    job_id = queue.push(Record(journal, "late"), delay=1.2)
    queue.push(Record(journal, "now"))
    if queue.capabilities.status:
        assert queue.status(job_id) is JobStatus.DELAYED
    run_until(queue, lambda: read_lines(journal))
    assert read_lines(journal) == ["now"]
    run_until(queue, lambda: len(read_lines(journal)) == 2, timeout=10)
    waited = time.monotonic() - pushed
    assert read_lines(journal) == ["now", "late"]
    assert 1.1 <= waited < 4, waited


def test_delayed_jobs_become_ready_in_time_order(queue: Queue, journal: str) -> None:
    queue.push(Record(journal, "second"), delay=1.4)
    queue.push(Record(journal, "first"), delay=1.0)
    run_until(queue, lambda: len(read_lines(journal)) == 2, timeout=10)
    assert read_lines(journal) == ["first", "second"]


@pytest.mark.parametrize("delay", [-1, float("nan"), "5", True])
def test_a_bad_delay_is_refused(queue: Queue, journal: str, delay: object) -> None:
    with pytest.raises(InvalidArgumentError, match="delay"):
        queue.push(Record(journal, "x"), delay=delay)  # type: ignore[arg-type]
