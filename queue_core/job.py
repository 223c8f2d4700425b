"""Jobs and the registry of job types.

Subclassing :class:`Job` registers the class under ``module.QualName`` (or its
``job_name`` attribute). A worker only ever instantiates registered classes, so a
payload can name a job type but never make the worker import or call anything else.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from . import control
from .errors import ConfigError
from .progress import check as check_progress

if TYPE_CHECKING:
    from .queue import Queue

logger = logging.getLogger(__name__)

_registry: dict[str, type[Job]] = {}


class Job(ABC):
    """A unit of work. Its instance attributes are the payload; ``execute`` does the work.

    Class attributes that tune the queue's handling of this job type:

    - ``job_name``: the name the payload carries (default ``module.QualName``); set it to
      keep old payloads working after moving or renaming the class.
    - ``backoff``: the delay before a retry (a number, a :class:`~queue_core.Backoff`, a
      settings dict or a callable), replacing the queue's ``backoff``.
    - ``unique_for``: with a key from ``get_unique_key``, hold it this many seconds from
      the push instead of for the job's life (docs/flow.md, "Unique jobs").
    - ``rate`` ("20/s", "100/m", "5000/h" or jobs per second), ``bucket_size`` and
      ``max_concurrent``: rate limits of this job type, on top of the queue's, held across
      every worker (docs/flow.md).
    """

    job_name: ClassVar[str]
    backoff: ClassVar[Any] = None
    unique_for: ClassVar[float | None] = None
    rate: ClassVar[str | float | None] = None
    bucket_size: ClassVar[int | None] = None
    max_concurrent: ClassVar[int | None] = None
    _abstract_job: ClassVar[bool] = True

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._abstract_job = abstract
        if abstract:
            return
        if "job_name" not in cls.__dict__:
            cls.job_name = f"{cls.__module__}.{cls.__qualname__}"
        register(cls)

    @abstractmethod
    def execute(self, queue: Queue) -> Any:
        """Do the work. Raising fails the attempt; the return value reaches ``after_exec``."""

    def get_unique_key(self) -> str | None:
        """The key that makes this job unique when ``push`` names none (None: not unique).
        While a job with the same key is waiting, delayed or running, a push of another
        returns that job's id and stores nothing."""
        return None

    def cancelled(self) -> bool:
        """Whether ``queue.cancel`` was called for the run going on (seen within about
        half a second). A job running in a thread is never interrupted for a cancel: it
        calls this in its loop and returns (or raises) when True; whatever it ends with,
        the run ends FAILED with JobCancelledError. False outside a worker's run."""
        found = control.of(self)
        return found is not None and found.cancelled

    def progress(self, fraction: float, message: str = "") -> None:
        """Report how far the run is: ``fraction`` in [0, 1] and a short ``message``
        (cut at 1,000 characters). Stored by the driver (at most a write every half
        second; the last value always before the outcome) and shown by ``queue.get(id)``
        and ``queue-core status ID``. Checked even outside a worker's run, where it is
        not stored; NotSupportedError on a driver without ``progress``."""
        value, text = check_progress(fraction, message)
        found = control.of(self)
        if found is not None:
            found.progress(value, text)


class RetryableJob(Job, abstract=True):
    """A job that decides its own time limit and whether a failed attempt is retried.

    ``get_ttr`` replaces the queue's ``ttr``; ``can_retry`` replaces the queue's
    ``attempts`` and ``age_limit``. Returning None from either keeps the queue's setting.
    """

    def get_ttr(self) -> float | None:
        return None

    def can_retry(self, attempt: int, error: BaseException) -> bool | None:
        return None


def register(cls: type[Job], name: str | None = None) -> type[Job]:
    """Register a job class (subclassing Job does this); returns the class."""
    if not isinstance(cls, type) or not issubclass(cls, Job):
        raise ConfigError(f"{cls!r} is not a Job subclass and cannot be registered")
    name = name or cls.job_name
    if not isinstance(name, str) or not name:
        raise ConfigError(f"job class {cls.__qualname__} has an empty job_name")
    previous = _registry.get(name)
    if previous is not None and previous is not cls:
        if _where(previous) != _where(cls):
            raise ConfigError(
                f"job name {name!r} is taken by {_where(previous)}; {_where(cls)} cannot "
                "register it too (give one of them another job_name)", key="job_name")
        # The same class, defined again: its module was imported or reloaded once more.
        logger.debug("job type %s now refers to %r (was %r)", name, cls, previous)
    _registry[name] = cls
    return cls


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def lookup(name: str) -> type[Job] | None:
    return _registry.get(name)


def registered_names() -> list[str]:
    return sorted(_registry)


def registered_types() -> list[type[Job]]:
    return list(_registry.values())
