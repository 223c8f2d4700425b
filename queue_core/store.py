"""What a driver's Store must do: keep jobs for producers and admin, and open consumers.

A store is shared by every thread of a process (pushes, lookups, the ``failed`` command);
each worker opens its own Consumer (consumer.py) with ``open_consumer``. A store never
decides anything about retries or time limits: the core tells it what to keep.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import NotSupportedError
from .model import (
    KEEP_ALL,
    Capabilities,
    ErrorInfo,
    JobInfo,
    JobStatus,
    Progress,
    PushRequest,
    Retention,
    WorkerInfo,
    check_channel,
)
from .options import Option, url_and_options

if TYPE_CHECKING:
    from .consumer import Consumer
    from .limits import Limiter


class Store(ABC):
    """Base class of every driver: keeps jobs, says what it can do, opens consumers."""

    name: ClassVar[str] = "driver"
    capabilities: ClassVar[Capabilities] = Capabilities()
    options: ClassVar[tuple[Option, ...]] = ()
    """Every option the driver takes (queue_core.options): its URL's and its settings'."""
    lease_grace: float = 1.0
    """Seconds a lease outlives the ttr, so a worker that hit its time limit can still report."""
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    """The client library's errors that mean "the back end is unreachable or failed now";
    the core reports them as DriverError. A driver sets them once its client is imported."""

    retention_done: Retention = KEEP_ALL
    """The limits on kept DONE jobs (``set_retention``)."""
    retention_failed: Retention = KEEP_ALL
    """The limits on kept FAILED jobs (``set_retention``)."""

    def __init__(self, *, channel: str = "queue") -> None:
        self.channel = check_channel(channel)

    def set_retention(self, *, done: Retention, failed: Retention) -> None:
        """The limits on kept finished jobs, set by the queue (which checked them, and
        refuses limits when ``capabilities.retention`` is false) before any consumer opens.
        A driver that declares ``retention`` trims the oldest kept jobs as others finish."""
        self.retention_done = done
        self.retention_failed = failed

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Store:
        """The driver a URL names, with the options of its query string and ``options``
        (which win), checked against ``cls.options``. A driver whose URL says more (a
        host, a path) overrides this."""
        if not cls.options:
            raise NotSupportedError(f"the {cls.name} driver cannot be configured from a URL")
        _, values = url_and_options(cls.name, cls.options, url, options)
        return cls(**values)

    def lease_seconds(self, ttr: float) -> float:
        return ttr + self.lease_grace

    @abstractmethod
    def open_consumer(self) -> Consumer:
        """A new consumer for one worker. The core wraps it (consuming.Consumption)."""

    # -- producers -------------------------------------------------------------------

    @abstractmethod
    def push(self, payload: bytes, *, ttr: float, delay: float = 0.0,
             priority: int | None = None) -> str:
        """Store a job; return its id. Must raise DriverError rather than drop it."""

    def push_many(self, requests: Sequence[PushRequest]) -> list[str]:
        return [self.push(r.payload, ttr=r.ttr, delay=r.delay, priority=r.priority)
                for r in requests]

    def push_in(self, connection: Any, requests: Sequence[PushRequest]) -> list[str]:
        """Store jobs with the caller's ``connection``, inside the caller's transaction
        (only on a driver that declares ``transactional_push``)."""
        raise NotSupportedError(f"the {self.name} driver cannot push in a caller's transaction")

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

    def oldest_waiting(self) -> float | None:
        """The push time (``time.time()``) of the WAITING job pushed first, or None when
        no job waits (Capabilities.waiting_age)."""
        raise NotSupportedError(f"the {self.name} driver cannot tell the oldest waiting job")

    # -- rate limits (Capabilities.rate_limit) -----------------------------------------

    def limiter(self) -> Limiter:
        """The buckets and slots of rate limits, shared by every worker of the channel on
        every host (queue_core.limits.Limiter). Called once per worker."""
        raise NotSupportedError(f"the {self.name} driver does not support rate limits")

    # -- cancellation and progress (Capabilities.cancel, Capabilities.progress) ---------

    def cancel(self, job_id: str, *, error: ErrorInfo, keep: bool = True) -> str | None:
        """Cancel a job, atomically with respect to its reservation: a WAITING or DELAYED
        one is failed now with ``error`` (kept as FAILED when ``keep``, its attempt count
        untouched) and ``"failed"`` is returned; a RESERVED one gets a cancel mark, which
        its worker looks up (``cancel_requested``), and ``"marked"`` is returned; None for
        an unknown or finished job. A mark outlives a release (the job is not run again
        past its first poll) and goes with the job's end, removal or manual retry. A
        failed job's unique key is freed, as when a run fails for good."""
        raise NotSupportedError(f"the {self.name} driver does not support cancelling jobs")

    def cancel_requested(self, job_ids: Sequence[str]) -> set[str]:
        """Which of ``job_ids`` (running in the caller's worker) carry a cancel mark: one
        batched call, read through ``progress.cancel_mark``."""
        raise NotSupportedError(f"the {self.name} driver does not support cancelling jobs")

    def set_progress(self, job_id: str, progress: Progress) -> None:
        """Store a running job's progress (``progress.encode``) in place of the previous
        one; nothing for a job that is gone. ``get`` reads it back (``progress.decode``)."""
        raise NotSupportedError(f"the {self.name} driver does not support job progress")

    # -- worker heartbeats (Capabilities.heartbeats) -----------------------------------

    def beat(self, record: WorkerInfo) -> None:
        """Store ``record`` in place of the worker's previous one (by ``record.id``), and
        delete records whose last beat is older than ``beats.forget_after`` their period.
        Called from a worker's heartbeat thread."""
        raise NotSupportedError(f"the {self.name} driver cannot store worker heartbeats")

    def workers(self) -> list[WorkerInfo]:
        """The heartbeat records of this channel's workers, read back through
        ``beats.read_records`` (a damaged one is skipped with a warning)."""
        raise NotSupportedError(f"the {self.name} driver cannot store worker heartbeats")

    def forget_worker(self, worker_id: str) -> bool:
        """Delete one worker's record; False when there was none."""
        raise NotSupportedError(f"the {self.name} driver cannot store worker heartbeats")

    # -- set-up and lifetime ---------------------------------------------------------

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
        """Carry out anything the store deferred. ``Queue.close`` calls it."""

    def close(self) -> None:  # noqa: B027 - most drivers hold nothing to release
        """Release connections and files. Safe to call twice."""

    def describe(self) -> str:
        """A human-readable location for logs; never contains a password."""
        return f"{self.name}:{self.channel}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
