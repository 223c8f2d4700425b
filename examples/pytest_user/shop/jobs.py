"""The shop's job types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from queue_core import Backoff, Job, RetryableJob
from shop import mail


@dataclass
class SendReceipt(RetryableJob):
    order_id: int
    to: str

    # 10 s, 20 s, 40 s ... between attempts.
    backoff = Backoff.exponential(10)

    def execute(self, queue: Any) -> str:
        return mail.gateway.send(self.to, f"Your order #{self.order_id}")

    def can_retry(self, attempt: int, error: BaseException) -> bool:
        # Three runs in all, and only while the gateway is down.
        return attempt < 3 and isinstance(error, mail.MailDown)


@dataclass
class ShipOrder(Job):
    order_id: int

    def execute(self, queue: Any) -> None:
        queue.push(SendReceipt(self.order_id, f"customer-{self.order_id}@example.com"))


@dataclass
class AskForReview(Job):
    order_id: int

    def execute(self, queue: Any) -> str:
        return f"review asked for order {self.order_id}"
