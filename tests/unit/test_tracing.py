"""Spans of pushes and runs, caught by the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from queue_core.drivers.memory import MemoryDriver  # noqa: E402

from queue_core import ConfigError, Job, Queue, create_queue  # noqa: E402
from queue_core.tracing import check_traceparent  # noqa: E402
from tests.support.otel import span_exporter  # noqa: E402
from tests.support.recording import RecordingDriver  # noqa: E402


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_exporter()


@dataclass
class Traced(Job):
    job_name = "tracing.traced"
    fail: bool = False

    def execute(self, queue: Any) -> None:
        if self.fail:
            raise ValueError("bad")


def by_kind(exporter: InMemorySpanExporter, kind: trace.SpanKind) -> list[Any]:
    return [span for span in exporter.get_finished_spans() if span.kind is kind]


def test_a_run_span_links_to_its_push_span(spans: InMemorySpanExporter) -> None:
    queue = Queue(MemoryDriver(channel="traced"), tracing=True)
    job_id = queue.push(Traced())
    queue.run()
    (push,) = by_kind(spans, trace.SpanKind.PRODUCER)
    (run,) = by_kind(spans, trace.SpanKind.CONSUMER)
    assert push.name == "send traced" and run.name == "process traced"
    assert push.attributes["messaging.message.id"] == job_id
    assert run.attributes["messaging.message.id"] == job_id
    assert run.attributes["queue_core.job.name"] == "tracing.traced"
    (link,) = run.links
    assert link.context.trace_id == push.context.trace_id
    assert link.context.span_id == push.context.span_id
    assert run.context.trace_id != push.context.trace_id  # a trace of its own
    assert run.status.is_ok


def test_the_push_carries_the_trace_context_in_its_metadata(
        spans: InMemorySpanExporter) -> None:
    driver = RecordingDriver()
    queue = Queue(driver, tracing=True)
    queue.push(Traced())
    (push,) = by_kind(spans, trace.SpanKind.PRODUCER)
    meta = json.loads(driver.pushed[0].payload)["meta"]
    assert meta["trace"] == (f"00-{push.context.trace_id:032x}-"
                             f"{push.context.span_id:016x}-{push.context.trace_flags:02x}")


def test_push_many_is_one_span_for_the_batch(spans: InMemorySpanExporter) -> None:
    queue = Queue(MemoryDriver(), tracing=True)
    queue.push_many([Traced(), Traced(), Traced()])
    queue.run()
    (push,) = by_kind(spans, trace.SpanKind.PRODUCER)
    assert push.attributes["messaging.batch.message_count"] == 3
    runs = by_kind(spans, trace.SpanKind.CONSUMER)
    assert len(runs) == 3
    assert all(run.links[0].context.span_id == push.context.span_id for run in runs)


def test_apush_is_traced(spans: InMemorySpanExporter) -> None:
    queue = Queue(MemoryDriver(), tracing=True)
    asyncio.run(queue.apush(Traced()))
    queue.run()
    (push,) = by_kind(spans, trace.SpanKind.PRODUCER)
    (run,) = by_kind(spans, trace.SpanKind.CONSUMER)
    assert run.links[0].context.span_id == push.context.span_id


def test_a_failed_run_records_its_error(spans: InMemorySpanExporter) -> None:
    queue = Queue(MemoryDriver(), tracing=True)
    queue.push(Traced(fail=True))
    queue.run()
    (run,) = by_kind(spans, trace.SpanKind.CONSUMER)
    assert not run.status.is_ok and "ValueError: bad" in (run.status.description or "")
    assert [event.name for event in run.events] == ["exception"]


@pytest.mark.parametrize("forged", [
    "garbage", 7, None, ["00"], "00-" + "0" * 32 + "-" + "1" * 16 + "-01",
    "00-" + "a" * 32 + "-" + "0" * 16 + "-01", "ff-" + "a" * 32 + "-" + "b" * 16 + "-01",
    "00-" + "A" * 32 + "-" + "b" * 16 + "-01", "00-" + "a" * 32 + "-" + "b" * 16 + "-01" + "x",
    "00-" + "a" * 32 + "-" + "b" * 16 + "-01\n", "x" * 100000])
def test_a_forged_trace_context_is_ignored(spans: InMemorySpanExporter, forged: Any) -> None:
    driver = RecordingDriver()
    queue = Queue(driver, tracing=True)
    payload = json.dumps({"job": "tracing.traced", "args": {}, "meta": {"trace": forged}})
    driver.push(payload.encode(), ttr=300)
    assert queue.run() == 1
    (run,) = by_kind(spans, trace.SpanKind.CONSUMER)
    assert run.links == () or list(run.links) == []
    assert driver.acked  # the job ran as it would have


def test_a_good_trace_context_from_elsewhere_is_linked(spans: InMemorySpanExporter) -> None:
    driver = RecordingDriver()
    queue = Queue(driver, tracing=True)
    carried = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    payload = json.dumps({"job": "tracing.traced", "args": {}, "meta": {"trace": carried}})
    driver.push(payload.encode(), ttr=300)
    queue.run()
    (run,) = by_kind(spans, trace.SpanKind.CONSUMER)
    assert f"{run.links[0].context.span_id:016x}" == "cd" * 8


def test_check_traceparent() -> None:
    good = "00-" + "0af7651916cd43dd8448eb211c80319c" + "-b7ad6b7169203331-01"
    assert check_traceparent(good) == good
    assert check_traceparent(good.upper()) is None
    assert check_traceparent(good[:-1]) is None


def test_without_tracing_nothing_is_carried_nor_recorded(
        spans: InMemorySpanExporter) -> None:
    driver = RecordingDriver()
    queue = Queue(driver)
    queue.push(Traced())
    queue.run()
    assert "meta" not in json.loads(driver.pushed[0].payload)
    assert spans.get_finished_spans() == ()


def test_bad_tracing_settings_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="tracing must be true or false"):
        create_queue({"driver": "memory://", "tracing": "yes"})


def test_tracing_without_opentelemetry_names_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_otel(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("opentelemetry"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_otel)
    with pytest.raises(ConfigError, match=r"queue-core\[otel\]") as caught:
        create_queue({"driver": "memory://", "tracing": True})
    assert caught.value.key == "tracing"
