"""The consumer machinery every driver shares, owned by the core.

A worker drives a ``Consumption``: it wraps the driver's Consumer with fetch-ahead sized
from the job durations the worker measures (quick jobs are fetched several at a time, slow
ones one by one, so that no job waits in a worker behind a long one), settlements kept back
for drivers that fold them into their next call, translation of the client library's
errors into DriverError, a close that settles what is kept and gives back what was
fetched but never begun, and the rate limits' gate (throttle.py): a fetched job begins
only once the limits admit it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

from .consumer import Consumer, Settlement, Verdict
from .errors import DriverError
from .logfields import job_extra
from .model import ErrorInfo, Message
from .throttle import HOLD_MAX

if TYPE_CHECKING:
    from .store import Store
    from .throttle import Throttle

logger = logging.getLogger(__name__)

QUICK_JOB = 0.002
"""Jobs quicker than this (seconds, running average) are fetched several at a time."""
FETCH_AHEAD = 0.005
"""Seconds of such jobs fetched at once: no job fetched with others waits longer than
about this for the ones before it."""
AHEAD_JOB_MAX = 0.1
"""With every slot busy, jobs are fetched ahead only while jobs (running average) take at
most this many seconds: those wait in the worker until slots free."""
SLOT_WAIT = 0.05
"""Seconds a worker that may not wait (``run``) sleeps when limits hold its jobs back."""
WAIT_MAX = 1.0
"""Longest sleep while limits hold jobs back."""
SHORT_WAIT = 0.01
"""A limit that holds jobs back for less than this (a high rate's next token) does not
make the worker fetch one job at a time."""
EARLY = 0.9
"""The share of the time until the next token a held worker sleeps before asking again."""
_AVERAGE_KEEP = 0.8
"""Weight of the past in the running average of job durations."""

T = TypeVar("T")
_new = tuple.__new__


class Consumption:
    """One worker's consumer, with fetch-ahead, kept-back settlements and error translation."""

    def __init__(self, store: Store, consumer: Consumer) -> None:
        self.store = store
        self.consumer = consumer
        self._fetched: deque[Message] = deque()
        self._kept: list[Settlement] = []
        self._job_time: float | None = None
        """Running average of job durations; until one is timed, a worker takes one job at
        a time rather than a batch of slow ones."""
        self._folds = consumer.folds_settlements
        self._one_at_a_time = consumer.prefetch <= 1
        self._marks_begin = type(consumer).begin is not Consumer.begin
        """False: begin only carries out kept settlements, so with none kept it is skipped."""
        self.acked = 0
        self.failed = 0
        """Runs settled as done, and as failed (released for a retry or failed for good):
        what the worker's heartbeat reports."""
        self.throttle: Throttle | None = None
        """The rate limits' gate (set by the queue where limits are set)."""
        self.throttled = False
        """The last ``next`` or ``next_many`` came back empty because limits held back
        the jobs at hand (there are jobs: ``run`` goes on)."""
        self._refused_at = -HOLD_MAX
        """time.monotonic() when limits last held a job back: for HOLD_MAX seconds after,
        jobs are fetched one at a time (a batch would wait here past its fetch lease)."""

    # -- taking jobs -----------------------------------------------------------------

    def next(self, timeout: float, room: int = 1) -> Message | None:
        """The next job to run, begun; None when none came within ``timeout`` seconds.
        ``room``: how many jobs the worker would begin now (it runs several at once), so a
        fetch may bring that many, each begun as soon as it is asked for."""
        self.throttled = False
        while True:
            if not self._fetched and not self._fill(self._fetch_size(room), timeout):
                return None
            if self.throttle is None:
                message = self._fetched.popleft()
            elif self._fetched[0].admitted:
                message = self._fetched.popleft()  # once per job: admitted with its batch
            else:
                admitted = self._admitted(1, timeout)
                if not admitted:
                    return None
                message = admitted[0]
            kept = self._kept
            if kept:
                self._kept = []
            elif not self._marks_begin:
                message.began = time.monotonic()
                return message
            try:
                ours = self.consumer.begin(message, kept or ())
            except BaseException as exc:
                if kept:
                    self._kept[:0] = kept
                # The reservations fetched with it may be gone with the connection: their
                # leases bring them back.
                self._fetched.clear()
                self._raise(exc)
            if ours is not False:  # a driver that says nothing means it is ours
                message.began = time.monotonic()
                return message
            self._taken_elsewhere(message)

    def next_many(self, timeout: float, room: int,
                  last: Callable[[Message], bool] | None = None) -> list[Message]:
        """Up to ``room`` jobs to run, begun together (in one call to the back end where
        the driver can); [] when none came within ``timeout`` seconds. With ``last``, the
        batch ends at the first job it is true of (jobs after it stay fetched, unbegun)."""
        self.throttled = False
        while True:
            if not self._fetched and not self._fill(self._fetch_size(room), timeout):
                return []
            fetched = self._fetched
            if self.throttle is not None:
                batch = self._admitted(room, timeout, last)
                if not batch:
                    return []
            elif last is None:
                batch = [fetched.popleft() for _ in range(min(room, len(fetched)))]
            else:
                batch = []
                while fetched and len(batch) < room:
                    batch.append(fetched.popleft())
                    if last(batch[-1]):
                        break
            kept = self._kept
            self._kept = []
            try:
                answers = self.consumer.begin_many(batch, kept)
            except BaseException as exc:
                self._kept[:0] = kept
                self._fetched.clear()  # as in next(): their leases bring them back
                self._raise(exc)
            now = time.monotonic()
            begun = []
            for message, ours in zip(batch, answers, strict=True):
                if ours is not False:
                    message.began = now
                    begun.append(message)
                else:
                    self._taken_elsewhere(message)
            if begun:
                return begun

    def _admitted(self, room: int, timeout: float,
                  last: Callable[[Message], bool] | None = None) -> list[Message]:
        """Up to ``room`` fetched jobs the limits admit, in order, taken out of those
        fetched (with ``last``, the batch ends at the first job it is true of). Asks the
        limiter once for every fetched job not admitted yet (for slots, only as many as
        would begin). [] when the limits hold every job back: after waiting up to
        ``timeout`` (a short while when 0) for them, with ``throttled`` set."""
        throttle = self.throttle
        assert throttle is not None
        fetched = self._fetched
        pending = [message for message in fetched if not message.admitted]
        ready = len(fetched) - len(pending)
        wait = 0.0
        if pending and ready < room:
            asked = pending[:room - ready] if throttle.slots else pending
            wait = self._call(throttle.admit, asked)
            refused = [message for message in asked if not message.admitted]
            if refused:
                if wait >= SHORT_WAIT:
                    self._refused_at = time.monotonic()
                self._hold(refused)
        batch: list[Message] = []
        rest: deque[Message] = deque()
        for message in self._fetched:
            if message.admitted and len(batch) < room and not (
                    batch and last is not None and last(batch[-1])):
                batch.append(message)
            else:
                rest.append(message)
        self._fetched = rest
        if not batch:
            self.throttled = True
            if self._kept:
                self.flush()  # the runs that ended are not left unreported while it waits
            # A little before the next token is due: the worker that asks first gets it,
            # and a bucket that waits full for a late asker loses that time for good.
            pause = min(wait * EARLY if wait else SLOT_WAIT, timeout or SLOT_WAIT, WAIT_MAX)
            if pause >= 0.001:  # (a token due sooner is asked for at once)
                time.sleep(pause)
        return batch

    def _holding(self) -> bool:
        """Whether limits held jobs back lately (then jobs are fetched one at a time)."""
        return (self.throttle is not None
                and time.monotonic() - self._refused_at < HOLD_MAX)

    def _hold(self, refused: list[Message]) -> None:
        """Jobs the limits hold back wait here; those waiting past HOLD_MAX go back to the
        queue uncharged (they were never begun), for any worker to take later."""
        now = time.monotonic()
        stale = [message for message in refused if now - message.held_since > HOLD_MAX]
        if stale:
            for message in stale:
                self._fetched.remove(message)
            logger.debug("giving back %d jobs the rate limits held back for %gs",
                         len(stale), HOLD_MAX)
            self._call(self.consumer.give_back, stale)

    def _free_slots(self, message: Message) -> None:
        """The run of ``message`` settled (or will never begin): its slots go."""
        assert self.throttle is not None
        try:
            self.throttle.release(message)
        except Exception as exc:  # noqa: BLE001 - the slot's lease frees it
            logger.warning("job %s: could not free its max_concurrent slot (%s); its lease "
                           "frees it", message.id, exc,
                           extra=job_extra(self.store.channel, message.id,
                                           attempt=message.attempt))

    def _taken_elsewhere(self, message: Message) -> None:
        if message.held_slots is not None and self.throttle is not None:
            self._free_slots(message)
        logger.warning("job %s was fetched ahead and another worker took it before it "
                       "began (its fetch lease ran out); skipping it here", message.id,
                       extra=job_extra(self.store.channel, message.id, attempt=message.attempt))

    def _fill(self, size: int, timeout: float) -> bool:
        """Fetch up to ``size`` jobs (not begun), carrying the kept settlements; False when
        none came within ``timeout`` seconds."""
        # _carrying_kept, written out: this runs once per job on many drivers.
        kept = self._kept
        if kept:
            self._kept = []
        try:
            got = self.consumer.fetch(size, timeout, kept or ())
        except BaseException as exc:
            if kept:
                self._kept[:0] = kept
            self._raise(exc)
        for message in got:
            message.owner = self
        if self.throttle is not None:
            now = time.monotonic()
            for message in got:
                message.held_since = now
        self._fetched.extend(got)
        return bool(got)

    def fetch_ahead(self, slots: int) -> list[Message]:
        """Every one of the worker's ``slots`` is busy: fetch the jobs that will fill them
        as they free, so that those begin without waiting for a round trip to the back
        end; returns them. Only for jobs short enough that they wait little (here, where
        no other worker can run them), on a driver that fetches ahead, and only when none
        is at hand; it does not wait for jobs to come."""
        if (self._fetched or self._one_at_a_time or self._holding() or self._job_time is None
                or self._job_time > AHEAD_JOB_MAX):
            return []
        self._fill(min(slots, self.consumer.prefetch), 0.0)
        return list(self._fetched)

    def allow_in_flight(self, count: int) -> None:
        """The worker runs up to ``count`` jobs at once."""
        self.consumer.window = count

    def has_fetched(self) -> bool:
        """Whether jobs fetched and not yet begun are at hand (``next(0)`` needs no round
        trip for them)."""
        return bool(self._fetched)

    def _fetch_size(self, room: int) -> int:
        return 1 if self._one_at_a_time or self._holding() else max(self._batch_size(),
                                                 min(room, self.consumer.prefetch))

    def _batch_size(self) -> int:
        limit = self.consumer.prefetch
        if limit <= 1 or self._job_time is None or self._job_time > QUICK_JOB:
            return 1
        return max(1, min(limit, int(FETCH_AHEAD / max(self._job_time, 1e-6))))

    def _carrying_kept(self, call: Callable[..., T], *args: object) -> T:
        """``call(*args, kept)``. Settlements whose call failed are kept to be tried again:
        settling a reservation already settled is harmless to every driver."""
        kept, self._kept = self._kept, []
        try:
            return call(*args, kept)
        except BaseException as exc:
            self._kept[:0] = kept
            self._raise(exc)

    # -- settling --------------------------------------------------------------------

    def ack(self, message: Message, *, result: bytes | None = None, keep: bool = False) -> None:
        self.acked += 1
        if message.held_slots is not None and self.throttle is not None:
            self._free_slots(message)
        # _timed, written out: this runs once per job.
        if message.began:
            took = time.monotonic() - message.began
            message.began = 0.0
            average = self._job_time
            self._job_time = took if average is None else (
                _AVERAGE_KEEP * average + (1 - _AVERAGE_KEEP) * took)
        if self._folds:
            # tuple.__new__: Settlement's own __new__ is a Python call, and this runs per job.
            self._kept.append(_new(Settlement, (Verdict.ACK, message, result, keep, 0.0, None)))
            return
        try:  # _call, written out: this runs once per job
            self.consumer.ack(message, result=result, keep=keep)
        except BaseException as exc:
            self._raise(exc)

    def release(self, message: Message, *, delay: float, error: ErrorInfo | None) -> None:
        if error is not None:  # None: given back uncharged (Ctrl-C), not a failure
            self.failed += 1
        if message.held_slots is not None and self.throttle is not None:
            self._free_slots(message)
        self._timed(message)
        if self._folds:
            self._kept.append(Settlement(Verdict.RELEASE, message, delay=delay, error=error))
            return
        self._call(self.consumer.release, message, delay=delay, error=error)

    def fail(self, message: Message, *, error: ErrorInfo, keep: bool = True) -> None:
        self.failed += 1
        if message.held_slots is not None and self.throttle is not None:
            self._free_slots(message)
        self._timed(message)
        if self._folds:
            self._kept.append(Settlement(Verdict.FAIL, message, error=error, keep=keep))
            return
        self._call(self.consumer.fail, message, error=error, keep=keep)

    def _timed(self, message: Message) -> None:
        """Count the run of ``message`` in the running average of job durations."""
        if message.began:
            took = time.monotonic() - message.began
            message.began = 0.0
            self._job_time = took if self._job_time is None else (
                _AVERAGE_KEEP * self._job_time + (1 - _AVERAGE_KEEP) * took)

    # -- lifetime --------------------------------------------------------------------

    def flush(self) -> None:
        """Carry out the settlements kept back."""
        if self._kept:
            self._carrying_kept(self.consumer.settle)

    def close(self) -> None:
        """Settle what is kept, give back what was fetched and not begun, close."""
        try:
            self.flush()
            unbegun = list(self._fetched)
            self._fetched.clear()
            if unbegun:
                if self.throttle is not None:
                    for message in unbegun:
                        if message.held_slots is not None:
                            self._free_slots(message)
                self._call(self.consumer.give_back, unbegun)
        finally:
            self.consumer.close()

    def after_fork(self) -> None:
        """In a forked child: what the parent holds is the parent's to settle."""
        self._fetched.clear()
        self._kept = []
        self.consumer.after_fork()

    def _call(self, call: Callable[..., T], *args: object, **kwargs: object) -> T:
        try:
            return call(*args, **kwargs)
        except BaseException as exc:
            self._raise(exc)

    def _raise(self, exc: BaseException) -> NoReturn:
        """Raise ``exc``, a client library's error as DriverError."""
        if isinstance(exc, self.store.transient_errors) and not isinstance(exc, DriverError):
            raise DriverError(f"{self.store.describe()}: {type(exc).__name__}: {exc}") from exc
        raise exc

    def describe(self) -> str:
        return self.store.describe()
