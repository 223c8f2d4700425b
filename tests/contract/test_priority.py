"""Priority: lower numbers first, ties in push order; drivers that declare priority."""

from __future__ import annotations

import pytest

from queue_core import InvalidArgumentError, Queue
from tests.support.jobs import Record, read_lines
from tests.support.run import run_until, started_tags

pytestmark = pytest.mark.needs("priority")


def test_lower_priority_numbers_run_first_and_ties_keep_push_order(queue: Queue,
                                                                    journal: str) -> None:
    low, high = queue.capabilities.priority_range
    plan = [("a", 5), ("b", 1), ("c", 3), ("d", 1), ("e", 5), ("f", 2), ("g", low), ("h", 3)]
    started = started_tags(queue)
    for tag, priority in plan:
        queue.push(Record(journal, tag), priority=priority)
    run_until(queue, lambda: len(read_lines(journal)) == len(plan))
    expected = [tag for tag, _ in sorted(plan, key=lambda item: item[1])]
    assert started == expected
    assert sorted(read_lines(journal)) == sorted(expected)


def test_priority_applies_to_push_many(queue: Queue, journal: str) -> None:
    started = started_tags(queue)
    queue.push_many([Record(journal, "later")], priority=5)
    queue.push_many([Record(journal, "sooner")], priority=1)
    run_until(queue, lambda: len(read_lines(journal)) == 2)
    assert started == ["sooner", "later"]


def test_a_priority_out_of_range_is_refused(queue: Queue, journal: str) -> None:
    low, high = queue.capabilities.priority_range
    for bad in (low - 1, high + 1):
        with pytest.raises(InvalidArgumentError, match="out of range"):
            queue.push(Record(journal, "x"), priority=bad)
    with pytest.raises(InvalidArgumentError, match="whole number"):
        queue.push(Record(journal, "x"), priority=1.5)  # type: ignore[arg-type]
