"""OpenTelemetry spans of a queue's pushes and runs (``tracing=True``; the ``otel`` extra).

A push (``push``, ``push_many``, ``apush``, ``apush_many``) is one PRODUCER span, current
while the job is encoded, so that the job carries its W3C ``traceparent`` in the payload's
metadata (``meta.trace``). Each run is a CONSUMER span, begun by a ``before_exec`` handler
and ended by ``after_exec`` or ``after_error``, with a link to the push's span context: the
run starts its own trace, as OpenTelemetry's messaging conventions suggest for work that
may run long after, and many times.

The trace context comes back from the store, so it is untrusted: ``check_traceparent``
keeps it only if it is exactly a version-00 traceparent with non-zero ids, and a bad one
is ignored (the run gets no link), never an error. This module imports only the standard
library at module level (``read_meta`` uses the check); opentelemetry-api is imported when
a queue asks for tracing, and its absence is then a ConfigError naming the extra.

The run span is not made current while the job runs: where the job runs (the worker's
thread, a pool thread, an event loop, a child process) is not where its events run, so
spans a job opens are not children of its run span.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import events
from .errors import ConfigError

if TYPE_CHECKING:
    from .queue import Queue

logger = logging.getLogger(__name__)

EXTRA = "otel"
SYSTEM = "queue_core"
TRACEPARENT_LENGTH = 55
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
OPEN_RUNS = 10000
"""Run spans kept waiting for their outcome at most: a run skipped by a later before_exec
handler never reports one, and must not be kept forever."""


def check_traceparent(value: Any) -> str | None:
    """``value`` if it is a valid W3C traceparent of version 00, else None."""
    if type(value) is not str or len(value) != TRACEPARENT_LENGTH:
        return None
    match = _TRACEPARENT.fullmatch(value)
    if match is None or match[1] == _ZERO_TRACE or match[2] == _ZERO_SPAN:
        return None
    return value


def check_setting(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"tracing must be true or false, got {value!r}", key="tracing")
    return value


class Tracing:
    """The spans of one queue; made by the queue when its ``tracing`` setting is true."""

    def __init__(self, queue: Queue) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:
            raise ConfigError("tracing=True needs opentelemetry-api: pip install "
                              f"'queue-core[{EXTRA}]' ({exc})", key="tracing") from None
        self._trace = trace
        # A proxy until the app sets its tracer provider, which may come later.
        self._tracer = trace.get_tracer("queue_core")
        self.channel = queue.driver.channel
        self._names = (f"send {self.channel}", f"process {self.channel}")
        self._runs: dict[str, Any] = {}
        self._lock = threading.Lock()
        queue.on(events.BEFORE_EXEC, self._begin)
        queue.on(events.AFTER_EXEC, self._succeeded)
        queue.on(events.AFTER_ERROR, self._failed)

    # -- push ------------------------------------------------------------------------

    @contextmanager
    def sending(self, count: int) -> Iterator[Any]:
        """The push span of ``count`` jobs, current inside the block (so that
        ``traceparent`` gives its context); it records an exception that ends the block."""
        kind = self._trace.SpanKind.PRODUCER
        attributes: dict[str, Any] = {"messaging.system": SYSTEM,
                                      "messaging.destination.name": self.channel,
                                      "messaging.operation.type": "send",
                                      "messaging.operation.name": "push"}
        if count != 1:
            attributes["messaging.batch.message_count"] = count
        with self._tracer.start_as_current_span(self._names[0], kind=kind,
                                                attributes=attributes) as span:
            yield span

    @staticmethod
    def sent(span: Any, job_id: str | None) -> None:
        if job_id is not None:
            span.set_attribute("messaging.message.id", job_id)

    def traceparent(self) -> str | None:
        """The current span's context as a traceparent (None if there is none)."""
        context = self._trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"

    # -- runs ------------------------------------------------------------------------

    def _link(self, traceparent: str | None) -> list[Any]:
        # Checked again here: an event's traceparent may have been set by any handler.
        if check_traceparent(traceparent) is None:
            return []
        assert traceparent is not None
        trace = self._trace
        pushed = trace.SpanContext(trace_id=int(traceparent[3:35], 16),
                                   span_id=int(traceparent[36:52], 16), is_remote=True,
                                   trace_flags=trace.TraceFlags(int(traceparent[53:55], 16)))
        return [trace.Link(pushed)]

    def _begin(self, event: events.ExecEvent) -> None:
        job = event.job
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM, "messaging.destination.name": self.channel,
            "messaging.operation.type": "process", "messaging.operation.name": "run",
            "messaging.message.id": event.id, "queue_core.job.attempt": event.attempt}
        if job is not None:
            attributes["queue_core.job.name"] = str(getattr(type(job), "job_name", None)
                                                    or type(job).__qualname__)
        span = self._tracer.start_span(self._names[1], kind=self._trace.SpanKind.CONSUMER,
                                       links=self._link(event.traceparent),
                                       attributes=attributes)
        with self._lock:
            if len(self._runs) >= OPEN_RUNS:
                stale = self._runs.pop(next(iter(self._runs)))
                stale.end()
            previous = self._runs.pop(event.id, None)
            self._runs[event.id] = span
        if previous is not None:
            previous.end()

    def _take(self, job_id: str) -> Any:
        with self._lock:
            return self._runs.pop(job_id, None)

    def _succeeded(self, event: events.ExecEvent) -> None:
        span = self._take(event.id)
        if span is not None:
            span.end()

    def _failed(self, event: events.ExecEvent) -> None:
        span = self._take(event.id)
        if span is None:
            return  # a lost run: its span, if any, was in the process that was lost
        error = event.error
        if error is not None:
            span.record_exception(error)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR,
                                               f"{type(error).__name__}: {error}"[:1000]))
        span.end()
