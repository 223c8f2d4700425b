"""A run whose worker was lost: counted as a failed attempt, unless the driver cannot tell
whether it had started at all (an AMQP prefetch), in which case it never ends the job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from queue_core import ExecEvent, Job, Message, Queue
from tests.support.recording import RecordingDriver


@dataclass
class Ok(Job):
    def execute(self, queue: Any) -> str:
        return "ran"


class Losing(RecordingDriver):
    """Hands job 1 to a worker that vanishes, then redelivers it flagged as such."""

    unproven: bool = False

    def reserve(self, timeout: float = 0.0) -> Message | None:
        message = super().reserve(timeout)
        if message is not None and message.attempt > 1:
            message.redelivered = True
            message.may_not_have_started = self.unproven
        return message


def lost_once(unproven: bool, **settings: Any) -> tuple[Queue, Losing, list[ExecEvent]]:
    driver = Losing()
    driver.unproven = unproven
    queue = Queue(driver, **settings)
    errors: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_ERROR, errors.append)
    queue.push(Ok())
    driver.lose("1")
    return queue, driver, errors


def test_a_proven_loss_counts_and_ends_a_job_out_of_attempts() -> None:
    queue, driver, errors = lost_once(unproven=False, attempts=1)
    queue.run()
    assert driver.acked == []
    assert [(job_id, attempt, error.type) for job_id, attempt, error in driver.failed] == [
        ("1", 2, "queue_core.errors.WorkerLostError")]
    assert [(e.attempt, e.retry) for e in errors] == [(1, False)]


def test_an_unproven_loss_is_reported_and_the_job_runs_again_past_its_attempts(
        caplog: pytest.LogCaptureFixture) -> None:
    queue, driver, errors = lost_once(unproven=True, attempts=1, age_limit=1)
    driver.backdate(3600)  # past its age limit as well: still not judged on this loss
    queue.run()
    assert driver.failed == []
    assert driver.acked == [("1", 2)]
    assert [(e.attempt, e.retry, type(e.error).__name__) for e in errors] == [
        (1, True, "WorkerLostError")]
    assert "nothing tells whether it had started" in caplog.text


def test_an_after_error_handler_may_still_fail_a_job_after_an_unproven_loss() -> None:
    queue, driver, _ = lost_once(unproven=True, attempts=1)
    queue.on(Queue.EVENT_AFTER_ERROR, lambda event: setattr(event, "retry", False))
    queue.run()
    assert driver.acked == []
    assert [(job_id, attempt) for job_id, attempt, _ in driver.failed] == [("1", 2)]
