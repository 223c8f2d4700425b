"""keep_completed / keep_failed: true/false, a count, or a dict of max_count and max_age,
checked by the core; limits refused on a driver that cannot trim."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from queue_core import Capabilities, ConfigError, NotSupportedError, Queue, create_queue
from queue_core.consumer import Consumer
from queue_core.model import KEEP_ALL, Retention
from queue_core.retention import TrimPacer, parse_keep
from queue_core.store import Store


@pytest.mark.parametrize(("value", "expected"), [
    (True, (True, KEEP_ALL)),
    (False, (False, KEEP_ALL)),
    (1000, (True, Retention(max_count=1000))),
    ({"max_count": 10_000}, (True, Retention(max_count=10_000))),
    ({"max_age": 86400}, (True, Retention(max_age=86400.0))),
    ({"max_count": 5, "max_age": 0.5}, (True, Retention(max_count=5, max_age=0.5))),
])
def test_accepted_forms(value: Any, expected: tuple[bool, Retention]) -> None:
    assert parse_keep(value, "keep_completed") == expected


@pytest.mark.parametrize(("value", "key", "problem"), [
    (-1, "keep_failed", "at least 1"),
    (0, "keep_failed", "at least 1"),
    (1.5, "keep_failed", "must be true, false, a whole number"),
    ("yes", "keep_failed", "must be true, false, a whole number"),
    (None, "keep_failed", "must be true, false, a whole number"),
    ([10], "keep_failed", "must be true, false, a whole number"),
    ({}, "keep_failed", "empty dict"),
    ({"max_cont": 10}, "keep_failed.max_cont", "unknown key 'max_cont'"),
    ({"max_count": True}, "keep_failed.max_count", "whole number of jobs"),
    ({"max_count": 10.0}, "keep_failed.max_count", "whole number of jobs"),
    ({"max_count": -5}, "keep_failed.max_count", "at least 1"),
    ({"max_count": 10**13}, "keep_failed.max_count", "above the limit"),
    ({"max_age": False}, "keep_failed.max_age", "number of seconds"),
    ({"max_age": "1d"}, "keep_failed.max_age", "number of seconds"),
    ({"max_age": 0}, "keep_failed.max_age", "positive"),
    ({"max_age": -3}, "keep_failed.max_age", "positive"),
    ({"max_age": float("nan")}, "keep_failed.max_age", "number of seconds"),
    ({"max_age": float("inf")}, "keep_failed.max_age", "number of seconds"),
    ({"max_age": 1e12}, "keep_failed.max_age", "above the limit"),
])
def test_bad_values_name_the_key_and_the_problem(value: Any, key: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        create_queue({"driver": "memory://", "keep_failed": value})
    assert caught.value.key == key
    assert key.split(".")[0] in str(caught.value)


def test_the_queue_hands_the_limits_to_its_driver() -> None:
    queue = create_queue({"driver": "memory://", "keep_completed": 10,
                          "keep_failed": {"max_age": 60}})
    assert queue.keep_completed and queue.keep_failed
    assert queue.driver.retention_done == Retention(max_count=10)
    assert queue.driver.retention_failed == Retention(max_age=60.0)
    plain = create_queue({"driver": "memory://", "keep_completed": True})
    assert plain.driver.retention_done == plain.driver.retention_failed == KEEP_ALL


class _Keeper(Store):
    """A driver that keeps finished jobs but cannot limit them."""

    name = "keeper"
    capabilities: ClassVar[Capabilities] = Capabilities(failed_store=True,
                                                         keep_completed=True)

    def open_consumer(self) -> Consumer:
        raise NotImplementedError

    def push(self, payload: bytes, *, ttr: float, delay: float = 0.0,
             priority: int | None = None) -> str:
        raise NotImplementedError


@pytest.mark.parametrize("setting", [
    {"keep_completed": 5}, {"keep_failed": {"max_age": 60}},
    {"keep_failed": {"max_count": 1, "max_age": 1}}])
def test_limits_are_refused_where_the_driver_cannot_trim(setting: dict[str, Any]) -> None:
    with pytest.raises(NotSupportedError,
                       match="the keeper driver does not support limits on kept jobs"):
        Queue(_Keeper(), **setting)


def test_keeping_everything_needs_no_retention_capability() -> None:
    queue = Queue(_Keeper(), keep_completed=True, keep_failed=True)
    assert queue.keep_completed and queue.keep_failed


class _FailedKeeper(_Keeper):
    """A driver that keeps failed jobs only, and limits them (beanstalk, amqp), for at
    most a day."""

    name = "failedkeeper"
    capabilities: ClassVar[Capabilities] = Capabilities(
        failed_store=True, retention=True, max_retention_age=86400.0)


def test_a_driver_that_keeps_failed_jobs_only_limits_them_and_refuses_the_rest() -> None:
    queue = Queue(_FailedKeeper(), keep_failed={"max_count": 10, "max_age": 86400})
    assert queue.driver.retention_failed == Retention(max_count=10, max_age=86400.0)
    assert queue.driver.retention_done == KEEP_ALL
    # keep_completed in any form is about keeping completed jobs, which it does not do:
    # refused as such, never as a limit it could apply.
    for value in (True, 5, {"max_age": 60}, {"max_count": 1, "max_age": 1}):
        with pytest.raises(NotSupportedError, match=(
                r"the failedkeeper driver does not support keeping completed jobs "
                r"\(keep_completed: keep ")):
            Queue(_FailedKeeper(), keep_completed=value)
    with pytest.raises(NotSupportedError, match=r"keep_completed: keep at most 5\)"):
        Queue(_FailedKeeper(), keep_completed=5)
    with pytest.raises(NotSupportedError, match=(
            r"the failedkeeper driver does not support keep_failed.max_age 86401 s: it keeps "
            r"jobs for at most 86400 s")):
        Queue(_FailedKeeper(), keep_failed={"max_age": 86401})
    assert Queue(_FailedKeeper(), keep_failed=False).keep_failed is False


def test_the_pacer_trims_every_tenth_of_max_count_and_after_an_interval() -> None:
    pacer = TrimPacer(Retention(max_count=1000))
    assert pacer.every == 100
    assert not any(pacer.kept() for _ in range(99))
    assert pacer.kept()
    pacer.trimmed()
    assert pacer.pending == 0
    assert TrimPacer(Retention(max_count=5)).kept()  # a small count trims at once
    assert not TrimPacer(KEEP_ALL).kept()
    aged = TrimPacer(Retention(max_age=0.04))
    assert (aged.every, aged.interval) == (100, pytest.approx(0.01))
    # A trim that read a million entries spaces the next ones out: about ten entries read
    # per kept job, at most about 10,000 a second.
    aged.trimmed(1_000_000)
    assert (aged.every, aged.interval) == (100_000, 100.0)
    aged.trimmed(50)
    assert (aged.every, aged.interval) == (100, pytest.approx(0.01))
    big = TrimPacer(Retention(max_count=1_000_000))
    assert big.every == 100_000
