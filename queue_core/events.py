"""Event names and the mutable event objects handlers receive (Yii semantics).

A handler is ``handler(event) -> None``. Handlers run in the order they were attached;
each sees what the previous one wrote. A handler that raises is logged and skipped: it
never changes the job's outcome nor stops the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .job import Job
    from .worker import Worker

logger = logging.getLogger(__name__)

BEFORE_PUSH = "before_push"
AFTER_PUSH = "after_push"
BEFORE_EXEC = "before_exec"
AFTER_EXEC = "after_exec"
AFTER_ERROR = "after_error"
AFTER_FAIL = "after_fail"
"""The job failed for good: no retry is left (or it could not be decoded)."""
AFTER_RETRY = "after_retry"
"""A finished job was sent back to WAITING by hand (``queue.retry``)."""
WORKER_START = "worker_start"
WORKER_LOOP = "worker_loop"
WORKER_STOP = "worker_stop"

EVENT_NAMES = (BEFORE_PUSH, AFTER_PUSH, BEFORE_EXEC, AFTER_EXEC, AFTER_ERROR, AFTER_FAIL,
               AFTER_RETRY, WORKER_START, WORKER_LOOP, WORKER_STOP)


@dataclass
class PushEvent:
    """before_push may change ttr, delay and priority, or set ``handled`` to cancel."""

    job: Job
    ttr: float
    delay: float = 0.0
    priority: int | None = None
    id: str | None = None
    handled: bool = False
    queue: Any = None


@dataclass
class ExecEvent:
    """before_exec may set ``handled`` to skip the job (counted done); after_error may set
    ``retry`` and ``delay``."""

    id: str
    job: Job | None
    ttr: float
    attempt: int
    result: Any = None
    error: BaseException | None = None
    retry: bool = False
    delay: float = 0.0
    handled: bool = False
    queue: Any = None
    pushed_at: float | None = None
    """When the job was pushed (a Unix time, as the store keeps it); None if it does not."""
    duration: float | None = None
    """after_exec and after_error: seconds from when the worker began the run to its
    outcome; None when unknown (a lost run: its worker is gone)."""
    lost: bool = False
    """after_error: the attempt ended because the worker running it was lost."""
    traceparent: str | None = None
    """before_exec: the W3C trace context the push carried (checked), for tracing."""


@dataclass
class RetryEvent:
    """after_retry: a DONE or FAILED job went back to WAITING by hand."""

    id: str
    state: Any
    reset_attempts: bool
    queue: Any = None


@dataclass
class WorkerEvent:
    """Set ``exit_code`` to stop the worker after the current step."""

    worker: Worker
    exit_code: int | None = None


Handler = Callable[[Any], None]


class EventHub:
    """Handlers per event name."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def on(self, name: str, handler: Handler) -> None:
        from .errors import ConfigError
        if name not in EVENT_NAMES:
            raise ConfigError(f"unknown event {name!r}; events are {', '.join(EVENT_NAMES)}",
                              key="events")
        if not callable(handler):
            raise ConfigError(f"handler for {name} is not callable: {handler!r}", key="events")
        self._handlers.setdefault(name, []).append(handler)

    def off(self, name: str, handler: Handler | None = None) -> bool:
        """Detach one handler (or all of an event's handlers); True if any was attached."""
        handlers = self._handlers.get(name)
        if not handlers:
            return False
        if handler is None:
            del self._handlers[name]
            return True
        try:
            handlers.remove(handler)
        except ValueError:
            return False
        if not handlers:
            del self._handlers[name]
        return True

    def has(self, name: str) -> bool:
        return name in self._handlers

    def trigger(self, name: str, event: Any) -> Any:
        for handler in list(self._handlers.get(name, ())):
            try:
                handler(event)
            except Exception:
                logger.exception("%s handler %r raised; ignored", name, handler)
        return event
