"""Metrics recorded through the event hooks, read back from a private registry."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

prometheus_client = pytest.importorskip("prometheus_client")

from queue_core.drivers.memory import MemoryDriver  # noqa: E402

from queue_core import Job, Queue  # noqa: E402
from queue_core.metrics import StatusCollector, instrument  # noqa: E402
from tests.support.recording import RecordingDriver  # noqa: E402


@dataclass
class Fine(Job):
    job_name = "metrics.fine"

    def execute(self, queue: Any) -> None:
        time.sleep(0.002)


@dataclass
class Flaky(Job):
    job_name = "metrics.flaky"

    def execute(self, queue: Any) -> None:
        raise RuntimeError("no")


def value(registry: Any, name: str, job: str, queue: str = "queue") -> float:
    found = registry.get_sample_value(name, {"queue": queue, "job": job})
    return 0.0 if found is None else float(found)


def test_counts_and_histograms_after_a_run() -> None:
    registry = prometheus_client.CollectorRegistry()
    queue = Queue(MemoryDriver(channel="mq"), attempts=2)
    instrument(queue, registry)
    for _ in range(3):
        queue.push(Fine())
    queue.push(Flaky())
    queue.run()
    assert value(registry, "queue_core_jobs_pushed_total", "metrics.fine", "mq") == 3
    assert value(registry, "queue_core_jobs_pushed_total", "metrics.flaky", "mq") == 1
    assert value(registry, "queue_core_jobs_started_total", "metrics.fine", "mq") == 3
    assert value(registry, "queue_core_jobs_done_total", "metrics.fine", "mq") == 3
    # Two runs of Flaky: the first retried, the second failed for good.
    assert value(registry, "queue_core_jobs_started_total", "metrics.flaky", "mq") == 2
    assert value(registry, "queue_core_jobs_retried_total", "metrics.flaky", "mq") == 1
    assert value(registry, "queue_core_jobs_failed_total", "metrics.flaky", "mq") == 1
    assert value(registry, "queue_core_jobs_done_total", "metrics.flaky", "mq") == 0
    assert value(registry, "queue_core_jobs_lost_total", "metrics.flaky", "mq") == 0
    assert value(registry, "queue_core_job_run_seconds_count", "metrics.fine", "mq") == 3
    assert value(registry, "queue_core_job_run_seconds_sum", "metrics.fine", "mq") >= 0.006
    assert value(registry, "queue_core_job_run_seconds_count", "metrics.flaky", "mq") == 2
    # Wait is measured on first runs only.
    assert value(registry, "queue_core_job_wait_seconds_count", "metrics.fine", "mq") == 3
    assert value(registry, "queue_core_job_wait_seconds_count", "metrics.flaky", "mq") == 1


def test_two_queues_share_the_families_of_one_registry() -> None:
    registry = prometheus_client.CollectorRegistry()
    first, second = Queue(MemoryDriver(channel="a")), Queue(MemoryDriver(channel="b"))
    instrument(first, registry)
    instrument(second, registry)
    first.push(Fine())
    second.push(Fine())
    second.push(Fine())
    first.run()
    second.run()
    assert value(registry, "queue_core_jobs_done_total", "metrics.fine", "a") == 1
    assert value(registry, "queue_core_jobs_done_total", "metrics.fine", "b") == 2


def test_detach_stops_recording() -> None:
    registry = prometheus_client.CollectorRegistry()
    queue = Queue(MemoryDriver())
    instrument(queue, registry).detach()
    queue.push(Fine())
    queue.run()
    assert value(registry, "queue_core_jobs_pushed_total", "metrics.fine") == 0


class Losing(RecordingDriver):
    """Redelivers a job flagged as lost by its previous worker (see test_lost_runs)."""

    def reserve(self, timeout: float = 0.0) -> Any:
        message = super().reserve(timeout)
        if message is not None and message.attempt > 1:
            message.redelivered = True
        return message


def test_a_lost_run_is_counted_lost_and_retried() -> None:
    registry = prometheus_client.CollectorRegistry()
    driver = Losing()
    queue = Queue(driver, attempts=3)
    instrument(queue, registry)
    queue.push(Fine())
    driver.lose("1")
    queue.run()
    assert value(registry, "queue_core_jobs_lost_total", "metrics.fine") == 1
    assert value(registry, "queue_core_jobs_retried_total", "metrics.fine") == 1
    assert value(registry, "queue_core_jobs_done_total", "metrics.fine") == 1
    # The lost run's time is unknown: only the run that succeeded is timed.
    assert value(registry, "queue_core_job_run_seconds_count", "metrics.fine") == 1


def test_status_gauges_are_read_at_scrape_time() -> None:
    registry = prometheus_client.CollectorRegistry()
    queue = Queue(MemoryDriver(channel="gauged"))
    registry.register(StatusCollector(queue))
    queue.push(Fine())
    queue.push(Fine())
    sample = {"queue": "gauged", "status": "waiting"}
    assert registry.get_sample_value("queue_core_jobs", sample) == 2
    time.sleep(0.2)
    age = registry.get_sample_value("queue_core_oldest_waiting_seconds", {"queue": "gauged"})
    assert age is not None and 0.2 <= age < 5
    queue.run()
    assert registry.get_sample_value("queue_core_jobs", sample) == 0
    assert registry.get_sample_value("queue_core_oldest_waiting_seconds",
                                     {"queue": "gauged"}) == 0


def test_an_unreadable_oldest_push_time_gives_no_age(caplog: Any) -> None:
    class Damaged(MemoryDriver):
        def oldest_waiting(self) -> Any:
            return "not a time"

    queue = Queue(Damaged(channel="damaged"))
    assert queue.oldest_waiting_age() is None
    assert "not a time" in caplog.text
