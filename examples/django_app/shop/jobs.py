"""The shop's jobs. A module named ``jobs`` in an installed app is imported by every
worker that ``manage.py queue listen`` starts, so these job types are known there."""

from dataclasses import dataclass
from typing import Any

from queue_core import RetryableJob

from .models import Order


@dataclass
class ConfirmOrder(RetryableJob):
    order_id: int

    def execute(self, queue: Any) -> str:
        # An order that was never committed does not exist: the job fails.
        order = Order.objects.get(pk=self.order_id)
        order.status = "confirmed"
        order.save(update_fields=["status"])
        return order.status
