"""Prometheus metrics of a queue, recorded by event handlers (the ``metrics`` extra).

``instrument(queue)`` attaches handlers to the queue's events that count jobs pushed,
started, done, failed, retried and lost, and time their runs and their wait, each
labelled by queue (the channel) and job (its registered name). ``StatusCollector`` reads
``queue.info()`` when Prometheus scrapes, never in between. prometheus_client is imported
only here, and only when metrics are asked for: the core stays standard-library only.

Several queues of one process share one set of metric families per registry (a family
can be registered once); each queue keeps its own labelled children, one set per job
class, so that a job's handlers look up a dict entry and bump a counter, nothing more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import events
from .errors import ConfigError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from .queue import Queue

logger = logging.getLogger(__name__)

EXTRA = "metrics"
PREFIX = "queue_core"
LABELS = ("queue", "job")
UNKNOWN_JOB = "(undecodable)"
"""The job label of a payload that could not become a job: no name can be trusted."""
RUN_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
               60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0,
                900.0, 1800.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 24 * 3600.0)


def client() -> Any:
    """The prometheus_client module, or ConfigError naming the extra to install."""
    try:
        import prometheus_client
    except ImportError as exc:
        raise ConfigError("metrics need prometheus_client: pip install 'queue-core[metrics]' "
                          f"({exc})", key="metrics") from None
    return prometheus_client


class Families:
    """The metric families of one registry."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        prom = client()
        where = {"registry": registry} if registry is not None else {}

        def counter(name: str, text: str) -> Any:
            return prom.Counter(f"{PREFIX}_jobs_{name}", text, LABELS, **where)

        self.pushed = counter("pushed", "Jobs pushed (after_push).")
        self.started = counter("started", "Runs begun (before_exec).")
        self.done = counter("done", "Runs that succeeded (after_exec).")
        self.failed = counter("failed", "Jobs that failed for good (after_fail).")
        self.retried = counter("retried", "Failed or lost runs sent back for another run.")
        self.lost = counter("lost", "Runs that ended with their worker lost (killed, crashed "
                                    "or past its lease), seen when the job comes back.")
        self.run_time = prom.Histogram(f"{PREFIX}_job_run_seconds",
                                       "Seconds from a run's begin to its outcome.", LABELS,
                                       buckets=RUN_BUCKETS, **where)
        self.wait_time = prom.Histogram(f"{PREFIX}_job_wait_seconds",
                                        "Seconds from push to the first run's begin.", LABELS,
                                        buckets=WAIT_BUCKETS, **where)


_FAMILIES: dict[int, tuple[Any, Families]] = {}


def families(registry: CollectorRegistry | None = None) -> Families:
    """The families of ``registry`` (None: prometheus_client's default one), made once."""
    if registry is None:
        registry = client().REGISTRY
    found = _FAMILIES.get(id(registry))
    if found is None or found[0] is not registry:
        found = _FAMILIES[id(registry)] = (registry, Families(registry))
    return found[1]


class _Children:
    """The labelled children of one (queue, job) pair."""

    __slots__ = ("pushed", "started", "done", "failed", "retried", "lost", "run_time",
                 "wait_time")

    def __init__(self, found: Families, queue: str, job: str) -> None:
        self.pushed: Any = found.pushed.labels(queue, job)
        self.started: Any = found.started.labels(queue, job)
        self.done: Any = found.done.labels(queue, job)
        self.failed: Any = found.failed.labels(queue, job)
        self.retried: Any = found.retried.labels(queue, job)
        self.lost: Any = found.lost.labels(queue, job)
        self.run_time: Any = found.run_time.labels(queue, job)
        self.wait_time: Any = found.wait_time.labels(queue, job)


class QueueMetrics:
    """The handlers that record one queue's jobs; ``detach`` takes them off again."""

    def __init__(self, queue: Queue, registry: CollectorRegistry | None = None) -> None:
        self.queue = queue
        self.name = queue.driver.channel
        self._families = families(registry)
        self._by_class: dict[type, _Children] = {}
        self._handlers = ((events.AFTER_PUSH, self._pushed), (events.BEFORE_EXEC, self._started),
                          (events.AFTER_EXEC, self._done), (events.AFTER_ERROR, self._error),
                          (events.AFTER_FAIL, self._failed))

    def attach(self) -> QueueMetrics:
        for name, handler in self._handlers:
            self.queue.on(name, handler)
        return self

    def detach(self) -> None:
        for name, handler in self._handlers:
            self.queue.off(name, handler)

    def _of(self, job: Any) -> _Children:
        kind = type(job)
        found = self._by_class.get(kind)
        if found is None:
            name = UNKNOWN_JOB if job is None else str(getattr(kind, "job_name", None)
                                                          or kind.__qualname__)
            found = self._by_class[kind] = _Children(self._families, self.name, name)
        return found

    # The handlers: one dict lookup and the client's own work per event.

    def _pushed(self, event: events.PushEvent) -> None:
        self._of(event.job).pushed.inc()

    def _started(self, event: events.ExecEvent) -> None:
        children = self._of(event.job)
        children.started.inc()
        # A retried run's wait would include the earlier runs and their backoff.
        if event.attempt == 1 and event.pushed_at is not None:
            children.wait_time.observe(max(0.0, time.time() - event.pushed_at))

    def _done(self, event: events.ExecEvent) -> None:
        children = self._of(event.job)
        children.done.inc()
        if event.duration is not None:
            children.run_time.observe(event.duration)

    def _error(self, event: events.ExecEvent) -> None:
        children = self._of(event.job)
        if event.lost:
            children.lost.inc()
        elif event.duration is not None:
            children.run_time.observe(event.duration)
        if event.retry:
            children.retried.inc()

    def _failed(self, event: events.ExecEvent) -> None:
        self._of(event.job).failed.inc()


def instrument(queue: Queue, registry: CollectorRegistry | None = None) -> QueueMetrics:
    """Record ``queue``'s jobs in ``registry`` (None: the default one). Attach it after
    handlers that change ``event.retry``, so that the retried count sees their word."""
    return QueueMetrics(queue, registry).attach()


class StatusCollector:
    """``queue_core_jobs{queue, status}``: the job counts ``queue.info()`` gives, read at
    scrape time. A back end that cannot answer gives no sample, and a warning."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.name = queue.driver.channel

    def _family(self) -> Any:
        client()
        from prometheus_client.metrics_core import GaugeMetricFamily
        return GaugeMetricFamily(f"{PREFIX}_jobs", "Jobs per status now (queue.info()).",
                                      labels=("queue", "status"))

    def describe(self) -> Iterator[Metric]:
        # Without describe, registering would call collect, hence the back end.
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        if self.queue.capabilities.info:
            try:
                counts = self.queue.info()
            except Exception as exc:
                logger.warning("metrics: cannot count the jobs of %s: %s",
                               self.queue.driver.describe(), exc)
            else:
                for status, count in counts.items():
                    family.add_metric((self.name, status.value), count)
        yield family
