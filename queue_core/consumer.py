"""What a driver's Consumer must do: fetch reservations and settle each of them.

A worker opens one consumer. It may hold several reservations at once and settle them in
any order. It never decides anything: the core (consuming.py) sizes each fetch, times the
jobs, keeps the settlements a driver folds into its next call, translates errors and
flushes at close.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

from .model import ErrorInfo, Message


class Verdict(enum.Enum):
    ACK = "ack"
    RELEASE = "release"
    FAIL = "fail"


class Settlement(NamedTuple):
    """The outcome of one run, as the core hands it to ``Consumer.settle`` (a tuple: one
    is built per job)."""

    verdict: Verdict
    message: Message
    result: bytes | None = None
    keep: bool = False
    delay: float = 0.0
    error: ErrorInfo | None = None


class Consumer(ABC):
    """One worker's view of the back end: reservations it holds and settles."""

    prefetch: ClassVar[int] = 1
    """The most reservations one ``fetch`` may return. The core asks for fewer when jobs are
    slow, so that jobs waiting in this worker do not wait behind a long one."""
    window: int = 1
    """How many jobs the worker runs at once (the core sets it). A consumer that the back
    end pushes jobs to (AMQP) keeps its prefetch at least this large and never changes it
    while jobs run: a new consumer's prefetch would not count the jobs still running, and
    the broker would send more than the worker has room for."""
    folds_settlements: ClassVar[bool] = False
    """True: the core may keep a settlement and pass it to the next ``fetch`` or ``begin``,
    which carries it out in the same round trip (``flush`` carries out what is left)."""

    @abstractmethod
    def fetch(self, max_n: int, timeout: float,
              settle: Sequence[Settlement] = ()) -> list[Message]:
        """Carry out ``settle``, then reserve up to ``max_n`` ready jobs (lowest priority,
        then oldest), waiting up to ``timeout`` seconds for the first. Returns [] when none
        came. A reserved job is not yet started: see ``begin``."""

    def begin(self, message: Message, settle: Sequence[Settlement] = ()) -> bool:
        """Carry out ``settle``; the worker is about to run ``message``. A driver that tells
        a started run from a fetched one marks it started here (a run counts as an attempt
        once begun). False: the reservation is no longer this worker's (it waited past its
        fetch lease and another worker took the job); the core skips it."""
        self.settle(settle)
        return True

    def begin_many(self, messages: Sequence[Message],
                   settle: Sequence[Settlement] = ()) -> list[bool]:
        """``begin`` for each of ``messages``, in order, ``settle`` carried out first: a
        worker with several slots free begins several jobs at once, and a driver may send
        them to the back end together. One answer per message, as ``begin`` gives it."""
        return [self.begin(message, settle if index == 0 else ())
                for index, message in enumerate(messages)]

    def ack(self, message: Message, *, result: bytes | None = None, keep: bool = False) -> None:
        """The run succeeded: delete the job, or keep it as DONE with its result."""
        self.settle((Settlement(Verdict.ACK, message, result=result, keep=keep),))

    def release(self, message: Message, *, delay: float, error: ErrorInfo | None) -> None:
        """The run failed and the core decided to retry after ``delay`` seconds."""
        self.settle((Settlement(Verdict.RELEASE, message, delay=delay, error=error),))

    def fail(self, message: Message, *, error: ErrorInfo, keep: bool = True) -> None:
        """The job failed for good: keep it as FAILED with the reason, or delete it."""
        self.settle((Settlement(Verdict.FAIL, message, error=error, keep=keep),))

    def settle(self, settlements: Sequence[Settlement]) -> None:
        """Carry out settlements, in order (the core's own calls, and those it kept back
        for ``folds_settlements``)."""
        for s in settlements:
            if s.verdict is Verdict.ACK:
                self.ack(s.message, result=s.result, keep=s.keep)
            elif s.verdict is Verdict.RELEASE:
                self.release(s.message, delay=s.delay, error=s.error)
            else:
                assert s.error is not None
                self.fail(s.message, error=s.error, keep=s.keep)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A consumer settles one way or the other: ``settle`` for a batch, or ``ack``,
        # ``release`` and ``fail`` one by one. Each default is written with the others.
        moves = ("ack", "release", "fail")
        if cls.settle is Consumer.settle and any(getattr(cls, m) is getattr(Consumer, m)
                                                 for m in moves):
            raise TypeError(f"{cls.__qualname__} must define settle, or ack, release "
                            "and fail")

    def give_back(self, messages: Sequence[Message]) -> None:  # noqa: B027 - leases suffice
        """Fetched jobs this worker will not begin (it is stopping): return them without
        charging an attempt. Where a driver cannot, their lease brings them back."""

    def after_fork(self) -> None:  # noqa: B027 - only consumers holding connections
        """In a forked child: forget inherited connections without closing them."""

    def close(self) -> None:  # noqa: B027 - most consumers hold nothing of their own
        """Release this consumer's connections. Safe to call twice."""
