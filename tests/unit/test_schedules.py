"""Periodic schedules without a server: the settings' checks, the fire times across DST
changes, catch_up, and deduplication between schedulers, all on an injected clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from queue_core import ConfigError, JobStatus, NotSupportedError, Queue, create_queue
from queue_core.scheduler import Scheduler
from tests.support.jobs import Record

UTC = timezone.utc
RECORD = "tests.support.jobs:Record"


class Clock:
    """A clock the test moves."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def schedule(**fields: Any) -> dict[str, Any]:
    return {"name": "s", "job": RECORD, "args": {"journal": "/dev/null", "tag": "t"},
            **fields}


def make(schedules: list[dict[str, Any]], **settings: Any) -> Queue:
    return create_queue({"driver": "memory://", "imports": ["tests.support.jobs"],
                         "schedules": schedules, **settings})


@pytest.fixture
def fired() -> Iterator[Callable[[Queue], list[str]]]:
    """The unique keys of a queue's pushes, in order (each firing's key names it)."""
    made: list[Queue] = []

    def watch(queue: Queue) -> list[str]:
        keys: list[str] = []
        push = queue.push

        def recording(job: Any, *args: Any, **kwargs: Any) -> str | None:
            keys.append(kwargs["unique_key"])
            return push(job, *args, **kwargs)
        queue.push = recording  # type: ignore[method-assign]
        made.append(queue)
        return keys
    yield watch
    for queue in made:
        queue.close()


def fire_times(keys: list[str]) -> list[datetime]:
    return [datetime.fromisoformat(key.split(":", 2)[2]) for key in keys]


@pytest.mark.parametrize(("entry", "named"), [
    ("not a dict", "schedules[0]"),
    ({"job": RECORD, "every": 5}, "schedules[0].name"),
    (schedule(name="bad name!", every=5), "schedules[0].name"),
    (schedule(job="", every=5), "schedules[0].job"),
    (schedule(args=["x"], every=5), "schedules[0].args"),
    (schedule(), "schedules[0]"),
    (schedule(every=5, cron="* * * * *"), "schedules[0]"),
    (schedule(every=0), "schedules[0].every"),
    (schedule(every=float("inf")), "schedules[0].every"),
    (schedule(every=True), "schedules[0].every"),
    (schedule(every=5, timezone="Europe/Paris"), "schedules[0].timezone"),
    (schedule(cron="61 * * * *"), "schedules[0].cron"),
    (schedule(cron="* * *"), "schedules[0].cron"),
    (schedule(cron=""), "schedules[0].cron"),
    (schedule(cron="* * * * *", timezone="Mars/Olympus"), "schedules[0].timezone"),
    (schedule(cron="* * * * *", timezone="../etc"), "schedules[0].timezone"),
    (schedule(every=5, when="now"), "schedules[0]"),
])
def test_a_bad_schedule_is_refused_naming_its_key(entry: Any, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make([entry])
    assert caught.value.key == named, caught.value


def test_schedules_and_catch_up_must_have_their_shape() -> None:
    with pytest.raises(ConfigError) as caught:
        make([schedule(every=5), schedule(every=6)])
    assert caught.value.key == "schedules[1].name"
    with pytest.raises(ConfigError) as caught:
        make("every minute")  # type: ignore[arg-type]
    assert caught.value.key == "schedules"
    for bad, key in (("sometimes", "catch_up"), ({"all": 0}, "catch_up.all"),
                     ({"all": 10**6}, "catch_up.all"), ({"some": 3}, "catch_up")):
        with pytest.raises(ConfigError) as caught:
            make([schedule(every=5)], catch_up=bad)
        assert caught.value.key == key


def test_the_job_is_resolved_through_settings_and_the_registry_at_start() -> None:
    by_name = make([schedule(job="tests.support.jobs.Record", every=5)])
    assert Scheduler(by_name).jobs["s"] is Record
    unknown = make([schedule(job="no.such.Job", every=5)])
    with pytest.raises(ConfigError, match="no registered job type") as caught:
        Scheduler(unknown)
    assert caught.value.key == "schedules[0].job"
    not_a_job = make([schedule(job="os:getcwd", every=5)])
    with pytest.raises(ConfigError, match="not a Job subclass"):
        Scheduler(not_a_job)
    bad_args = make([schedule(args={"nope": 1}, every=5)])
    with pytest.raises(ConfigError) as caught:
        Scheduler(bad_args)
    assert caught.value.key == "schedules[0].args"


def test_a_driver_without_unique_jobs_refuses_a_scheduler() -> None:
    queue = create_queue({"driver": "sync://", "schedules": [schedule(every=5)]})
    with pytest.raises(NotSupportedError, match="the sync driver does not support schedulers"):
        Scheduler(queue)


def test_a_cron_schedule_in_paris_fires_at_the_right_instants_across_both_dst_changes(
        fired: Callable[[Queue], list[str]]) -> None:
    queue = make([schedule(cron="30 2 * * *", timezone="Europe/Paris")])
    keys = fired(queue)
    # Spring: on 29 March 2026 Paris skips from 02:00 to 03:00 (UTC+1 to UTC+2).
    clock = Clock(datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    scheduler = Scheduler(queue, clock=clock)
    while clock.now < datetime(2026, 3, 31, 12, 0, tzinfo=UTC):
        clock.advance(minutes=1)
        scheduler.tick()
    assert fire_times(keys) == [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),  # 02:30 CET
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),   # 02:30 does not exist: 03:00 CEST
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST
        datetime(2026, 3, 31, 0, 30, tzinfo=UTC),
    ]
    # Autumn: on 25 October 2026 02:00 to 03:00 comes twice; 02:30 fires once, the first.
    keys.clear()
    clock = Clock(datetime(2026, 10, 23, 12, 0, tzinfo=UTC))
    scheduler = Scheduler(queue, clock=clock)
    while clock.now < datetime(2026, 10, 26, 12, 0, tzinfo=UTC):
        clock.advance(minutes=1)
        scheduler.tick()
    assert fire_times(keys) == [
        datetime(2026, 10, 24, 0, 30, tzinfo=UTC),  # 02:30 CEST
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # the first 02:30 (CEST), not 01:30 UTC
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),  # 02:30 CET
    ]
    assert all(key.startswith("schedule:s:") for key in keys)


def test_an_hourly_cron_in_new_york_keeps_to_local_hours(
        fired: Callable[[Queue], list[str]]) -> None:
    queue = make([schedule(cron="0 * * * *", timezone="America/New_York")])
    keys = fired(queue)
    # 8 March 2026: New York goes from 02:00 EST straight to 03:00 EDT.
    clock = Clock(datetime(2026, 3, 8, 5, 30, tzinfo=UTC))  # 00:30 EST
    scheduler = Scheduler(queue, clock=clock)
    for _ in range(4 * 60):
        clock.advance(minutes=1)
        scheduler.tick()
    assert fire_times(keys) == [datetime(2026, 3, 8, hour, 0, tzinfo=UTC)
                                for hour in (6, 7, 8, 9)]  # 01:00 EST, 03:00, 04:00, 05:00 EDT


def test_catch_up_none_latest_and_all(fired: Callable[[Queue], list[str]]) -> None:
    start = datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC)
    every_minute = [schedule(every=60)]
    for catch_up, expected in (("none", []), ("latest", [start.replace(second=0)]),
                               ({"all": 3}, [start.replace(second=0) - timedelta(minutes=m)
                                             for m in (2, 1, 0)])):
        queue = make(every_minute, catch_up=catch_up)
        keys = fired(queue)
        clock = Clock(start)
        scheduler = Scheduler(queue, clock=clock)
        scheduler.tick()
        assert fire_times(keys) == expected, catch_up
        clock.advance(seconds=40)  # 12:01:10: the next firing, on time
        scheduler.tick()
        assert fire_times(keys) == [*expected, datetime(2026, 5, 1, 12, 1, tzinfo=UTC)]


def test_firings_missed_while_running_follow_catch_up(
        fired: Callable[[Queue], list[str]]) -> None:
    queue = make([schedule(every=10)], catch_up={"all": 2})
    keys = fired(queue)
    clock = Clock(datetime(2026, 5, 1, 12, 0, 5, tzinfo=UTC))
    scheduler = Scheduler(queue, clock=clock)
    scheduler.tick()
    keys.clear()
    clock.advance(minutes=10)  # the process stalled: 60 firings due, 54 older than a minute
    scheduler.tick()
    times = fire_times(keys)
    # The 2 newest of the missed ones, then the 6 of the last minute, each once.
    assert len(times) == 8 and len(set(times)) == 8
    assert times[-1] == datetime(2026, 5, 1, 12, 10, 0, tzinfo=UTC)
    assert times[0] == datetime(2026, 5, 1, 12, 8, 50, tzinfo=UTC)


def test_schedulers_at_once_store_each_firing_once(fired: Callable[[Queue], list[str]]) -> None:
    queue = make([schedule(every=1)], catch_up="latest")
    clock = Clock(datetime(2026, 5, 1, 12, 0, 0, 500000, tzinfo=UTC))
    schedulers = [Scheduler(queue, clock=clock) for _ in range(3)]
    for _ in range(20):
        clock.advance(seconds=0.5)
        for scheduler in schedulers:
            scheduler.tick()
    assert all(scheduler.pushed >= 10 for scheduler in schedulers)
    # 12:00:00 (the latest at the start) to 12:00:10: eleven firings, one job each.
    assert queue.info()[JobStatus.WAITING] == 11
    queue.close()


def test_a_push_that_fails_is_tried_again_at_the_next_look(
        fired: Callable[[Queue], list[str]]) -> None:
    from queue_core import DriverError
    queue = make([schedule(every=1)])
    clock = Clock(datetime(2026, 5, 1, 12, 0, 0, 500000, tzinfo=UTC))
    scheduler = Scheduler(queue, clock=clock)
    push = queue.push
    failing = [True]

    def flaky(job: Any, *args: Any, **kwargs: Any) -> str | None:
        if failing[0]:
            raise DriverError("the back end is away")
        return push(job, *args, **kwargs)
    queue.push = flaky  # type: ignore[method-assign]
    clock.advance(seconds=2)
    scheduler.tick()
    assert queue.info()[JobStatus.WAITING] == 0
    failing[0] = False
    scheduler.tick()
    assert queue.info()[JobStatus.WAITING] == 2
    queue.close()
