"""Tests that fail on purpose: each shows what a helper says when its check fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shop.jobs import SendReceipt
from shop.mail import MailDown
from shop.orders import place_order

from queue_core import Queue, RetryableJob
from queue_core.testing import assert_failed, assert_nothing_pushed, assert_pushed, drain


@dataclass
class NeverGivesUp(RetryableJob):
    def execute(self, queue: Any) -> None:
        raise RuntimeError("still broken")

    def can_retry(self, attempt: int, error: BaseException) -> bool:
        return True


def test_wrong_address(queue_core_queue: Queue) -> None:
    place_order(queue_core_queue, 1, "ann@example.com")
    assert_pushed(queue_core_queue, SendReceipt, to="bob@example.com")


def test_something_was_pushed(queue_core_queue: Queue) -> None:
    place_order(queue_core_queue, 2, "ann@example.com", gift=True)
    assert_nothing_pushed(queue_core_queue)


def test_wrong_error(queue_core_queue: Queue, gateway) -> None:
    queue_core_queue.push(SendReceipt(3, "x@nowhere.example"))
    drain(queue_core_queue)
    assert_failed(queue_core_queue, SendReceipt, error=MailDown)  # it was a BadAddress


def test_runaway_job(queue_core_queue: Queue) -> None:
    queue_core_queue.push(NeverGivesUp())
    drain(queue_core_queue, max_runs=10)
