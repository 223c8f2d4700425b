"""What placing and shipping an order pushes, on each kind of test queue."""

from __future__ import annotations

import pytest
from shop.jobs import AskForReview, SendReceipt, ShipOrder
from shop.orders import A_WEEK, place_order, ship

from queue_core import JobStatus, Queue
from queue_core.testing import assert_nothing_pushed, assert_pushed, drain, pushed


def test_placing_an_order_pushes_a_receipt_and_a_review(queue_core_queue: Queue) -> None:
    place_order(queue_core_queue, 1, "ann@example.com")

    assert_pushed(queue_core_queue, SendReceipt, order_id=1, to="ann@example.com")
    review = assert_pushed(queue_core_queue, AskForReview, count=1)
    assert review.order_id == 1
    assert pushed(queue_core_queue, status="delayed") == [AskForReview(1)]


def test_a_gift_asks_for_no_review(queue_core_queue: Queue) -> None:
    place_order(queue_core_queue, 2, "bob@example.com", gift=True)

    assert_nothing_pushed(queue_core_queue, AskForReview)


def test_the_review_is_asked_a_week_later(queue_core_queue: Queue, gateway) -> None:
    place_order(queue_core_queue, 3, "cy@example.com")

    now = drain(queue_core_queue)                        # the receipt only
    later = drain(queue_core_queue, backoff="travel")    # a week passes

    assert (now.done, now.delayed) == (1, 1)
    assert [run.result for run in later.runs] == ["review asked for order 3"]
    assert later.travelled >= A_WEEK - 1


def test_a_job_that_pushes_a_job(queue_core_queue: Queue, gateway) -> None:
    ship(queue_core_queue, 4)

    result = drain(queue_core_queue)

    assert [type(run.job) for run in result.runs] == [ShipOrder, SendReceipt]
    assert gateway.sent == [("customer-4@example.com", "Your order #4")]


@pytest.mark.queue_core("sync")
def test_on_the_sync_driver_jobs_run_inside_push(queue_core_queue: Queue, gateway) -> None:
    ship(queue_core_queue, 5)

    assert gateway.sent == [("customer-5@example.com", "Your order #5")]
    assert [info.status for info in queue_core_queue.jobs("done")] == [JobStatus.DONE] * 2


def test_a_file_queue_in_a_directory_of_its_own(make_test_queue, gateway) -> None:
    queue = make_test_queue("file", attempts=2)
    place_order(queue, 6, "dan@example.com", gift=True)

    assert drain(queue).done == 1
    assert pushed(queue, SendReceipt) == [SendReceipt(6, "dan@example.com")]
