"""The shop's after_error handler, and a settings override for every test of a module."""

from __future__ import annotations

from typing import Any

import pytest
from shop.jobs import SendReceipt
from shop.mail import MailDown

from queue_core import ExecEvent, Queue
from queue_core.testing import drain


@pytest.fixture
def queue_core_settings() -> dict[str, Any]:
    # Every queue_core_queue of this module: a shorter ttr than the default.
    return {"ttr": 30}


def test_after_error_sees_each_failed_attempt(make_test_queue, gateway) -> None:
    seen: list[tuple[int, str, bool]] = []

    def report(event: ExecEvent) -> None:
        seen.append((event.attempt, type(event.error).__name__, event.retry))

    queue = make_test_queue(events={"after_error": report})
    gateway.down = 5
    queue.push(SendReceipt(1, "eve@example.com"))

    drain(queue)

    assert seen == [(1, "MailDown", True), (2, "MailDown", True), (3, "MailDown", False)]


def test_a_handler_can_stop_the_retries(queue_core_queue: Queue, gateway) -> None:
    def give_up_on_outages(event: ExecEvent) -> None:
        if isinstance(event.error, MailDown):
            event.retry = False

    queue_core_queue.on(Queue.EVENT_AFTER_ERROR, give_up_on_outages)
    gateway.down = 1
    queue_core_queue.push(SendReceipt(2, "fay@example.com"))

    result = drain(queue_core_queue)

    assert [run.outcome for run in result.runs] == ["failed"]
    assert queue_core_queue.ttr == 30


@pytest.mark.queue_core(attempts=4)
def test_the_marker_sets_the_queue_settings(queue_core_queue: Queue) -> None:
    assert (queue_core_queue.attempts, queue_core_queue.ttr) == (4, 30)
