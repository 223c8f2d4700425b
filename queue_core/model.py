"""The values drivers and the core exchange: job states, capabilities, a reserved
message, a stored job's record, an attempt's error, a worker's heartbeat record."""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import ConfigError

if TYPE_CHECKING:
    from .consuming import Consumption

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
    retention: bool = False
    """The jobs the driver keeps can be limited by count and age (``keep_failed``, and
    ``keep_completed`` where it keeps DONE jobs, given as a number or
    ``{"max_count": ..., "max_age": ...}``): the driver trims the oldest as later jobs
    finish. A driver that keeps no DONE jobs (``keep_completed`` false) limits FAILED ones
    only; the core refuses ``keep_completed`` there whatever its form."""
    max_retention_age: float | None = None
    """The longest ``max_age`` the back end can hold (AMQP: a message's expiration, 32-bit
    milliseconds), when it has a bound of its own."""
    manual_retry: bool = False
    remove: bool = False
    clear: bool = False
    info: bool = False
    listing: frozenset[JobStatus] = frozenset()
    """The statuses ``jobs(status, limit)`` can list (the ``failed`` command lists FAILED)."""
    reset_attempts: bool = False
    """``retry(..., reset_attempts=True)`` starts the attempt count again."""
    multiprocess: bool = True
    """Workers and producers in other processes share the jobs (False: one process only,
    as with the memory driver)."""
    bulk_push: bool = False
    """``push_many`` costs one round trip rather than one per job."""
    runs_at_push: bool = False
    """The queue runs each job inside ``push`` (the sync driver)."""
    max_delay: float | None = None
    """The longest delay the back end can hold, when below queue-core's own bound."""
    max_payload: int | None = None
    """The largest payload in bytes (a driver whose server decides overrides
    ``Store.payload_limit``)."""
    heartbeats: bool = False
    """Workers can store heartbeat records (``Store.beat``, ``workers``,
    ``forget_worker``): the ``workers`` command lists them and ``listen --workers``
    replaces a worker that stopped beating."""
    waiting_age: bool = False
    """``oldest_waiting`` tells when the job waiting longest was pushed (the metrics'
    oldest-waiting gauge and ``info``)."""
    unique: bool = False
    """``push(unique_key=...)``: a push whose key a waiting, delayed or running job holds
    (or that a ``unique_for`` window holds) stores nothing and returns that job's id,
    decided atomically by the back end (queue_core/unique.py)."""
    rate_limit: bool = False
    """The queue's ``rate``, ``bucket_size`` and ``max_concurrent`` (and a job type's) hold
    across every worker and host: the driver keeps the buckets and slots (``Store.limiter``)."""
    cancel: bool = False
    """``queue.cancel(id)``: a waiting or delayed job fails at once without running; a
    running one is marked, and the worker running it stops it (docs/flow.md)."""
    transactional_push: bool = False
    """``push(job, connection=...)`` writes the job with the caller's own database connection,
    in the caller's transaction: a rollback leaves no job, a commit makes it visible to
    workers (``Store.push_in``)."""
    progress: bool = False
    """A running job's ``self.progress(fraction, message)`` is stored and shown by ``get``."""
    uncounted: frozenset[JobStatus] = frozenset()
    """Statuses ``info`` cannot count on this back end; it leaves them out rather than
    report a number it does not know (AMQP cannot count the messages workers hold)."""

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Retention:
    """How many kept finished jobs of one status (DONE or FAILED) a driver keeps: at most
    ``max_count`` of them, the newest, and none that finished more than ``max_age``
    seconds ago. None is no limit. The core checks the values; a driver only trims."""

    max_count: int | None = None
    max_age: float | None = None

    @property
    def limited(self) -> bool:
        return self.max_count is not None or self.max_age is not None


KEEP_ALL = Retention()
"""No limit: every kept job stays until removed or cleared."""


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
    may_not_have_started: bool = False
    """With ``redelivered``: the lost run may never have begun (the worker that died may
    only have fetched it ahead). The loss is counted in ``attempt`` but never ends the job:
    it runs again."""
    handle: object = field(default=None, repr=False)
    """Driver-private: whatever it needs to settle this reservation."""
    owner: Consumption | None = field(default=None, repr=False, compare=False)
    """The worker's consumption that holds this reservation (set by the core)."""
    began: float = field(default=0.0, repr=False, compare=False)
    """time.monotonic() when the worker began this run; 0 before (set by the core)."""
    decoded: Any = field(default=None, repr=False, compare=False)
    """The job and its settings, or the SerializationError, when the core decoded the
    payload while the message waited for a slot."""
    admitted: bool = field(default=False, repr=False, compare=False)
    """The rate limits let it begin: it holds their tokens (set by the core)."""
    held_slots: list[tuple[str, str]] | None = field(default=None, repr=False, compare=False)
    """The ``max_concurrent`` slots it holds while it runs, (limit name, token) pairs."""
    held_since: float = field(default=0.0, repr=False, compare=False)
    """time.monotonic() of its fetch, where rate limits may hold it back (0: none)."""


class PushRequest(NamedTuple):
    """One job for ``Store.push_many`` (a tuple: one is built per pushed job)."""

    payload: bytes
    ttr: float
    delay: float = 0.0
    priority: int | None = None
    unique_key: str | None = None
    """A push while a job holding this key is waiting, delayed or running stores nothing
    and gives that job's id (only on a driver that declares ``unique``)."""
    unique_for: float | None = None
    """With ``unique_key``: the key is held this many seconds from the push, whatever
    becomes of the job, instead of for the job's life."""


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
    progress: Progress | None = None
    """The latest ``self.progress(...)`` the job reported, if any (Capabilities.progress)."""


@dataclass(frozen=True)
class Progress:
    """How far a job says it is: ``fraction`` in [0, 1], a short ``message``, and ``at``,
    the wall-clock time (time.time()) the job reported it. See queue_core/progress.py."""

    fraction: float
    message: str = ""
    at: float = 0.0


STALE_PERIODS = 3
"""A worker whose last beat is older than this many of its periods has stopped beating."""


@dataclass(frozen=True)
class RunningJob:
    """A job a worker is running, as its heartbeat tells it."""

    id: str
    name: str
    started_at: float
    """Wall-clock time (time.time()) the run began."""


@dataclass(frozen=True)
class WorkerInfo:
    """A worker's heartbeat record: who it is, what it runs, when it last beat.

    Read back from a store it has been checked and bounded (queue_core/beats.py)."""

    id: str
    host: str
    pid: int
    channel: str
    started_at: float
    beat_at: float
    """Wall-clock time of the last beat."""
    period: float
    """Seconds between two beats."""
    jobs: tuple[RunningJob, ...] = ()
    done: int = 0
    failed: int = 0
    """Runs that failed (retried or failed for good) since the worker started."""
    memory_mb: float | None = None

    def age(self, now: float) -> float:
        """Seconds since the last beat (never below 0: another host's clock may be ahead)."""
        return max(0.0, now - self.beat_at)

    def stopped_beating(self, now: float) -> bool:
        return self.age(now) > STALE_PERIODS * self.period


_CHANNEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def check_channel(channel: object) -> str:
    if not isinstance(channel, str) or not _CHANNEL_RE.match(channel):
        raise ConfigError(
            f"channel {channel!r} is not valid: use 1 to 100 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit", key="channel")
    return channel


