"""The receipt job's retry policy, run with drain: no real waiting for its backoff."""

from __future__ import annotations

import pytest
from shop.jobs import SendReceipt
from shop.mail import BadAddress, MailDown

from queue_core import JobStatus, Queue
from queue_core.testing import assert_failed, drain


def test_a_receipt_goes_out_on_the_third_attempt(queue_core_queue: Queue, gateway) -> None:
    gateway.down = 2
    job_id = queue_core_queue.push(SendReceipt(7, "ann@example.com"))

    result = drain(queue_core_queue)

    assert [(run.attempt, run.outcome) for run in result.runs] == [
        (1, "retried"), (2, "retried"), (3, "done")]
    assert [run.delay for run in result.runs[:2]] == [10, 20]   # chosen, not waited
    assert all(isinstance(run.error, MailDown) for run in result.runs[:2])
    assert gateway.sent == [("ann@example.com", "Your order #7")]
    assert queue_core_queue.status(job_id) == JobStatus.DONE
    assert queue_core_queue.get(job_id).attempt == 3


def test_a_receipt_gives_up_after_three_attempts(queue_core_queue: Queue, gateway) -> None:
    gateway.down = 5
    queue_core_queue.push(SendReceipt(8, "bob@example.com"))

    result = drain(queue_core_queue)

    assert (result.retried, result.failed, result.done) == (2, 1, 0)
    failed = assert_failed(queue_core_queue, SendReceipt, error=MailDown, match="try again",
                           order_id=8)
    assert failed.attempt == 3
    assert gateway.sent == []


def test_a_bad_address_is_not_retried(queue_core_queue: Queue, gateway) -> None:
    queue_core_queue.push(SendReceipt(9, "carl@nowhere.example"))

    result = drain(queue_core_queue)

    assert [run.outcome for run in result.runs] == ["failed"]
    assert_failed(queue_core_queue, SendReceipt, error=BadAddress)


def test_time_travel_keeps_the_backoff_visible(queue_core_queue: Queue, gateway) -> None:
    gateway.down = 2
    queue_core_queue.push(SendReceipt(10, "dee@example.com"))

    result = drain(queue_core_queue, backoff="travel")

    assert result.done == 1
    # The 10 s and 20 s backoffs, as if they had passed (less the moments drain took).
    assert result.travelled == pytest.approx(30, abs=1)
