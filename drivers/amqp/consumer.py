"""One worker's consumer of an amqp queue (``_AmqpConsumer``): the jobs it takes on a
connection of its own, and their settlement.

A retry publishes a copy with one more attempt (to a delay queue, or straight back) and
acks the original once the broker confirmed the copy. A run whose worker died comes back
from the broker flagged redelivered (classic) or with ``x-delivery-count`` (quorum); on a
classic queue the consumer first publishes a copy that counts that lost run, since the
flag alone cannot count. The broker hands back the jobs a dead worker had only prefetched
marked the same way, so a job's first loss is unproven: counted, but it never ends the job
(see ``_Runs.lose``). A job that kills its worker still ends FAILED: after ``attempts``
runs, or two with ``attempts=1``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

from queue_core.consumer import Consumer, Settlement
from queue_core.errors import DriverError
from queue_core.logfields import job_extra
from queue_core.model import ErrorInfo, Message

from .connection import Delivery, Wire, WireError
from .headers import as_int, as_text, carried
from .retention import FailedTrimmer, expiration

if TYPE_CHECKING:
    from .store import AmqpDriver

logger = logging.getLogger(__name__)

T = TypeVar("T")


class _Runs(NamedTuple):
    """What a message's headers, and the broker's redelivery marks, say of its runs."""

    counted: int
    """Runs counted so far (``qc-attempt``)."""
    lost: bool
    """The last of them was lost with its worker (``qc-lost``)..."""
    unproven: bool
    """... and may only have been prefetched, never started (``qc-unproven``)."""
    losses: int
    """Lost runs in the job's life, retries included (``qc-losses``)."""

    @classmethod
    def stored(cls, headers: dict[str, Any]) -> _Runs:
        return cls(as_int(headers.get("qc-attempt")), bool(headers.get("qc-lost")),
                   bool(headers.get("qc-unproven")), as_int(headers.get("qc-losses")))

    def lose(self, runs: int) -> _Runs:
        """These runs and ``runs`` more, lost. A consumer that dies hands back the job it
        was running and the ones it had only prefetched, all marked alike, so a job's
        first loss is unproven: counted, but it never ends the job (the core runs it
        again). A job lost before is the likelier culprit, and a job that kills every
        worker must end: later losses count in full."""
        return _Runs(self.counted + runs, True, self.losses == 0 and runs == 1,
                     self.losses + runs)

    def headers(self, delivery: Delivery) -> dict[str, Any]:
        """The headers of a copy of ``delivery`` that carries these runs."""
        found = {"qc-attempt": self.counted, "qc-lost": int(self.lost),
                 "qc-unproven": int(self.unproven), "qc-losses": self.losses}
        return {**carried(delivery.headers),
                **{key: value for key, value in found.items() if value}}


def _copy_id(delivery: Delivery) -> str:
    return delivery.message_id or f"amqp-{delivery.tag}"


class _Handle:
    __slots__ = ("wire", "delivery", "deadline", "attempt", "losses")

    def __init__(self, wire: Wire, delivery: Delivery, deadline: float, attempt: int,
                 losses: int) -> None:
        self.wire = wire
        self.delivery = delivery
        self.deadline = deadline
        self.attempt = attempt
        self.losses = losses

    def copy_headers(self, attempt: int) -> dict[str, Any]:
        """The headers of a copy of this job that has run ``attempt`` times."""
        headers = carried(self.delivery.headers)
        headers["qc-attempt"] = attempt
        if self.losses:
            headers["qc-losses"] = self.losses
        return headers


class _AmqpConsumer(Consumer):
    """One worker's own connection: a consumer whose prefetch follows the core's ``max_n``
    (``basic.get`` for ``run``, which holds nothing ahead), the deliveries it holds, and
    their settlement: a copy published through the store, which waits for the broker's
    confirm, then an ack here."""

    # An ack costs no round trip, and one held back to go out with the next fetch would
    # make a worker killed meanwhile run a finished job again.
    folds_settlements = False

    def __init__(self, store: AmqpDriver) -> None:
        self.store = store
        # The driver's prefetch option caps it for each store.
        self.prefetch = store.prefetch  # type: ignore[misc]
        self._wire: Wire | None = None
        self._consuming = False
        self._qos = 0
        """The prefetch of the consumer: the channel's for consumers started next."""
        self._held: dict[int, _Handle] = {}
        self.lease_end = math.inf
        """No held job's lease ends before this (monotonic seconds): a bound that
        ``_expire_held`` makes exact."""
        self._trimmer = FailedTrimmer(store)
        self._expiration = expiration(store.retention_failed.max_age)
        """The expiration of the failed copies (keep_failed's max_age), or None."""

    # -- connection ------------------------------------------------------------------

    def _connected(self) -> Wire:
        wire = self._wire
        if wire is None:
            wire = self.store._worker_wire()
            self._wire = wire
            self._consuming = False
            self._qos = 0
            self._held.clear()
        return wire

    def _drop(self) -> None:
        wire, self._wire = self._wire, None
        self._consuming = False
        self._held.clear()
        if wire is not None:
            wire.close()

    def _on_wire(self, what: Callable[[Wire], T]) -> T:
        wire = self._connected()
        try:
            return what(wire)
        except WireError as exc:
            raise self._lost(exc) from exc

    def _lost(self, exc: WireError) -> DriverError:
        wire = self._wire
        error = self.store._error(wire, exc)
        if wire is not None:
            self.store._lost(wire)
        self._drop()
        return error

    # -- fetching --------------------------------------------------------------------

    def fetch(self, max_n: int, timeout: float,
              settle: Sequence[Settlement] = ()) -> list[Message]:
        if settle:
            self.settle(settle)
        now = time.monotonic()
        # A worker vanished without a word (or a caller went on without an outcome):
        # what it holds comes back when its lease ends, as on other drivers. Its
        # connection would hand it back only once it closes.
        for consumer in self.store._overdue(now):
            consumer._expire_held(now)
        taken: list[Message] = []
        if not self._consuming and timeout <= 0:
            # ``run``: take one ready job, hold nothing else.
            while not taken:
                delivery = self._on_wire(lambda wire: wire.get(self.store.channel))
                if delivery is None:
                    break
                self._take(delivery, taken)
            return taken
        wire = self._connected()
        deadline = now + timeout
        try:
            self._prefetch(wire, max_n)
            while not taken:
                delivery = wire.next_delivery(max(0.0, deadline - time.monotonic()))
                if delivery is None:
                    break
                self._take(delivery, taken)
            # Then what has come already, up to max_n, stopping at a lost run, which is
            # counted by a copy first (the next fetch does it).
            while len(taken) < max_n and wire.deliveries:
                first = wire.deliveries[0]
                if first.redelivered and self._counted(first) is None:
                    break
                self._take(wire.deliveries.popleft(), taken)
        except WireError as exc:
            raise self._lost(exc) from exc
        return taken

    def _prefetch(self, wire: Wire, max_n: int) -> None:
        """Consume with a prefetch of ``max_n``, the core's count (up to ``prefetch``).
        A prefetch is set per consumer (RabbitMQ 4.3 refuses a channel-wide one), so a new
        one takes a new consumer, which costs three round trips, and on a quorum queue a
        wait (``_cancel``). It changes only when the count asked for is under half or over
        twice the one in force, not at every small move of the core's running average,
        or when the cap is asked for: a count under half the cap would otherwise stay in
        force for good while the jobs are quick enough for all of it."""
        window = self.window
        want = max(1, min(max(max_n, window), max(self.prefetch, window)))
        current = self._qos
        if window > 1 and self._consuming and current >= window:
            return  # jobs are running; see Consumer.window
        if self._consuming and (want * 2 < current or want > current * 2
                                or want == self.prefetch > current
                                or (window > 1 and not self._held)):
            self._cancel(wire)
        if not self._consuming:
            # The jobs still held came to the consumer being replaced: the new one's
            # prefetch does not count them, so it gets only the rest (the window grew while
            # jobs ran: a worker at concurrency 1 met an async job). Once none is held, the
            # line above gives it the whole window.
            want = max(1, want - len(self._held)) if window > 1 else want
            if want != current:
                wire.qos(want)
                self._qos = want
            wire.consume(self.store.channel)
            self._consuming = True

    def _cancel(self, wire: Wire) -> None:
        """Stop the consumer; what it was sent stays in the buffer."""
        if self.store.kind.drains_before_cancel:
            # A quorum queue takes back what is on its way to a consumer being cancelled
            # and counts a delivery, which would count as a lost run: first let the broker
            # send all it may (the prefetch is used up, or nothing came for a while).
            while (len(wire.deliveries) + len(self._held) < self._qos
                   and wire.poll(0.05)):
                pass
        wire.cancel()
        self._consuming = False

    def _take(self, delivery: Delivery, taken: list[Message]) -> None:
        message = self._accept(delivery)
        if message is not None:
            taken.append(message)

    def _accept(self, delivery: Delivery) -> Message | None:
        """The Message for a delivery, or None when the delivery was a lost run that had
        to be counted first (classic queues)."""
        runs = self._counted(delivery)
        if runs is None:
            self._charge(delivery, _Runs.stored(delivery.headers).lose(1),
                         "its worker was lost")
            return None
        wire = self._wire
        assert wire is not None
        store = self.store
        headers = delivery.headers
        ttr = as_int(headers.get("qc-ttr"), 60000) / 1000
        if ttr > store.consumer_timeout and ttr not in store._warned_ttrs:
            store._warned_ttrs.add(ttr)
            store._warn_ttr(ttr, "a job's")
        pushed = headers.get("qc-pushed")
        attempt = runs.counted + 1
        handle = _Handle(wire, delivery, time.monotonic() + ttr + store.lease_grace, attempt,
                         runs.losses)
        self._held[delivery.tag] = handle
        self.lease_end = min(self.lease_end, handle.deadline)
        return Message(delivery.message_id or f"amqp-{delivery.tag}", delivery.body, attempt,
                       ttr, priority=store.kind.our_priority(delivery.priority),
                       pushed_at=pushed / 1000 if isinstance(pushed, int) else None,
                       redelivered=runs.lost, may_not_have_started=runs.unproven,
                       handle=handle)

    def _counted(self, delivery: Delivery) -> _Runs | None:
        """The runs of a delivery, or None when the broker flagged a redelivery that no
        header counts yet (a classic queue): the caller counts it with a copy."""
        runs = _Runs.stored(delivery.headers)
        if delivery.redelivered:
            redeliveries = self.store.kind.redeliveries(delivery.headers)
            if redeliveries is None:
                return None
            if redeliveries > 0:
                runs = runs.lose(redeliveries)
        return runs

    def _charge(self, delivery: Delivery, runs: _Runs, why: str) -> None:
        """Publish a copy of a held delivery that counts ``runs``, then ack the
        delivery."""
        logger.info("job %s: %s; counting it as attempt %d%s", delivery.message_id, why,
                    runs.counted, " (unproven: it may only have been prefetched)"
                    if runs.unproven else "",
                    extra=job_extra(self.store.channel, delivery.message_id, attempt=runs.counted))
        store = self.store
        try:
            store._republish(store.channel, delivery.body, _copy_id(delivery),
                             delivery.priority, runs.headers(delivery), 0.0)
        except DriverError:
            # Not counted: leave it to the broker, which hands it out again.
            self._on_wire(lambda wire: wire.requeue(delivery.tag))
            raise
        self._on_wire(lambda wire: wire.ack(delivery.tag))

    def _expire_held(self, now: float) -> None:
        """A job handed out and never reported on comes back when its lease ends,
        counted as a lost run. Called by whichever consumer of the process fetches next:
        the one that holds the job may never be called again. (The dict operations on
        ``_held`` are atomic, and an ack is one locked send.)"""
        for tag, handle in list(self._held.items()):
            if handle.deadline > now or self._held.pop(tag, None) is None:
                continue
            if handle.wire is not self._wire:
                continue
            self._charge(handle.delivery, _Runs(handle.attempt, True, False, handle.losses + 1),
                         "it was reserved and not reported on within its lease")
        self.lease_end = min((handle.deadline for handle in list(self._held.values())),
                             default=math.inf)

    def begin(self, message: Message, settle: Sequence[Settlement] = ()) -> bool:
        if settle:
            self.settle(settle)
        handle: _Handle = message.handle  # type: ignore[assignment]
        if handle.wire is not self._wire or handle.wire.dead is not None:
            # Fetched on a connection since lost: the broker hands it out again.
            return False
        # The lease runs from the start of the run: a job fetched ahead waited first.
        handle.deadline = time.monotonic() + message.ttr + self.store.lease_grace
        return True

    # -- outcomes --------------------------------------------------------------------

    def _holding(self, message: Message) -> _Handle | None:
        """The handle of a job this worker still holds, or None (logged) when the broker
        has already taken it back: its connection was lost."""
        handle: _Handle = message.handle  # type: ignore[assignment]
        if self._held.pop(handle.delivery.tag, None) is None or handle.wire is not self._wire:
            logger.warning("job %s: the connection that held it was lost; the broker "
                           "hands it out again", message.id,
                           extra=job_extra(self.store.channel, message.id, attempt=message.attempt))
            return None
        return handle

    def _ack(self, message: Message, handle: _Handle) -> None:
        # At once, one by one: an ack held back to go out with others would make a
        # worker killed meanwhile run finished jobs again.
        try:
            handle.wire.ack(handle.delivery.tag)
        except WireError as exc:
            self.store._lost(handle.wire)
            self._drop()
            logger.warning("job %s: its outcome is saved but the ack was lost (%s); the "
                           "broker hands it out again", message.id, exc,
                           extra=job_extra(self.store.channel, message.id, attempt=message.attempt))

    def ack(self, message: Message, *, result: bytes | None = None, keep: bool = False) -> None:
        handle = self._holding(message)
        if handle is not None:
            self._ack(message, handle)

    def release(self, message: Message, *, delay: float, error: ErrorInfo | None) -> None:
        handle = self._holding(message)
        if handle is None:
            return
        store = self.store
        try:
            store._republish(store.channel, message.payload, message.id,
                             handle.delivery.priority, handle.copy_headers(message.attempt),
                             delay)
        except DriverError:
            self._held[handle.delivery.tag] = handle  # still ours: the core tries again
            raise
        self._ack(message, handle)

    def fail(self, message: Message, *, error: ErrorInfo, keep: bool = True) -> None:
        handle = self._holding(message)
        if handle is None:
            return
        if keep:
            headers = handle.copy_headers(message.attempt)
            headers.update({
                "qc-error-type": as_text(error.type), "qc-error": as_text(error.message),
                "qc-traceback": as_text(error.traceback),
                "qc-failed-at": int(time.time() * 1000)})
            try:
                self.store._republish(self.store.failed_queue, message.payload, message.id,
                                      handle.delivery.priority, headers, 0.0,
                                      expiration=self._expiration)
            except DriverError:
                self._held[handle.delivery.tag] = handle
                raise
            self._ack(message, handle)
            self._trimmer.failed()
            return
        self._ack(message, handle)

    # -- giving back and closing -----------------------------------------------------

    def give_back(self, messages: Sequence[Message]) -> None:
        """Jobs fetched and never begun go back uncounted, once the consumer stopped (so
        that the broker sends no more): as copies, since a nack or a reject would flag
        them redelivered, which counts a lost run."""
        wire = self._wire
        if wire is None:
            return
        try:
            self._stop(wire)
            for message in messages:
                handle = self._held.pop(cast(_Handle, message.handle).delivery.tag, None)
                if handle is not None and handle.wire is wire:
                    self._return(wire, handle.delivery)
            self._return_buffered(wire)
        except WireError as exc:
            raise self._lost(exc) from exc

    def _stop(self, wire: Wire) -> None:
        if self._consuming:
            self._cancel(wire)

    def _return_buffered(self, wire: Wire) -> None:
        """Give back what the broker sent and no fetch took."""
        while wire.deliveries:
            self._return(wire, wire.deliveries.popleft())

    def _return(self, wire: Wire, delivery: Delivery) -> None:
        runs = self._counted(delivery)
        if runs is None:
            self._charge(delivery, _Runs.stored(delivery.headers).lose(1),
                         "its worker was lost")
            return
        store = self.store
        store._republish(store.channel, delivery.body, _copy_id(delivery), delivery.priority,
                         runs.headers(delivery), 0.0)
        wire.ack(delivery.tag)

    def after_fork(self) -> None:
        # The parent's socket stays the parent's: forgotten, not closed.
        if self._wire is not None:
            self._wire.abandon()
        self._wire = None
        self._consuming = False
        self._held.clear()

    def close(self) -> None:
        try:
            self._trimmer.flush()
        except Exception:  # noqa: BLE001 - closing must go on whatever the trim met
            logger.exception("retention: the trim at close failed")
        wire = self._wire
        if wire is not None and wire.dead is None:
            try:
                self._stop(wire)
                self._return_buffered(wire)
            except (WireError, DriverError) as exc:
                logger.warning("could not give back prefetched jobs to %s: %s (the broker "
                               "hands them out again)", self.store.describe(), exc)
        if wire is not None and wire.dead is None and not self._held:
            # Nothing held: the connection can serve the next consumer.
            self._wire = None
            with self.store._consumers_lock:
                self.store._idle.append(wire)
        self._drop()
        with self.store._consumers_lock:
            self.store._consumers.discard(self)
