"""The driver contract: what a back end stores and moves, and what it declares it can do.

A driver never decides anything about retries or time limits. The core tells it to
``ack``, ``release(delay)`` or ``fail``; the driver only has to make each of those moves
atomic, and count attempts (one per reserve) so that a run whose worker vanished is
still counted.
"""

from __future__ import annotations

import enum
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, NamedTuple

from .errors import ConfigError, NotSupportedError

UNREADABLE = "DamagedJobRecord"
"""The error type shown for a stored record (or part of one) that cannot be read."""

DEFAULT_PRIORITY = 1024
"""The priority a job gets when none is given (beanstalkd's customary default)."""


class JobStatus(str, enum.Enum):
    WAITING = "waiting"
    DELAYED = "delayed"
    RESERVED = "reserved"
    DONE = "done"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: JobStatus | str) -> JobStatus:
        if isinstance(value, JobStatus):
            return value
        text = str(value).strip().lower()
        aliases = {"completed": "done", "complete": "done", "ready": "waiting", "wait": "waiting"}
        text = aliases.get(text, text)
        try:
            return cls(text)
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ConfigError(f"unknown job status {value!r}; expected one of {names}") from None


@dataclass(frozen=True)
class Capabilities:
    """What a driver can do. The core checks these flags once and refuses the rest."""

    delay: bool = False
    priority: bool = False
    priority_range: tuple[int, int] = (0, 2**32 - 1)
    ttr_lease: bool = False
    """A job reserved by a worker that vanished comes back when its lease (ttr) runs out."""
    lease_by_connection: bool = False
    """The server also takes a job back as soon as its worker's connection closes
    (beanstalkd, AMQP), instead of only when the lease runs out."""
    retry: bool = False
    """``release(delay)`` puts a job back for another attempt."""
    attempt_count: bool = False
    status: bool = False
    failed_store: bool = False
    last_error: bool = False
    """``get`` of a job waiting for a retry shows the error of its last attempt."""
    keep_completed: bool = False
    manual_retry: bool = False
    remove: bool = False
    clear: bool = False
    info: bool = False
    listing: bool = False
    """``jobs(status, limit)`` lists stored jobs (used by the ``failed`` command)."""
    bulk_push: bool = False
    """``push_many`` costs one round trip rather than one per job."""
    runs_at_push: bool = False
    """The queue runs each job inside ``push`` (the sync driver)."""
    max_delay: float | None = None
    """The longest delay the back end can hold, when below queue-core's own bound."""
    max_payload: int | None = None
    """The largest payload in bytes (a driver whose server decides overrides
    ``Driver.payload_limit``)."""
    uncounted: frozenset[JobStatus] = frozenset()
    """Statuses ``info`` cannot count on this back end; it leaves them out rather than
    report a number it does not know (AMQP cannot count the messages workers hold)."""

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ErrorInfo:
    """Why an attempt failed, as stored with the job."""

    type: str
    message: str
    traceback: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "traceback": self.traceback}

    @classmethod
    def from_dict(cls, data: Any) -> ErrorInfo | None:
        """The error as stored; a stored value that is not one still reads as an error."""
        if not data:
            return None
        if not isinstance(data, dict):
            return cls(UNREADABLE, f"the stored error is not an object: {repr(data)[:200]}")
        return cls(str(data.get("type", "")), str(data.get("message", "")),
                   str(data.get("traceback", "")))

    @classmethod
    def from_json(cls, raw: str | bytes | None) -> ErrorInfo | None:
        if not raw:
            return None
        try:
            data = json.loads(raw)
        except (ValueError, TypeError, RecursionError):
            return cls(UNREADABLE, f"the stored error is not JSON: {repr(raw)[:200]}")
        return cls.from_dict(data)

    def __str__(self) -> str:
        # Shown in log lines: a message of megabytes would make one line of megabytes.
        message = self.message if len(self.message) <= LOGGED_MESSAGE else (
            f"{self.message[:LOGGED_MESSAGE]}... [{len(self.message)} characters]")
        return f"{self.type}: {message}" if message else self.type


LOGGED_MESSAGE = 2000
"""Characters of an error message a log line shows; the store keeps the whole message."""


@dataclass
class Message:
    """A reserved job, as a driver hands it to the worker."""

    id: str
    payload: bytes
    attempt: int
    """1-based number of the run that is about to start (reserves so far, this one included)."""
    ttr: float
    priority: int | None = None
    pushed_at: float | None = None
    redelivered: bool = False
    """The previous run of this job ended without a verdict: its worker was lost."""
    loss_unproven: bool = False
    """With ``redelivered``: the driver cannot tell whether that lost run had started (the
    job may only have been prefetched by the worker that died). The loss is counted in
    ``attempt`` but never ends the job: it runs again."""
    handle: Any = field(default=None, repr=False)
    """Driver-private: whatever it needs to ack, release or fail this reservation."""


class PushRequest(NamedTuple):
    """One job for ``Driver.push_many`` (a tuple: one is built per pushed job)."""

    payload: bytes
    ttr: float
    delay: float = 0.0
    priority: int | None = None


@dataclass
class JobInfo:
    """Everything stored about one job. ``queue.get(id)`` returns it."""

    id: str
    status: JobStatus
    attempt: int = 0
    priority: int | None = None
    ttr: float | None = None
    pushed_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    ready_at: float | None = None
    error: ErrorInfo | None = None
    result: Any = None
    job_name: str | None = None
    payload: bytes = field(default=b"", repr=False)


_CHANNEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def check_channel(channel: object) -> str:
    if not isinstance(channel, str) or not _CHANNEL_RE.match(channel):
        raise ConfigError(
            f"channel {channel!r} is not valid: use 1 to 100 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit", key="channel")
    return channel


class Driver(ABC):
    """Base class of every driver: stores jobs and moves them between states."""

    name: ClassVar[str] = "driver"
    capabilities: ClassVar[Capabilities] = Capabilities()
    lease_grace: float = 1.0
    """Seconds a lease outlives the ttr, so a worker that hit its time limit can still report."""

    def __init__(self, *, channel: str = "queue") -> None:
        self.channel = check_channel(channel)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Driver:
        raise NotSupportedError(f"the {cls.name} driver cannot be configured from a URL")

    def lease_seconds(self, ttr: float) -> float:
        return ttr + self.lease_grace

    # -- the moves -------------------------------------------------------------------

    @abstractmethod
    def push(self, payload: bytes, *, ttr: float, delay: float = 0.0,
             priority: int | None = None) -> str:
        """Store a job; return its id. Must raise DriverError rather than drop it."""

    def push_many(self, requests: Sequence[PushRequest]) -> list[str]:
        return [self.push(r.payload, ttr=r.ttr, delay=r.delay, priority=r.priority)
                for r in requests]

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

    # -- queries and admin -----------------------------------------------------------

    def status(self, job_id: str) -> JobStatus | None:
        """The job's state, or None when the store does not know the id."""
        raise NotSupportedError(f"the {self.name} driver cannot report job status")

    def get(self, job_id: str) -> JobInfo | None:
        raise NotSupportedError(f"the {self.name} driver cannot look up jobs")

    def info(self) -> dict[JobStatus, int]:
        raise NotSupportedError(f"the {self.name} driver cannot count jobs")

    def jobs(self, status: JobStatus, limit: int = 100) -> list[JobInfo]:
        raise NotSupportedError(f"the {self.name} driver cannot list jobs")

    def remove(self, job_id: str) -> bool:
        raise NotSupportedError(f"the {self.name} driver cannot remove jobs")

    def clear(self) -> None:
        raise NotSupportedError(f"the {self.name} driver cannot clear its jobs")

    def retry(self, job_id: str, *, state: JobStatus, reset_attempts: bool = False) -> None:
        """Move a DONE or FAILED job back to WAITING, clearing error, times and result.

        Raises JobNotFoundError for an unknown id, JobNotInStateError when the job is not
        in ``state``."""
        raise NotSupportedError(f"the {self.name} driver cannot retry finished jobs")

    def check_setup(self, ttr: float) -> None:  # noqa: B027 - only drivers with server settings
        """Called when a worker starts, with the queue's ttr: a driver warns here about a
        server setting that breaks a promise (RabbitMQ's consumer timeout below the ttr,
        a Redis that keeps nothing on disk)."""

    payload_limit_setting: str = ""
    """The server setting behind ``payload_limit``, named when a push is refused."""

    def payload_limit(self) -> int | None:
        """The largest payload, in bytes, the back end accepts (None: no limit of its own).
        The core refuses a larger job at push with a sentence naming the limit."""
        return self.capabilities.max_payload

    def after_fork(self) -> None:  # noqa: B027 - only drivers holding connections override it
        """Called in a child process forked by an isolated worker, before it runs a job.

        Connections and files inherited from the parent belong to the parent: forget them
        without closing them (closing could end the parent's session), and open new ones
        if the job needs the queue."""

    def flush(self) -> None:  # noqa: B027 - only drivers that defer work override it
        """Carry out anything deferred, such as an ack a driver folds into its next reserve
        to save a round trip. The worker calls this when its loop ends; ``close`` too."""

    def close(self) -> None:  # noqa: B027 - most drivers hold nothing to release
        """Release connections and files. Safe to call twice."""

    def describe(self) -> str:
        """A human-readable location for logs; never contains a password."""
        return f"{self.name}:{self.channel}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
