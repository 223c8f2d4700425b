"""``Driver``: a driver that is its own store and its single consumer.

Drivers are being split into a Store (store.py) and the Consumers each worker opens
(consumer.py). A driver not yet split subclasses ``Driver``: it reserves one job at a time
for whichever worker calls it and keeps any fetch-ahead and deferred settlement to itself;
``open_consumer`` hands every worker a view of the same object. The values the core and
drivers exchange are in model.py and re-exported here.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

from .consumer import Consumer, Settlement, Verdict
from .errors import NotSupportedError
from .model import (
    DEFAULT_PRIORITY,
    LOGGED_MESSAGE,
    UNREADABLE,
    Capabilities,
    ErrorInfo,
    JobInfo,
    JobStatus,
    Message,
    PushRequest,
    check_channel,
)
from .store import Store

__all__ = ["DEFAULT_PRIORITY", "LOGGED_MESSAGE", "UNREADABLE", "Capabilities", "Consumer",
           "Driver", "ErrorInfo", "JobInfo", "JobStatus", "Message", "PushRequest",
           "Settlement", "Store", "Verdict", "check_channel"]


class Driver(Store):
    """A store that is also the one consumer of every worker using it."""

    def open_consumer(self) -> Consumer:
        return _SelfConsumer(self)

    @abstractmethod
    def reserve(self, timeout: float = 0.0) -> Message | None:
        """Take the next ready job (lowest priority, then oldest) for one run, counting an
        attempt, or return None after waiting up to ``timeout`` seconds."""

    @abstractmethod
    def ack(self, message: Message, *, result: bytes | None = None, keep: bool = False) -> None:
        """The run succeeded: delete the job, or keep it as DONE with its result."""

    def release(self, message: Message, *, delay: float, error: ErrorInfo | None) -> None:
        """The run failed and the core decided to retry after ``delay`` seconds."""
        raise NotSupportedError(f"the {self.name} driver cannot retry jobs")

    def fail(self, message: Message, *, error: ErrorInfo, keep: bool = True) -> None:
        """The job failed for good: keep it as FAILED with the reason, or delete it."""
        self.ack(message, keep=False)

    def flush(self) -> None:  # noqa: B027 - only drivers that defer work override it
        """Carry out anything deferred, such as an ack a driver folds into its next reserve
        to save a round trip. The worker calls this when its loop ends; ``close`` too."""


class _SelfConsumer(Consumer):
    """A worker's consumer of a ``Driver``: the driver's own moves, flushed at close."""

    def __init__(self, driver: Driver) -> None:
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

    def close(self) -> None:
        # The driver stays open: it is also the store that producers push through.
        self.driver.flush()
