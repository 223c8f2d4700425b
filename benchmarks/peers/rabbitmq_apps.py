"""The peers' side of the RabbitMQ benchmark: Dramatiq's no-op actor on the broker at
$BENCH_AMQP_URL. Its worker imports this module."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from benchmarks.marks import mark

URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

broker = RabbitmqBroker(url=URL)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="dramatiq_bench", max_retries=0)
def dramatiq_noop(index: int, last: int, marks: str) -> None:
    if index == 0 or index == last:
        mark(marks, index, last)
