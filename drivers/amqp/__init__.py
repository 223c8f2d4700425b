"""The AMQP driver for RabbitMQ: durable queues, persistent messages, publisher confirms,
and the same retry semantics as every other driver (docs/drivers/amqp.md).

One concern per module: ``codec`` (AMQP 0-9-1 frames, field tables and properties as
bytes), ``connection`` (``Wire``, one connection: socket loop, heartbeats, confirms),
``hosts`` (the driver's hosts as connection parameters), ``topology`` (the queues of a
channel), ``headers`` (what a job carries in its headers), ``store`` (``AmqpDriver``) and
``consumer`` (one worker's jobs and their settlement).
"""

from __future__ import annotations

from .store import AmqpDriver, AmqpQuorumDriver
from .topology import delay_ms

__all__ = ["AmqpDriver", "AmqpQuorumDriver", "delay_ms"]
