"""One error root, :class:`QueueError`, and its subclasses."""

from __future__ import annotations


class QueueError(Exception):
    """Root of every error queue-core raises."""


class ConfigError(QueueError, ValueError):
    """A setting is unknown or has a bad value; the message names the key."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class InvalidArgumentError(QueueError, ValueError):
    """A call received an argument it cannot use (a negative delay, a priority out of range)."""


class NotSupportedError(QueueError):
    """The driver does not declare the capability a call or setting needs."""


class SerializationError(QueueError):
    """A job cannot be encoded at push (nothing is written) or a payload cannot be decoded."""


class DamagedJobError(SerializationError):
    """A job's record, as read back from the store, holds values no run can use (a ttr
    that is not a number, a missing payload): it fails at once, never retried."""


class JobTimeoutError(QueueError):
    """A run exceeded its ttr and was interrupted."""


class JobCancelledError(QueueError):
    """The job was cancelled (``queue.cancel``): it failed for good, never retried."""


class WorkerLostError(QueueError):
    """The process running an attempt vanished (killed, crashed) before reporting back."""


class DriverError(QueueError):
    """The back end failed: connection lost, server error, storage full."""


class JobNotFoundError(QueueError):
    """No job with that id (BullMQ error code -1)."""

    code = -1


class JobNotInStateError(QueueError):
    """The job exists but is not in the state the call requires (BullMQ error code -3)."""

    code = -3
