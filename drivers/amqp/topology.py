"""The queues of an amqp channel: their names and arguments on classic and on quorum
queues, and declaring them (see docs/drivers/amqp.md).

For channel ``C``:

- ``C``: the jobs, durable; a classic queue with ``x-max-priority`` (ours are mapped so
  that lower numbers run first), or a quorum queue (``queue_type="quorum"``).
- ``C.delay.<ms>``: one queue per delay, created on demand: ``x-message-ttl`` is the
  delay, expired messages dead-letter back to ``C``, and the queue expires when unused.
- ``C.failed``: jobs that failed for good, the reason in their headers.
- ``C.delays``: the names of the delay queues, so that ``clear`` and ``info`` find them
  without the management plugin.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from queue_core.model import Capabilities, JobStatus

from .codec import PRECONDITION_FAILED, encode_properties
from .connection import PROBE, Delivery, ProbeError, Wire
from .headers import as_int, as_text
from .retention import MAX_EXPIRATION_MS

logger = logging.getLogger(__name__)

LOWEST_PRIORITY = 5
"""Our priorities 0..5 are AMQP priorities 5..0 (``x-max-priority: 5``), so 0 runs first;
a job pushed without one runs as 5, the lowest. RabbitMQ keeps a sub-queue per level and
advises at most 5: every level more costs confirmed pushes and deliveries."""
DELAY_REFRESH = 60.0
"""Seconds after which a delay queue is declared again before use: a declare renews its
``x-expires``, a publish does not."""
DELAY_EXPIRY_MARGIN = 2 * DELAY_REFRESH
MAX_DELAY = 49 * 86400.0
"""RabbitMQ's TTLs and expiries are unsigned 32-bit milliseconds (49.7 days)."""


def delay_ms(delay: float) -> int:
    """A delay in milliseconds, rounded up to three significant digits (never earlier
    than asked, at most 1% later), so that jittered backoffs share delay queues."""
    ms = max(1, math.ceil(delay * 1000 - 1e-6))
    if ms < 1000:
        return ms
    step = int(10 ** (len(str(ms)) - 3))
    return -(-ms // step) * step


CLASSIC_CAPABILITIES = Capabilities(
    delay=True, priority=True, priority_range=(0, LOWEST_PRIORITY), ttr_lease=True,
    lease_by_connection=True, retry=True, attempt_count=True, status=False,
    failed_store=True, last_error=False, keep_completed=False, retention=True,
    max_retention_age=MAX_EXPIRATION_MS / 1000, manual_retry=True,
    remove=False, clear=True, info=True,
    listing=frozenset({JobStatus.FAILED}), reset_attempts=True, bulk_push=True, max_delay=MAX_DELAY,
    uncounted=frozenset({JobStatus.RESERVED}))
QUORUM_CAPABILITIES = replace(CLASSIC_CAPABILITIES, priority=False, priority_range=(0, 0))


class ClassicQueues:
    """What is particular to classic queues: priorities (``x-max-priority``), and a
    redelivery that the broker only flags."""

    name = "classic"
    driver_name = "amqp"
    capabilities = CLASSIC_CAPABILITIES
    drains_before_cancel = False
    """A quorum queue counts a delivery for what is on its way to a cancelled consumer."""

    def base_arguments(self) -> dict[str, Any]:
        # The classic queue format of RabbitMQ 3.10+ (the only one from 4.0): a priority
        # queue in it takes confirmed batches and delivers faster than in version 1.
        return {"x-queue-version": 2}

    def job_arguments(self) -> dict[str, Any]:
        return {**self.base_arguments(), "x-max-priority": LOWEST_PRIORITY}

    def delay_arguments(self, channel: str, ms: int) -> dict[str, Any]:
        """A delay queue's: its messages dead-letter back to ``channel`` after ``ms``."""
        return {**self.base_arguments(), "x-message-ttl": ms, "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": channel,
                "x-expires": ms + int(DELAY_EXPIRY_MARGIN * 1000)}

    def amqp_priority(self, priority: int | None) -> int | None:
        return None if priority is None or priority == LOWEST_PRIORITY else (
            LOWEST_PRIORITY - priority)

    def our_priority(self, value: int | None) -> int | None:
        return LOWEST_PRIORITY - min(value or 0, LOWEST_PRIORITY)

    def redeliveries(self, headers: dict[str, Any]) -> int | None:
        """Lost runs the broker counted for this copy, or None when it cannot count them
        (a classic queue only flags a redelivery)."""
        return None


class QuorumQueues(ClassicQueues):
    """Quorum queues: replicated, no priorities (RabbitMQ 3.x), ``x-delivery-count``."""

    name = "quorum"
    driver_name = "amqp-quorum"
    capabilities = QUORUM_CAPABILITIES
    drains_before_cancel = True

    def base_arguments(self) -> dict[str, Any]:
        return {"x-queue-type": "quorum"}

    def job_arguments(self) -> dict[str, Any]:
        return self.base_arguments()

    def delay_arguments(self, channel: str, ms: int) -> dict[str, Any]:
        # At-least-once dead-lettering: a message leaves the delay queue only once the
        # main queue has it.
        return {**super().delay_arguments(channel, ms),
                "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}

    def amqp_priority(self, priority: int | None) -> int | None:
        return None

    def our_priority(self, value: int | None) -> int | None:
        return None

    def redeliveries(self, headers: dict[str, Any]) -> int | None:
        # RabbitMQ 4.3 stopped counting a return of a dead consumer's messages (it counts
        # rejects only); a redelivery it did not count is counted by a copy, as on a
        # classic queue.
        return as_int(headers.get("x-delivery-count")) or None


QUEUE_TYPES: dict[str, ClassicQueues] = {"classic": ClassicQueues(), "quorum": QuorumQueues()}


class Topology:
    """The queues of one channel, and those this process declared lately (a store's: its
    connections share it)."""

    def __init__(self, channel: str, kind: ClassicQueues, publish_timeout: float,
                 describe: Callable[[], str]) -> None:
        self.channel = channel
        self.kind = kind
        self.publish_timeout = publish_timeout
        """Seconds a registry record waits for the broker's confirm."""
        self.describe = describe
        """Where the queues are, for the log."""
        self.failed_queue = f"{channel}.failed"
        self.registry_queue = f"{channel}.delays"
        self.delay_prefix = f"{channel}.delay."
        self.plain_arguments = kind.base_arguments()
        self.main_arguments = kind.job_arguments()
        self.declared: dict[str, float] = {}
        self.mismatched: set[str] = set()

    def declare(self, wire: Wire, queue: str, arguments: dict[str, Any]) -> int:
        """Declare a queue; its count of ready messages. A queue that exists with other
        arguments (made by hand, or by another version) is used as it is."""
        try:
            return wire.declare(queue, arguments).messages
        except ProbeError as exc:
            if exc.code != PRECONDITION_FAILED:
                raise
            reason = str(exc)
        count = wire.declare(queue, {}, passive=True).messages
        if queue not in self.mismatched:
            self.mismatched.add(queue)
            logger.warning("%s: using queue %s as it is: %s", self.describe(), queue, reason)
        return count

    def ensure(self, wire: Wire, queue: str, arguments: dict[str, Any]) -> None:
        if queue not in self.declared:
            self.declare(wire, queue, arguments)
            self.declared[queue] = time.monotonic()

    def target(self, wire: Wire, delay: float, fresh: bool = False) -> str:
        """The queue a job waiting ``delay`` seconds goes to, declared (and listed in the
        registry) when this process has not done so lately, or now with ``fresh``."""
        if delay <= 0:
            if fresh:
                self.declare(wire, self.channel, self.main_arguments)
                self.declared[self.channel] = time.monotonic()
            else:
                self.ensure(wire, self.channel, self.main_arguments)
            return self.channel
        ms = delay_ms(delay)
        name = f"{self.delay_prefix}{ms}"
        now = time.monotonic()
        last = self.declared.get(name)
        if fresh or last is None or now - last >= DELAY_REFRESH:
            self.ensure(wire, self.channel, self.main_arguments)
            self.declare(wire, name, self.kind.delay_arguments(self.channel, ms))
            self.declared[name] = now
            # Listed again whenever it may have expired since our last declare, since an
            # expired queue's record is pruned (a record alone never keeps a queue).
            if last is None or now - last >= ms / 1000 + DELAY_EXPIRY_MARGIN:
                self.ensure(wire, self.registry_queue, self.plain_arguments)
                frames = wire.publish_bytes(self.registry_queue, name.encode(),
                                            encode_properties(name, None, {}))
                wire.confirm(wire.publish(frames, 1), self.publish_timeout)
        return name

    def declare_again(self, wire: Wire, queue: str) -> str:
        """Declare again the queue of a message the broker returned as unroutable (it
        expired, or someone deleted it); the queue to send the message to."""
        self.declared.pop(queue, None)
        self.declared.pop(self.channel, None)
        if queue.startswith(self.delay_prefix):
            queue = self.target(wire, int(queue.rsplit(".", 1)[1]) / 1000)
        elif queue == self.channel:
            self.ensure(wire, queue, self.main_arguments)
        else:
            self.ensure(wire, queue, self.plain_arguments)
        return queue

    def registry(self, wire: Wire, purge: bool = False) -> dict[str, int]:
        """Ready messages in each delay queue of the registry; records of queues that are
        gone, and duplicates, are dropped. With ``purge``, the queues are emptied."""
        self.ensure(wire, self.registry_queue, self.plain_arguments)
        records: list[Delivery] = []
        while True:
            record = wire.get(self.registry_queue)
            if record is None:
                break
            records.append(record)
        found: dict[str, int] = {}
        gone: set[str] = set()
        drop: set[int] = set()
        for record in records:
            name = as_text(record.body)
            if name in found or name in gone or not name.startswith(self.delay_prefix):
                drop.add(record.tag)
                continue
            try:
                if purge:
                    wire.purge(name, channel=PROBE)
                    found[name] = 0
                else:
                    found[name] = wire.declare(name, {}, passive=True).messages
            except ProbeError:
                gone.add(name)
                drop.add(record.tag)
        for tag in drop:
            wire.ack(tag)
        kept = [record.tag for record in records if record.tag not in drop]
        if kept:
            # The broker refuses a tag that is already acked, even with ``multiple``.
            wire.requeue(kept[-1], multiple=True)
        return found
