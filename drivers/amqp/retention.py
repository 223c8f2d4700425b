"""Retention of the amqp driver: the failed queue ``C.failed`` kept to the queue's
``keep_failed`` limits, without new queue arguments (RabbitMQ refuses to declare an
existing queue again with other ones, so ``x-max-length`` or ``x-message-ttl`` would only
hold for queues made after the change).

- ``max_age``: the copy a final failure publishes to the failed queue carries an
  ``expiration`` of ``max_age`` (a per-message TTL): the broker drops it once it has been
  there that long, with no trim. A manual retry publishes a new copy without one; a
  listing hands the messages it read back to the queue, which keeps their clocks running.
- ``max_count``: a consumer reads the failed queue's depth (a passive declare) every tenth
  of ``max_count`` failures, at the next failure a second after its last trim
  (queue_core.retention.TrimPacer), and when it closes, and takes the oldest messages from
  the queue's head (basic.get, then an ack that waits for nothing) until ``max_count`` are
  left. Each basic.get-ok tells how many messages are left behind it, so a message taken
  past the limit (another worker trimming at the same time) goes back rather than away.

Trims run on the store's connection (the one the failed copy went out on), never on the
worker's own. A trim that fails is logged and left to the next one: it never fails a job.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from queue_core.errors import DriverError
from queue_core.model import Retention
from queue_core.retention import TrimPacer

from .connection import ProbeError, Wire

if TYPE_CHECKING:
    from .store import AmqpDriver

logger = logging.getLogger(__name__)

MAX_EXPIRATION_MS = 2**32 - 1
"""RabbitMQ's longest per-message TTL, in milliseconds (about 49.7 days): the longest
``max_age`` the driver can hold (``Capabilities.max_retention_age``)."""


def expiration(max_age: float | None) -> str | None:
    """The ``expiration`` property of a failed copy for ``max_age`` seconds: whole
    milliseconds, rounded up (never dropped early)."""
    if max_age is None:
        return None
    return str(min(MAX_EXPIRATION_MS, max(1, math.ceil(max_age * 1000))))


class FailedTrimmer:
    """One consumer's count trims of the failed queue, paced."""

    def __init__(self, store: AmqpDriver) -> None:
        self._store = store
        count = store.retention_failed.max_count
        # The age is the broker's to enforce: only the count sets this pace.
        self._pacer = None if count is None else TrimPacer(Retention(max_count=count))

    def failed(self) -> None:
        """A failed copy was published: trim when the pace says so."""
        if self._pacer is not None and self._pacer.kept():
            self._trim(self._pacer)

    def flush(self) -> None:
        """Trim whatever failed since the last trim (the consumer closes)."""
        if self._pacer is not None and self._pacer.pending:
            self._trim(self._pacer)

    def _trim(self, pacer: TrimPacer) -> None:
        pacer.trimmed()  # a trim starts with one declare, whatever the queue holds
        store = self._store
        count = pacer.retention.max_count
        assert count is not None
        try:
            removed = store._io(lambda wire: trim(wire, store.failed_queue, count))
        except DriverError as exc:
            logger.warning("retention of failed jobs in %s: the trim failed (%s); the next "
                           "one will catch up", store.describe(), exc)
            return
        if removed:
            logger.debug("retention: %d failed job(s) removed from %s", removed,
                         store.describe())


def trim(wire: Wire, queue: str, max_count: int) -> int:
    """Drop the oldest messages of ``queue`` until ``max_count`` are left; how many it
    dropped."""
    try:
        ready = wire.declare(queue, {}, passive=True).messages
    except ProbeError:
        return 0  # no failed queue (yet, or any more): nothing to trim
    removed = 0
    while ready > max_count:
        delivery = wire.get(queue)
        if delivery is None:
            break
        ready = delivery.left
        if ready < max_count:
            # Others took messages meanwhile: this one is among the newest to keep.
            wire.requeue(delivery.tag)
            break
        wire.ack(delivery.tag)
        removed += 1
    return removed
