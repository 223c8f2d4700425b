"""The beanstalk driver's consumer: one worker's connection, its reserves and outcomes.

One round trip per job: the delete (or release) of the finished job, which the core keeps
back for the consumer to fold into its next fetch, the next reserve and the stats of the
job that reserve will most likely return go out together. The guess is the id after the
last job (beanstalkd numbers jobs in push order, so a FIFO tube hits every time), or, after
a wrong guess, the job peek-ready shows. A wrong guess costs one more round trip. Jobs are
reserved by beanstalkd's own ``reserve``, never ahead of time, so a crash never charges a
job that had not started.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from queue_core.consumer import Consumer, Settlement, Verdict
from queue_core.errors import DriverError
from queue_core.logfields import job_extra
from queue_core.model import ErrorInfo, Message

from . import protocol
from .client import LEASE_ENDED, Client, Counts, Link, Owed
from .errors import NotFound
from .jobs import LOST_BITS, LOST_MASK, REASON_TTR, decode_body, encode_priority, whole_seconds
from .protocol import UINT32
from .retention import BuriedTrimmer

if TYPE_CHECKING:
    from .store import BeanstalkDriver

logger = logging.getLogger(__name__)


@dataclass
class _Handle:
    job_id: int
    priority: int
    lost: int
    """Lost runs so far, written into the priority at this run's normal end."""


def _message(job_id: int, body: bytes, counts: Counts) -> Message:
    decoded = decode_body(body)
    pri = int(counts.pri or 0)
    reserves = int(counts.reserves or 1)
    lost = reserves - 1 - int(counts.releases or 0) - int(counts.buries or 0)
    ttr = decoded.ttr
    if ttr is None:  # not pushed by us: beanstalkd's ttr is all there is
        ttr = float(counts.ttr or 60)
    return Message(
        str(job_id), decoded.payload, reserves, ttr, priority=pri >> LOST_BITS,
        pushed_at=decoded.pushed_at, redelivered=(lost & LOST_MASK) != (pri & LOST_MASK),
        handle=_Handle(job_id, pri >> LOST_BITS, lost))


class BeanstalkConsumer(Consumer):
    """One worker's connection. Jobs are reserved one at a time by beanstalkd's own
    reserve, never ahead, so a crash never charges a job that had not started; the deletes
    and releases the core keeps back go out in the same write as the next reserve."""

    prefetch = 1
    folds_settlements = True

    def __init__(self, store: BeanstalkDriver) -> None:
        self.store = store
        self._link = Link(store)
        self._hint: int | None = None
        # Ask peek-ready for the hints (True) or guess the next id (False); a wrong hint
        # switches, so a FIFO tube guesses and a tube read out of order peeks.
        self._peek = False
        self._idle_pause = 0.02
        self._trimmer = BuriedTrimmer(store)

    def fetch(self, max_n: int, timeout: float,
              settle: Sequence[Settlement] = ()) -> list[Message]:
        owed = self._folded(settle)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            # Wait on beanstalkd itself: it hands a put to a waiting reserve at once, where
            # polling finds it only at the next poll. It waits in whole seconds, so the wait
            # rounds up (an idle worker notices a stop within about a second, not half).
            # The reserve is read to its end before this call returns, never left pending:
            # whatever beanstalkd hands over is returned and run, so a worker that stops
            # meanwhile neither loses a job nor charges an attempt to one it did not run.
            wait = min(math.ceil(left), UINT32) if left > 0 else 0
            try:
                cycle = self._link.io(Client.cycle, owed, wait, self._hint, self._peek)
            except DriverError:
                self._hint = None
                raise
            owed = []
            reserved, peeked = cycle.job, cycle.peeked
            if reserved is not None:
                self._idle_pause = 0.02
                job_id = reserved.id
                counts = cycle.counts
                if counts is None:  # no hint or a wrong one: one more round trip
                    if self._hint is not None:
                        self._peek = not self._peek
                    lookup = self._link.io(Client.counts_and_peek, job_id)
                    counts, peeked = lookup.counts, lookup.peeked
                    if counts is None:
                        continue  # deleted meanwhile
                self._hint = peeked if self._peek else job_id + 1
                return [_message(job_id, reserved.body, counts)]
            if self._peek:
                self._hint = peeked
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            # A wait ended early by DEADLINE_SOON (this connection holds a job whose lease is
            # nearly up) would be answered so again at once: pause instead of spinning.
            time.sleep(min(left, self._idle_pause))
            self._idle_pause = min(self._idle_pause * 2, 0.1)

    # -- outcomes --------------------------------------------------------------------

    def settle(self, settlements: Sequence[Settlement]) -> None:
        owed, buries = self._split(settlements)
        if owed:
            self._link.io(Client.settle, owed)
        for settlement in buries:
            assert settlement.error is not None
            self._bury(settlement.message, settlement.error)

    def give_back(self, messages: Sequence[Message]) -> None:
        # beanstalkd cannot take back the reserve it counted, but a release ends the run
        # as a normal one, where the closing connection would make it a lost run.
        self.settle([Settlement(Verdict.RELEASE, message) for message in messages])

    def _folded(self, settlements: Sequence[Settlement]) -> list[Owed]:
        """What of ``settlements`` goes out with the next reserve. A bury cannot (its
        commands must go in order, see _bury): with one, all are carried out first."""
        if len(settlements) == 1 and settlements[0].verdict is Verdict.ACK:
            # Once per job: the delete of the job just finished.
            acked = settlements[0]
            handle: _Handle = acked.message.handle  # type: ignore[assignment]
            return [Owed(protocol.delete(handle.job_id), acked.message.id, False)]
        owed, buries = self._split(settlements)
        if not buries:
            return owed
        self.settle(settlements)
        return []

    @staticmethod
    def _split(settlements: Sequence[Settlement]) -> tuple[list[Owed], list[Settlement]]:
        """The settlements that are one command each (deletes, releases), and the buries."""
        owed, buries = [], []
        for s in settlements:
            handle: _Handle = s.message.handle  # type: ignore[assignment]
            if s.verdict is Verdict.ACK:
                owed.append(Owed(protocol.delete(handle.job_id), s.message.id, False))
            elif s.verdict is Verdict.RELEASE:
                command = protocol.release(
                    handle.job_id, encode_priority(handle.priority, handle.lost),
                    whole_seconds(s.delay, "delay"))
                owed.append(Owed(command, s.message.id, True))
            elif s.keep:
                buries.append(s)
            else:
                owed.append(Owed(protocol.delete(handle.job_id), s.message.id, True))
        return owed, buries

    def _bury(self, message: Message, error: ErrorInfo) -> None:
        handle: _Handle = message.handle  # type: ignore[assignment]
        store = self.store
        pri = encode_priority(handle.priority, handle.lost)
        record = json.dumps({"id": handle.job_id, "error": error.as_dict(),
                             "finished_at": time.time()}).encode()

        def bury(c: Client) -> None:
            # The reason first: the failed listing finds buried jobs through their reasons,
            # so a worker lost between the two moves must leave a reason without a buried
            # job (its job comes back; the listing skips and drops the reason), never a
            # buried job without a reason, which no listing would show.
            c.call(protocol.use(store.reasons_tube))
            try:
                c.call(protocol.put(record, UINT32, 0, REASON_TTR))
            finally:
                c.call(protocol.use(store.channel))
            c.call(protocol.bury(handle.job_id, pri))
        try:
            self._link.io(bury)
        except NotFound:
            logger.warning(LEASE_ENDED, message.id,
                           extra=job_extra(self.store.channel, message.id, attempt=message.attempt))
            return
        self._trimmer.buried()

    # -- lifetime --------------------------------------------------------------------

    def after_fork(self) -> None:
        self._link.forget()
        self._hint = None

    def close(self) -> None:
        try:
            self._trimmer.flush()
        except Exception:  # noqa: BLE001 - closing must go on whatever the trim met
            logger.exception("retention: the trim at close failed")
        self._link.drop()
