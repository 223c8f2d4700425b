"""Rate limits on every driver that declares them, in this process: jobs held back by a
limit begin later, never charged an attempt, including those that wait so long they go
back to the queue and are fetched again (the driver's ``give_back``)."""

from __future__ import annotations

import time

import pytest

from queue_core import JobStatus, Queue
from queue_core.throttle import HOLD_MAX
from tests.support.jobs import Record, Sleep, read_lines

pytestmark = pytest.mark.needs("rate_limit")


def _attempts(queue: Queue) -> list[int]:
    seen: list[int] = []
    queue.on(Queue.EVENT_BEFORE_EXEC, lambda event: seen.append(event.attempt))
    return seen


def test_a_rate_spaces_the_runs_and_charges_no_attempt(make_queue, journal: str) -> None:
    queue = make_queue(rate="10/s", bucket_size=1)
    attempts = _attempts(queue)
    queue.push_many([Record(journal, f"r{i}") for i in range(6)])
    started = time.monotonic()
    assert queue.run() == 6
    # One token at once, five more at 10 a second.
    assert time.monotonic() - started >= 0.45
    assert sorted(read_lines(journal)) == sorted(f"r{i}" for i in range(6))
    assert attempts == [1] * 6


@pytest.mark.worker_modes("threads8")
def test_a_job_held_past_hold_max_goes_back_uncharged(make_queue, journal: str) -> None:
    queue = make_queue(max_concurrent=1)
    attempts = _attempts(queue)
    seconds = HOLD_MAX + 0.3
    queue.push_many([Sleep(journal, "a", seconds), Sleep(journal, "b", seconds)])
    started = time.monotonic()
    assert queue.run() == 2
    assert time.monotonic() - started >= 2 * seconds - 0.1
    lines = read_lines(journal)
    # One at a time: the second starts after the first ends.
    assert [line.split()[0] for line in lines] == ["start", "end", "start", "end"], lines
    assert attempts == [1, 1]
    if queue.capabilities.info:
        assert queue.info()[JobStatus.RESERVED] == 0
