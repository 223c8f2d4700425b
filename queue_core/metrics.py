"""Prometheus metrics of a queue, recorded by event handlers (the ``metrics`` extra).

``instrument(queue)`` attaches handlers to the queue's events that count jobs pushed,
started, done, failed, retried and lost, and time their runs and their wait, each
labelled by queue (the channel) and job (its registered name). A handler only adds to
plain numbers (``Tally``), one set per (queue, job) pair found through a dict keyed by
the job's class: prometheus_client's own values take a lock per update, and in its
multi-process mode a write to a memory-mapped file, which cost more than a no-op job.
The numbers become metric families when Prometheus scrapes (``TallyCollector``), and a
supervised worker writes them to a file for its supervisor to add up (metrics_files.py).
``StatusCollector`` reads ``queue.info()`` at scrape time, never in between.
prometheus_client is imported only here, and only when metrics are asked for.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
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
COUNTERS = {
    "pushed": "Jobs pushed (after_push).",
    "started": "Runs begun (before_exec).",
    "done": "Runs that succeeded (after_exec).",
    "failed": "Jobs that failed for good (after_fail).",
    "retried": "Failed or lost runs sent back for another run.",
    "lost": "Runs that ended with their worker lost (killed, crashed or past its lease), "
            "seen when the job comes back.",
}
HISTOGRAMS = {
    "run": ("job_run_seconds", "Seconds from a run's begin to its outcome.", RUN_BUCKETS),
    "wait": ("job_wait_seconds", "Seconds from push to the first run's begin.", WAIT_BUCKETS),
}


def client() -> Any:
    """The prometheus_client module, or ConfigError naming the extra to install."""
    try:
        import prometheus_client
    except ImportError as exc:
        raise ConfigError("metrics need prometheus_client: pip install 'queue-core[metrics]' "
                          f"({exc})", key="metrics") from None
    return prometheus_client


class Histogram:
    """Observations in buckets (not cumulative; the last one is +Inf) and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (le = "at most").
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class Tally:
    """The counts and histograms of one (queue, job) pair in this process."""

    __slots__ = ("done", "failed", "lost", "pushed", "retried", "run", "started", "wait")

    def __init__(self) -> None:
        self.pushed = self.started = self.done = self.failed = self.retried = self.lost = 0
        self.run = Histogram(RUN_BUCKETS)
        self.wait = Histogram(WAIT_BUCKETS)

    def snapshot(self) -> dict[str, Any]:
        found: dict[str, Any] = {name: getattr(self, name) for name in COUNTERS}
        for name in HISTOGRAMS:
            histogram: Histogram = getattr(self, name)
            found[name] = {"counts": list(histogram.counts), "sum": histogram.sum}
        return found


Snapshot = dict[tuple[str, str], dict[str, Any]]
"""Tallies by (queue, job), as plain data: what a collector turns into metric families
and a supervised worker writes to its file."""


class Tallies:
    """The tallies of one registry (one per process unless a test brings its own)."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], Tally] = {}
        self.pushes = threading.Lock()
        """Pushes may come from any thread; run events come from the worker's main one."""
        self._lock = threading.Lock()

    def of(self, queue: str, job: str) -> Tally:
        with self._lock:
            found = self._by_key.get((queue, job))
            if found is None:
                found = self._by_key[(queue, job)] = Tally()
            return found

    def snapshot(self) -> Snapshot:
        with self._lock:
            items = list(self._by_key.items())
        return {key: tally.snapshot() for key, tally in items}


_TALLIES: dict[int, tuple[Any, Tallies]] = {}
_TALLIES_LOCK = threading.Lock()


def tallies(registry: CollectorRegistry | None = None) -> Tallies:
    """The tallies of ``registry`` (None: prometheus_client's default one), made and
    registered once."""
    if registry is None:
        registry = client().REGISTRY
    with _TALLIES_LOCK:
        found = _TALLIES.get(id(registry))
        if found is None or found[0] is not registry:
            made = Tallies()
            registry.register(TallyCollector(lambda: [made.snapshot()]))
            found = _TALLIES[id(registry)] = (registry, made)
        return found[1]


class QueueMetrics:
    """The handlers that record one queue's jobs; ``detach`` takes them off again."""

    def __init__(self, queue: Queue, registry: CollectorRegistry | None = None,
                 into: Tallies | None = None) -> None:
        self.queue = queue
        self.name = queue.driver.channel
        self._tallies = into if into is not None else tallies(registry)
        self._by_class: dict[type, Tally] = {}
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

    def _of(self, job: Any) -> Tally:
        kind = type(job)
        found = self._by_class.get(kind)
        if found is None:
            name = UNKNOWN_JOB if job is None else str(getattr(kind, "job_name", None)
                                                          or kind.__qualname__)
            found = self._by_class[kind] = self._tallies.of(self.name, name)
        return found

    # The handlers run for every job: each looks its tally up and adds to it, written out
    # (no call to _of or Histogram.observe but for a job class seen the first time).

    def _pushed(self, event: events.PushEvent) -> None:
        tally = self._by_class.get(type(event.job)) or self._of(event.job)
        with self._tallies.pushes:
            tally.pushed += 1

    def _started(self, event: events.ExecEvent) -> None:
        tally = self._by_class.get(type(event.job)) or self._of(event.job)
        tally.started += 1
        # A retried run's wait would include the earlier runs and their backoff.
        if event.attempt == 1 and event.pushed_at is not None:
            wait = time.time() - event.pushed_at
            if wait < 0.0:
                wait = 0.0  # the pushing host's clock is ahead
            histogram = tally.wait
            histogram.counts[bisect_left(WAIT_BUCKETS, wait)] += 1
            histogram.sum += wait

    def _done(self, event: events.ExecEvent) -> None:
        tally = self._by_class.get(type(event.job)) or self._of(event.job)
        tally.done += 1
        took = event.duration
        if took is not None:
            histogram = tally.run
            histogram.counts[bisect_left(RUN_BUCKETS, took)] += 1
            histogram.sum += took

    def _error(self, event: events.ExecEvent) -> None:
        tally = self._of(event.job)
        if event.lost:
            tally.lost += 1
        elif event.duration is not None:
            tally.run.observe(event.duration)
        if event.retry:
            tally.retried += 1

    def _failed(self, event: events.ExecEvent) -> None:
        self._of(event.job).failed += 1


def instrument(queue: Queue, registry: CollectorRegistry | None = None,
               into: Tallies | None = None) -> QueueMetrics:
    """Record ``queue``'s jobs in ``registry`` (None: the default one), or in ``into``.
    Attach it after handlers that change ``event.retry``, so that the retried count sees
    their word."""
    return QueueMetrics(queue, registry, into).attach()


def merged(snapshots: Iterable[Snapshot]) -> Snapshot:
    """Several processes' tallies added up, pair by pair."""
    total: Snapshot = {}
    for snapshot in snapshots:
        for key, values in snapshot.items():
            found = total.get(key)
            if found is None:
                total[key] = {name: (dict(value, counts=list(value["counts"]))
                                     if name in HISTOGRAMS else value)
                              for name, value in values.items()}
                continue
            for name in COUNTERS:
                found[name] += values[name]
            for name in HISTOGRAMS:
                mine, theirs = found[name], values[name]
                mine["counts"] = [a + b for a, b in zip(mine["counts"], theirs["counts"],
                                                        strict=True)]
                mine["sum"] += theirs["sum"]
    return total


class TallyCollector:
    """The counters and histograms of the tallies ``sources`` gives at scrape time."""

    def __init__(self, sources: Callable[[], Iterable[Snapshot]]) -> None:
        self._sources = sources

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        counters, histograms = families[:len(COUNTERS)], families[len(COUNTERS):]
        for (queue, job), values in sorted(merged(self._sources()).items()):
            for family, name in zip(counters, COUNTERS, strict=True):
                family.add_metric((queue, job), values[name])
            for family, name in zip(histograms, HISTOGRAMS, strict=True):
                bounds = HISTOGRAMS[name][2]
                cumulative, buckets = 0, []
                for bound, count in zip((*map(repr, bounds), "+Inf"), values[name]["counts"],
                                        strict=True):
                    cumulative += count
                    buckets.append((bound, cumulative))
                family.add_metric((queue, job), buckets, values[name]["sum"])
        return iter(families)

    @staticmethod
    def _families() -> list[Any]:
        client()
        from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily
        found: list[Any] = [CounterMetricFamily(f"{PREFIX}_jobs_{name}", text, labels=LABELS)
                            for name, text in COUNTERS.items()]
        found += [HistogramMetricFamily(f"{PREFIX}_{metric}", text, labels=LABELS)
                  for metric, text, _ in HISTOGRAMS.values()]
        return found


class StatusCollector:
    """``queue_core_jobs{queue, status}``: the job counts ``queue.info()`` gives, and
    ``queue_core_oldest_waiting_seconds{queue}``: ``queue.oldest_waiting_age()`` (0 when no
    job waits), both read at scrape time. A back end that cannot answer gives no sample,
    and a warning."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.name = queue.driver.channel

    def _family(self) -> Any:
        client()
        from prometheus_client.metrics_core import GaugeMetricFamily
        return GaugeMetricFamily(f"{PREFIX}_jobs", "Jobs per status now (queue.info()).",
                                      labels=("queue", "status"))

    def _age_family(self) -> Any:
        from prometheus_client.metrics_core import GaugeMetricFamily
        return GaugeMetricFamily(
            f"{PREFIX}_oldest_waiting_seconds",
            "Seconds since the waiting job pushed first was pushed; 0 when none waits.",
            labels=("queue",))

    def describe(self) -> Iterator[Metric]:
        # Without describe, registering would call collect, hence the back end.
        yield self._family()
        if self.queue.capabilities.waiting_age:
            yield self._age_family()

    def collect(self) -> Iterator[Metric]:
        yield from self._counts()
        if self.queue.capabilities.waiting_age:
            family = self._age_family()
            try:
                age = self.queue.oldest_waiting_age()
            except Exception as exc:
                logger.warning("metrics: cannot tell the oldest waiting job of %s: %s",
                               self.queue.driver.describe(), exc)
            else:
                family.add_metric((self.name,), age or 0.0)
            yield family

    def _counts(self) -> Iterator[Metric]:
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
