"""Every row of DESIGN.md's "Who decides what": each step replaces the one before.

| what         | queue setting      | job          | push argument   | event (last word)     |
| ttr          | ttr                | get_ttr()    | push(ttr=)      | before_push event.ttr |
| retry or not | attempts,age_limit | can_retry()  | push(attempts=) | after_error .retry    |
| retry delay  | backoff            | backoff attr | push(backoff=)  | after_error .delay    |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from queue_core import Backoff, ExecEvent, Job, PushEvent, Queue, RetryableJob
from tests.support.recording import RecordingDriver


@dataclass
class Boom(Job):
    def execute(self, queue: Any) -> None:
        raise RuntimeError("boom")


@dataclass
class TimedJob(RetryableJob):
    ttr: float | None = None

    def execute(self, queue: Any) -> None:
        return None

    def get_ttr(self) -> float | None:
        return self.ttr


@dataclass
class DecidingJob(RetryableJob):
    until: int | None = None

    def execute(self, queue: Any) -> None:
        raise RuntimeError("boom")

    def can_retry(self, attempt: int, error: BaseException) -> bool | None:
        return None if self.until is None else attempt < self.until


@dataclass
class ClassBackoffJob(Job):
    backoff = Backoff.fixed(7)

    def execute(self, queue: Any) -> None:
        raise RuntimeError("boom")


def make(**settings: Any) -> tuple[Queue, RecordingDriver]:
    driver = RecordingDriver()
    return Queue(driver, **settings), driver


# -- ttr ---------------------------------------------------------------------------

def test_ttr_queue_setting() -> None:
    queue, driver = make(ttr=40)
    queue.push(TimedJob())
    assert driver.pushed[-1].ttr == 40


def test_ttr_job_replaces_queue() -> None:
    queue, driver = make(ttr=40)
    queue.push(TimedJob(ttr=15))
    assert driver.pushed[-1].ttr == 15


def test_ttr_job_returning_none_keeps_the_queue_setting() -> None:
    queue, driver = make(ttr=40)
    queue.push(TimedJob(ttr=None))
    assert driver.pushed[-1].ttr == 40


def test_ttr_push_replaces_job() -> None:
    queue, driver = make(ttr=40)
    queue.push(TimedJob(ttr=15), ttr=9)
    assert driver.pushed[-1].ttr == 9


def test_ttr_before_push_event_has_the_last_word() -> None:
    queue, driver = make(ttr=40)
    seen: list[float] = []

    def handler(event: PushEvent) -> None:
        seen.append(event.ttr)
        event.ttr = 3
    queue.on(Queue.EVENT_BEFORE_PUSH, handler)
    queue.push(TimedJob(ttr=15), ttr=9)
    assert seen == [9] and driver.pushed[-1].ttr == 3


def test_before_push_also_sets_delay_and_priority() -> None:
    queue, driver = make()

    def handler(event: PushEvent) -> None:
        event.delay, event.priority = 12, 4
    queue.on(Queue.EVENT_BEFORE_PUSH, handler)
    queue.push(TimedJob())
    assert (driver.pushed[-1].delay, driver.pushed[-1].priority) == (12, 4)


@pytest.mark.parametrize("bad", [0, -1, "soon", float("inf")])
def test_a_bad_ttr_from_any_step_is_refused(bad: Any) -> None:
    from queue_core import InvalidArgumentError
    queue, _ = make()
    with pytest.raises(InvalidArgumentError, match="get_ttr"):
        queue.push(TimedJob(ttr=bad))
    with pytest.raises(InvalidArgumentError, match="ttr"):
        queue.push(TimedJob(), ttr=bad)


# -- retry or not ------------------------------------------------------------------

def runs(queue: Queue, driver: RecordingDriver) -> int:
    queue.run()
    return len(driver.released) + len(driver.failed) + len(driver.acked)


def test_retry_queue_attempts() -> None:
    queue, driver = make(attempts=3)
    queue.push(Boom())
    assert runs(queue, driver) == 3
    assert [attempt for _, attempt, _ in driver.failed] == [3]


def test_retry_queue_age_limit_with_attempts_exhausted() -> None:
    queue, driver = make(attempts=1, age_limit=3600)
    queue.push(DecidingJob(), attempts=None)
    driver.backdate(0)
    # attempts=None per push: only the age decides; young, so it keeps going. Stop it
    # with the handler after a few runs to keep the test finite.
    queue.on(Queue.EVENT_AFTER_ERROR, lambda e: setattr(e, "retry", e.retry and e.attempt < 4))
    assert runs(queue, driver) == 4


def test_retry_age_limit_exceeded_and_attempts_exceeded_stops() -> None:
    queue, driver = make(attempts=2, age_limit=10)
    queue.push(Boom())
    driver.backdate(60)
    assert runs(queue, driver) == 2


def test_retry_age_limit_young_keeps_retrying_past_attempts() -> None:
    queue, driver = make(attempts=2, age_limit=3600)
    queue.push(Boom())
    queue.on(Queue.EVENT_AFTER_ERROR, lambda e: setattr(e, "retry", e.retry and e.attempt < 5))
    assert runs(queue, driver) == 5


def test_retry_push_attempts_replaces_the_queue_setting() -> None:
    queue, driver = make(attempts=1)
    queue.push(Boom(), attempts=4)
    assert runs(queue, driver) == 4


def test_retry_job_can_retry_replaces_attempts() -> None:
    queue, driver = make(attempts=10)
    queue.push(DecidingJob(until=2))
    assert runs(queue, driver) == 2


def test_retry_job_can_retry_replaces_push_attempts_too() -> None:
    queue, driver = make(attempts=1)
    queue.push(DecidingJob(until=3), attempts=10)
    assert runs(queue, driver) == 3


def test_retry_job_can_retry_none_keeps_the_limits() -> None:
    queue, driver = make(attempts=3)
    queue.push(DecidingJob(until=None))
    assert runs(queue, driver) == 3


def test_retry_after_error_has_the_last_word() -> None:
    queue, driver = make(attempts=1)
    decisions: list[bool] = []

    def handler(event: ExecEvent) -> None:
        decisions.append(event.retry)
        event.retry = event.attempt < 2
    queue.on(Queue.EVENT_AFTER_ERROR, handler)
    queue.push(DecidingJob(until=5))
    assert runs(queue, driver) == 2
    assert decisions == [True, True]


def test_can_retry_that_raises_falls_back_to_the_limits(caplog) -> None:
    @dataclass
    class Broken(RetryableJob):
        def execute(self, queue: Any) -> None:
            raise RuntimeError("boom")

        def can_retry(self, attempt: int, error: BaseException) -> bool:
            raise KeyError("oops")
    queue, driver = make(attempts=2)
    queue.push(Broken())
    assert runs(queue, driver) == 2
    assert "can_retry raised" in caplog.text


# -- delay before retry ------------------------------------------------------------

def test_delay_queue_backoff() -> None:
    queue, driver = make(attempts=4, backoff=Backoff.exponential(2))
    queue.push(Boom())
    queue.run()
    assert driver.delays() == [2, 4, 8]


def test_delay_default_is_at_once() -> None:
    queue, driver = make(attempts=3)
    queue.push(Boom())
    queue.run()
    assert driver.delays() == [0, 0]


def test_delay_job_backoff_attribute_replaces_queue() -> None:
    queue, driver = make(attempts=3, backoff=100)
    queue.push(ClassBackoffJob())
    queue.run()
    assert driver.delays() == [7, 7]


def test_delay_push_backoff_replaces_job() -> None:
    queue, driver = make(attempts=3, backoff=100)
    queue.push(ClassBackoffJob(), backoff={"type": "exponential", "delay": 1})
    queue.run()
    assert driver.delays() == [1, 2]


def test_delay_push_backoff_refuses_a_custom_callable() -> None:
    from queue_core import InvalidArgumentError
    queue, _ = make(attempts=3)
    with pytest.raises(InvalidArgumentError, match="cannot travel with one job"):
        queue.push(Boom(), backoff=lambda attempt, error, job: 1)


def test_delay_after_error_has_the_last_word() -> None:
    queue, driver = make(attempts=3, backoff=100)
    seen: list[float] = []

    def handler(event: ExecEvent) -> None:
        seen.append(event.delay)
        event.delay = 0.25
    queue.on(Queue.EVENT_AFTER_ERROR, handler)
    queue.push(ClassBackoffJob(), backoff=50)
    queue.run()
    assert seen == [50, 50, 0] and driver.delays() == [0.25, 0.25]


def test_after_error_delay_of_minus_one_gives_up() -> None:
    queue, driver = make(attempts=5)
    queue.on(Queue.EVENT_AFTER_ERROR, lambda e: setattr(e, "delay", -1))
    queue.push(Boom())
    assert runs(queue, driver) == 1 and len(driver.failed) == 1


def test_the_backoff_sees_the_attempt_the_error_and_the_job() -> None:
    calls: list[tuple[int, str, str]] = []

    def custom(attempt: int, error: BaseException | None, job: Any) -> float:
        calls.append((attempt, str(error), type(job).__name__))
        return attempt
    queue, driver = make(attempts=3, backoff=custom)
    queue.push(Boom())
    queue.run()
    assert calls == [(1, "boom", "Boom"), (2, "boom", "Boom")]
    assert driver.delays() == [1, 2]
