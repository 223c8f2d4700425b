"""An in-memory driver that records what the core tells it, for the policy unit tests.

It declares every capability so that the core's decisions, not a driver's limits, are
what the tests observe. A released job is ready again at once; the delay is recorded.
Its consumer passes every move to the driver's own methods, so that a test overrides
``reserve``, ``ack``, ... on the driver to script a back end.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from queue_core import Capabilities, ErrorInfo, JobStatus, Message, Store
from queue_core.consumer import Consumer, Settlement


@dataclass
class Pushed:
    id: str
    payload: bytes
    ttr: float
    delay: float
    priority: int | None
    pushed_at: float
    attempt: int = 0


class _Relay(Consumer):
    def __init__(self, driver: RecordingDriver) -> None:
        self.driver = driver

    def fetch(self, max_n: int, timeout: float,
              settle: Sequence[Settlement] = ()) -> list[Message]:
        self.settle(settle)
        message = self.driver.reserve(timeout)
        return [] if message is None else [message]

    def ack(self, message: Message, *, result: bytes | None = None, keep: bool = False) -> None:
        self.driver.ack(message, result=result, keep=keep)

    def release(self, message: Message, *, delay: float, error: ErrorInfo | None) -> None:
        self.driver.release(message, delay=delay, error=error)

    def fail(self, message: Message, *, error: ErrorInfo, keep: bool = True) -> None:
        self.driver.fail(message, error=error, keep=keep)


@dataclass
class RecordingDriver(Store):
    name = "recording"
    capabilities = Capabilities(delay=True, priority=True, ttr_lease=True, retry=True,
                                attempt_count=True, failed_store=True)

    pushed: list[Pushed] = field(default_factory=list)
    released: list[tuple[str, int, float, str | None]] = field(default_factory=list)
    failed: list[tuple[str, int, ErrorInfo]] = field(default_factory=list)
    acked: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(channel="queue")
        self._ready: deque[Pushed] = deque()
        self._ids = itertools.count(1)

    def open_consumer(self) -> Consumer:
        return _Relay(self)

    def push(self, payload: bytes, *, ttr: float, delay: float = 0.0,
             priority: int | None = None) -> str:
        item = Pushed(str(next(self._ids)), payload, ttr, delay, priority, time.time())
        self.pushed.append(item)
        self._ready.append(item)
        return item.id

    def reserve(self, timeout: float = 0.0) -> Message | None:
        if not self._ready:
            return None
        item = self._ready.popleft()
        item.attempt += 1
        return Message(item.id, item.payload, item.attempt, item.ttr, item.priority,
                       item.pushed_at, handle=item)

    def ack(self, message: Message, *, result: bytes | None = None, keep: bool = False) -> None:
        self.acked.append((message.id, message.attempt))

    def release(self, message: Message, *, delay: float, error: ErrorInfo | None) -> None:
        self.released.append((message.id, message.attempt, delay,
                              None if error is None else error.type))
        self._ready.append(message.handle)  # type: ignore[arg-type]

    def fail(self, message: Message, *, error: ErrorInfo, keep: bool = True) -> None:
        self.failed.append((message.id, message.attempt, error))

    def delays(self) -> list[float]:
        return [delay for _, _, delay, _ in self.released]

    def backdate(self, seconds: float) -> None:
        for item in self.pushed:
            item.pushed_at -= seconds

    def lose(self, job_id: str) -> Message:
        """Reserve a job as a worker that then vanishes; the next reserve is a redelivery."""
        message = self.reserve()
        assert message is not None and message.id == job_id
        self._ready.appendleft(message.handle)  # type: ignore[arg-type]
        return message

    def reserve_redelivered(self, timeout: float = 0.0) -> Any:
        message = self.reserve(timeout)
        if message is not None:
            message.redelivered = True
        return message


class SurprisingDriver(RecordingDriver):
    """A back end that answers what nothing expects: every admin call raises a plain
    exception, not a DriverError (for the CLI's one-sentence promise)."""

    name = "surprising"
    capabilities = Capabilities(delay=True, ttr_lease=True, retry=True, attempt_count=True,
                                failed_store=True, status=True, info=True,
                                listing=frozenset(JobStatus),
                                manual_retry=True, remove=True, clear=True, cancel=True)

    def _surprise(self, *args: Any, **kwargs: Any) -> Any:
        raise KeyError("an answer nothing expected")

    status = get = info = jobs = remove = clear = retry = cancel = _surprise  # type: ignore[assignment]
