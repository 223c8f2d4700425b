"""Rate limit settings: App Engine's forms of ``rate``, ``bucket_size`` and
``max_concurrent``, each bad value a ConfigError naming its key (or the job class), and
the token bucket and slots of queue_core.limits on a clock of the test's own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from queue_core import ConfigError, Job, create_queue
from queue_core.limits import (
    DEFAULT_BUCKET_SIZE,
    SLOT_POLL,
    Bucket,
    Limit,
    Want,
    job_limit,
    parse_limit,
    parse_rate,
    take_tokens,
)


@pytest.mark.parametrize(("text", "per_second"), [
    ("20/s", 20.0), ("100/m", 100 / 60), ("5000/h", 5000 / 3600), ("2/d", 2 / 86400),
    ("1.5/s", 1.5), (" 3 / s ", 3.0), (20, 20.0), (0.5, 0.5), ("1000000/s", 1e6)])
def test_rates_in_app_engine_forms(text: Any, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("bad", ["20", "20/x", "fast", "0/s", "-1/s", 0, -3, True,
                                 float("inf"), float("nan"), [20], "20/s/s"])
def test_a_bad_rate_names_the_key(bad: Any) -> None:
    with pytest.raises(ConfigError, match="rate") as raised:
        create_queue({"driver": "memory://", "rate": bad})
    assert raised.value.key == "rate"


@pytest.mark.parametrize(("settings", "key"), [
    ({"rate": "1/s", "bucket_size": 0}, "bucket_size"),
    ({"rate": "1/s", "bucket_size": 1.5}, "bucket_size"),
    ({"rate": "1/s", "bucket_size": True}, "bucket_size"),
    ({"rate": "1/s", "bucket_size": "5"}, "bucket_size"),
    ({"bucket_size": 5}, "bucket_size"),
    ({"max_concurrent": 0}, "max_concurrent"),
    ({"max_concurrent": 2.0}, "max_concurrent"),
    ({"max_concurrent": -1}, "max_concurrent"),
])
def test_bad_bucket_size_and_max_concurrent_name_the_key(settings: dict[str, Any],
                                                          key: str) -> None:
    with pytest.raises(ConfigError, match=key) as raised:
        create_queue({"driver": "memory://", **settings})
    assert raised.value.key == key


def test_the_settings_as_given() -> None:
    queue = create_queue({"driver": "memory://", "rate": "20/s", "bucket_size": 1,
                          "max_concurrent": 3})
    assert queue.limit == Limit("queue", 20.0, 1, 3)
    alone = create_queue({"driver": "memory://", "rate": "5/m"})
    assert alone.limit is not None and alone.limit.bucket_size == DEFAULT_BUCKET_SIZE == 5
    # Without bucket_size the burst is a fifth of a second's rate, from 5 to 500.
    for rate, burst in (("20/s", 5), ("26/s", 6), ("100/s", 20), ("1000/s", 200),
                        ("1000000/s", 500), (2500.0, 500)):
        limit = create_queue({"driver": "memory://", "rate": rate}).limit
        assert limit is not None and limit.bucket_size == burst, (rate, limit)
    assert create_queue({"driver": "memory://"}).limit is None
    assert parse_limit("x", None, None, 2) == Limit("x", None, DEFAULT_BUCKET_SIZE, 2)


def test_job_class_limits_name_the_class() -> None:
    class Fine(Job, abstract=True):
        rate = "10/m"
        bucket_size = 2

        def execute(self, queue: Any) -> None: ...

    class Fast(Job, abstract=True):
        rate = "fast"

        def execute(self, queue: Any) -> None: ...

    class Crowd(Job, abstract=True):
        max_concurrent = 0

        def execute(self, queue: Any) -> None: ...

    found = job_limit(Fine)
    assert found is not None and found.rate == pytest.approx(10 / 60) and found.bucket_size == 2
    assert found.name.startswith("job:")
    with pytest.raises(ConfigError, match=r"Fast\.rate") as raised:
        job_limit(Fast)
    assert raised.value.key is not None and raised.value.key.endswith("Fast.rate")
    with pytest.raises(ConfigError, match=r"Crowd\.max_concurrent"):
        job_limit(Crowd)


def test_a_dataclass_field_named_rate_is_data_not_a_limit() -> None:
    @dataclass
    class Convert(Job, abstract=True):
        rate: float = 1.25

        def execute(self, queue: Any) -> None: ...

    assert job_limit(Convert) is None


def _take(buckets: dict[str, Bucket], limits: list[Limit], count: int, now: float,
          lease: float = 10.0) -> tuple[list[bool], float]:
    wants = [Want(tuple(range(len(limits))), f"s{now}.{i}", lease) for i in range(count)]
    for limit in limits:
        buckets.setdefault(limit.name, Bucket())
    return take_tokens(buckets, limits, wants, now)


def test_a_bucket_starts_full_then_refills_at_the_rate() -> None:
    limit = Limit("q", 10.0, 3)
    buckets: dict[str, Bucket] = {}
    granted, wait = _take(buckets, [limit], 5, now=100.0)
    assert granted == [True, True, True, False, False]
    assert wait == pytest.approx(0.1)
    granted, wait = _take(buckets, [limit], 2, now=100.05)
    assert granted == [False, False] and wait == pytest.approx(0.05)
    granted, _ = _take(buckets, [limit], 2, now=100.101)
    assert granted == [True, False]
    # Left alone for long, it holds no more than its size.
    granted, _ = _take(buckets, [limit], 10, now=1000.0)
    assert granted.count(True) == 3


def test_a_clock_behind_the_last_call_refills_nothing() -> None:
    limit = Limit("q", 10.0, 1)
    buckets: dict[str, Bucket] = {}
    assert _take(buckets, [limit], 1, now=50.0)[0] == [True]
    assert _take(buckets, [limit], 1, now=40.0)[0] == [False]
    assert _take(buckets, [limit], 1, now=50.1)[0] == [True]


def test_slots_are_held_until_released_or_their_lease_ends() -> None:
    limit = Limit("q", None, 5, 2)
    buckets: dict[str, Bucket] = {}
    granted, wait = _take(buckets, [limit], 3, now=0.0, lease=30.0)
    assert granted == [True, True, False] and wait == pytest.approx(SLOT_POLL)
    held = list(buckets["q"].slots)
    del buckets["q"].slots[held[0]]  # one run settled
    assert _take(buckets, [limit], 2, now=1.0, lease=30.0)[0] == [True, False]
    # A worker killed with its slots: they go when their lease ends.
    assert _take(buckets, [limit], 2, now=30.5, lease=30.0)[0] == [True, False]


def test_a_want_takes_from_every_limit_or_from_none() -> None:
    queue_limit, job = Limit("queue", 100.0, 1), Limit("job:x", None, 5, 1)
    buckets = {"queue": Bucket(), "job:x": Bucket()}
    wants = [Want((0, 1), "a", 5.0), Want((0, 1), "b", 5.0), Want((0,), "c", 5.0)]
    granted, _ = take_tokens(buckets, [queue_limit, job], wants, 0.0)
    # b finds no queue token; c neither: b took nothing from the job's slots.
    assert granted == [True, False, False]
    assert list(buckets["job:x"].slots) == ["a"]


def test_a_damaged_stored_bucket_reads_as_a_new_one() -> None:
    for data in (None, [], {"tokens": "x", "at": 1}, {"tokens": float("nan"), "at": 0},
                 {"tokens": 1, "at": 2, "slots": "no"}):
        bucket = Bucket.from_data(data)
        assert bucket.tokens < 0 or bucket.slots == {}
    assert Bucket.from_data({"tokens": 1, "at": 2, "slots": {"a": 3, "b": "x"}}).slots == {
        "a": 3.0}
