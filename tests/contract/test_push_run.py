"""Push, run, order and payloads: every driver."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from queue_core import ExecEvent, PushEvent, Queue, SerializationError
from tests.support.jobs import Noop, Payload, Place, Record, Shade, Typed, read_lines
from tests.support.run import run_until, started_tags


def test_push_returns_an_id_and_run_executes_the_job(queue: Queue, journal: str) -> None:
    job_id = queue.push(Record(journal, "a"))
    assert isinstance(job_id, str) and job_id
    run_until(queue, lambda: read_lines(journal))
    assert read_lines(journal) == ["a"]


def test_ids_are_unique(queue: Queue) -> None:
    ids = [queue.push(Noop()) for _ in range(50)]
    assert len(set(ids)) == 50


def test_jobs_run_in_push_order(queue: Queue, journal: str) -> None:
    started = started_tags(queue)
    for index in range(10):
        queue.push(Record(journal, f"j{index}"))
    run_until(queue, lambda: len(read_lines(journal)) == 10)
    assert started == [f"j{index}" for index in range(10)]
    assert sorted(read_lines(journal)) == sorted(started)


@pytest.mark.needs("!runs_at_push")
def test_run_returns_how_many_jobs_it_processed(queue: Queue, journal: str) -> None:
    assert queue.run() == 0
    for index in range(3):
        queue.push(Record(journal, f"j{index}"))
    assert queue.run() == 3
    assert queue.run() == 0


def test_push_many_queues_every_job_in_order(queue: Queue, journal: str) -> None:
    started = started_tags(queue)
    ids = queue.push_many([Record(journal, f"m{index}") for index in range(20)])
    assert len(ids) == 20 and len(set(ids)) == 20 and all(ids)
    run_until(queue, lambda: len(read_lines(journal)) == 20)
    assert started == [f"m{index}" for index in range(20)]
    assert sorted(read_lines(journal)) == sorted(started)


def test_payload_values_survive_the_round_trip(queue: Queue) -> None:
    values = {"int": 7, "float": 2.5, "str": "héllo ✓", "none": None, "bool": True,
              "list": [1, "two", [3]], "nested": {"a": {"b": [None, False]}},
              "big": "x" * 100_000}
    seen: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_EXEC, seen.append)
    queue.push(Payload(values))
    run_until(queue, lambda: seen)
    assert seen[0].result == values


def test_an_unserialisable_job_raises_and_writes_nothing(queue: Queue, journal: str) -> None:
    with pytest.raises(SerializationError, match="'data'"):
        queue.push(Record(journal, "bad", data=object()))
    with pytest.raises(SerializationError):
        queue.push_many([Record(journal, "fine"), Record(journal, "bad", data={1j})])
    queue.push(Record(journal, "after"))
    run_until(queue, lambda: read_lines(journal))
    queue.run()
    assert read_lines(journal) == ["after"]


def test_before_push_handled_cancels_the_push(queue: Queue, journal: str) -> None:
    def veto(event: PushEvent) -> None:
        event.handled = isinstance(event.job, Record) and event.job.tag == "no"

    queue.on(Queue.EVENT_BEFORE_PUSH, veto)
    assert queue.push(Record(journal, "no")) is None
    ids = queue.push_many([Record(journal, "yes"), Record(journal, "no")])
    assert ids[0] and ids[1] is None
    run_until(queue, lambda: read_lines(journal))
    queue.run()
    assert read_lines(journal) == ["yes"]


def test_after_push_sees_the_id(queue: Queue, journal: str) -> None:
    seen: list[PushEvent] = []
    queue.on(Queue.EVENT_AFTER_PUSH, seen.append)
    job_id = queue.push(Record(journal, "a"))
    assert [event.id for event in seen] == [job_id]


def test_rich_field_types_come_back_as_they_were_pushed(queue: Queue, journal: str) -> None:
    job = Typed(journal, dt.datetime(2026, 12, 2, 7, 40, 0, 5, tzinfo=ZoneInfo("Asia/Tokyo")),
                dt.date(2024, 2, 29), dt.timedelta(days=1, microseconds=1), uuid.UUID(int=42),
                Decimal("0.10"), Shade.DARK, b"\x00\xfe", (1, "one"), {"x"},
                Place("home", dt.date(1999, 1, 1)))
    queue.push(job)
    run_until(queue, lambda: len(read_lines(journal)) == 10)
    expected = [f"{name} {type(value).__name__} {value!r}"
                for name, value in sorted(vars(job).items()) if name != "journal"]
    assert read_lines(journal) == expected
