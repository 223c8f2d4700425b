"""Application code that pushes jobs."""

from __future__ import annotations

from queue_core import Queue
from shop.jobs import AskForReview, SendReceipt, ShipOrder

A_WEEK = 7 * 24 * 3600


def place_order(queue: Queue, order_id: int, email: str, *, gift: bool = False) -> None:
    queue.push(SendReceipt(order_id, email))
    if not gift:
        queue.push(AskForReview(order_id), delay=A_WEEK)


def ship(queue: Queue, order_id: int) -> None:
    queue.push(ShipOrder(order_id))
