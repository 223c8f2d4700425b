"""The push's trace context survives every store, and every worker mode links the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from queue_core import Queue
from tests.support.jobs import Record, read_lines
from tests.support.otel import span_exporter
from tests.support.run import run_until


@pytest.fixture
def spans() -> Iterator[Any]:
    yield from span_exporter()


def test_each_run_links_to_its_push(make_queue: Callable[..., Queue], journal: str,
                                    spans: Any) -> None:
    from opentelemetry.trace import SpanKind
    queue = make_queue(tracing=True)
    ids = [queue.push(Record(journal, f"j{index}")) for index in range(5)]
    run_until(queue, lambda: len(read_lines(journal)) == 5)
    finished = spans.get_finished_spans()
    pushes = {span.attributes["messaging.message.id"]: span for span in finished
              if span.kind is SpanKind.PRODUCER}
    assert set(pushes) == set(ids)
    # The last run's span ends in after_exec, after its journal line: wait for it.
    run_until(queue, lambda: len({span.attributes["messaging.message.id"]
                                  for span in spans.get_finished_spans()
                                  if span.kind is SpanKind.CONSUMER}) == 5)
    runs = {span.attributes["messaging.message.id"]: span
            for span in spans.get_finished_spans() if span.kind is SpanKind.CONSUMER}
    for job_id in ids:
        (link,) = runs[job_id].links
        assert link.context.span_id == pushes[job_id].context.span_id
