"""One OpenTelemetry SDK provider for the test process, its spans kept in memory.

The global tracer provider can be set once per process; tests empty the exporter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


def span_exporter() -> Iterator[Any]:
    """A fixture body: the in-memory exporter, emptied before and after the test."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider: Any = trace.get_tracer_provider()
    if not hasattr(provider, "queue_core_exporter"):
        provider = TracerProvider()
        provider.queue_core_exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(provider.queue_core_exporter))
        trace.set_tracer_provider(provider)
        provider = trace.get_tracer_provider()
    if not hasattr(provider, "queue_core_exporter"):
        pytest.skip("another tracer provider is set in this process")
    exporter = provider.queue_core_exporter
    exporter.clear()
    yield exporter
    exporter.clear()
