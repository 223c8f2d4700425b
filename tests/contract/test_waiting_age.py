"""oldest_waiting_age(): how long the job waiting longest has waited, on drivers that
declare waiting_age; the others refuse it."""

from __future__ import annotations

import time

import pytest

from queue_core import NotSupportedError, Queue
from tests.support.jobs import Record, read_lines
from tests.support.run import run_until


@pytest.mark.needs("waiting_age")
def test_no_waiting_job_is_none(queue: Queue) -> None:
    assert queue.oldest_waiting_age() is None


@pytest.mark.needs("waiting_age", "priority", "!runs_at_push")
def test_the_age_is_the_first_pushed_whatever_its_priority(queue: Queue, journal: str) -> None:
    low, high = queue.capabilities.priority_range
    before = time.time()
    queue.push(Record(journal, "old"), priority=high)  # runs last
    time.sleep(0.5)
    queue.push_many([Record(journal, f"new{i}") for i in range(3)], priority=low)
    for _ in range(3):
        queue.push(Record(journal, "between"), priority=(low + high) // 2)
    age = queue.oldest_waiting_age()
    assert age is not None
    assert 0.5 <= age <= time.time() - before + 0.05, age
    run_until(queue, lambda: len(read_lines(journal)) == 7)
    assert queue.oldest_waiting_age() is None


@pytest.mark.needs("waiting_age", "!runs_at_push")
def test_the_age_grows_while_the_job_waits(queue: Queue, journal: str) -> None:
    queue.push(Record(journal, "a"))
    first = queue.oldest_waiting_age()
    time.sleep(0.3)
    later = queue.oldest_waiting_age()
    assert first is not None and later is not None
    assert later - first >= 0.25, (first, later)


@pytest.mark.needs("!waiting_age")
def test_a_driver_without_it_refuses(queue: Queue) -> None:
    with pytest.raises(NotSupportedError, match=queue.driver.name):
        queue.oldest_waiting_age()
