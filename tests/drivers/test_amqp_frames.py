"""AMQP header frames within the negotiated frame_max, against RabbitMQ with its smallest
frame_max (4096): a job failing with a huge multi-byte error ends FAILED with the error cut
and the connection open, and a retry's copy leaves out headers of others that cannot fit,
rather than make the broker close the connection (and the job come back forever)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from queue_core.drivers.amqp.codec import encode_properties
from queue_core.drivers.amqp.connection import Wire

from queue_core import JobStatus, Queue, create_queue
from tests.support.jobs import Fail, Record, read_lines
from tests.support.procs import kill_group, queue_core, stop, wait_for
from tests.support.run import run_until
from tests.support.specs.amqp import URL, available, delete_queues

pytestmark = pytest.mark.skipif(bool(available()), reason=str(available()))

SMALLEST_FRAME = 4096
"""RabbitMQ's smallest frame_max."""


@pytest.fixture
def small_frames() -> Iterator[dict[str, Any]]:
    made = {"driver": {"url": f"{URL}?frame_max={SMALLEST_FRAME}", "lease_grace": 0.5},
            "channel": f"t{uuid.uuid4().hex[:12]}", "imports": ["tests.support.jobs"]}
    yield made
    delete_queues(made)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Wire]:
    """Every connection the driver opens: one lost to the broker would show as one more."""
    made: list[Wire] = []
    real_open = Wire.open

    def spy(wire: Wire) -> Wire:
        made.append(wire)
        return real_open(wire)
    monkeypatch.setattr(Wire, "open", spy)
    return made


def test_a_job_failing_with_a_huge_error_ends_failed_on_a_small_frame_max(
        small_frames: dict[str, Any], journal: str, opened: list[Wire],
        caplog: pytest.LogCaptureFixture) -> None:
    queue = create_queue({**small_frames, "attempts": 1, "ttr": 3})
    tag = "é€𝄞" * 2000  # 18,000 bytes of message, twice that with its traceback
    message_text = f"{tag} failed on run 1"
    job_id = queue.push(Fail(journal, tag))
    queue.push(Record(journal, "next"))
    with caplog.at_level(logging.INFO):
        run_until(queue, lambda: "next" in read_lines(journal), timeout=20)
    assert [line == tag for line in read_lines(journal)] == [True, False]
    assert read_lines(journal)[1] == "next"
    assert all(wire.frame_max == SMALLEST_FRAME for wire in opened)
    assert len(opened) == 2 and all(wire.dead is None for wire in opened)  # none was lost
    assert "cannot save" not in caplog.text and "FRAME_ERROR" not in caplog.text
    [info] = queue.failed()
    assert info.id == job_id and info.error is not None
    assert info.error.type == "RuntimeError"
    message, traceback = info.error.message, info.error.traceback
    assert message.startswith("é€𝄞" * 50), message[:100]
    assert message.endswith(f" [cut from {len(message_text.encode())} bytes]"), message[-100:]
    assert traceback.startswith("[cut from "), traceback[:100]
    assert traceback.rstrip().endswith("failed on run 1"), traceback[-100:]
    assert len(message.encode()) > 1000 and len(traceback.encode()) > 1000
    assert "qc-traceback, qc-error cut to fit frame_max 4096" in caplog.text


def test_a_retry_copy_leaves_out_headers_of_others_that_cannot_fit(
        small_frames: dict[str, Any], journal: str, opened: list[Wire],
        caplog: pytest.LogCaptureFixture) -> None:
    # A message written by another client (with the default frame_max of 128 KB) carries
    # a header that a connection with a frame_max of 4 KB cannot publish again.
    channel = small_frames["channel"]
    producer = create_queue({**small_frames, "driver": {"url": URL}, "ttr": 5})
    job_id = producer.push(Fail(journal, "f", times=1))
    producer.close()
    import pika
    other = Wire(pika.URLParameters(URL), heartbeat=0, connect_timeout=5, rpc_timeout=10,
                 name="test other client").open()
    try:
        original = other.get(channel)
        assert original is not None
        headers = {**original.headers, "trace-context": "τ" * 6000, "tenant": "acme"}
        other.confirm(other.publish(other.publish_bytes(channel, original.body, encode_properties(
            job_id or "", None, headers)), 1), 10)
        other.ack(original.tag)
    finally:
        other.close()
    opened.clear()
    queue = create_queue({**small_frames, "attempts": 2, "ttr": 5})
    done: list[Any] = []
    queue.on(Queue.EVENT_AFTER_EXEC, done.append)
    with caplog.at_level(logging.WARNING, logger="queue_core.drivers.amqp"):
        run_until(queue, lambda: done, timeout=20)
    assert read_lines(journal) == ["f", "f"]
    assert [(event.id, event.attempt) for event in done] == [(job_id, 2)]
    assert len(opened) == 2 and all(wire.dead is None for wire in opened)
    assert "header(s) 'trace-context' left out of its copy" in caplog.text
    assert queue.failed() == []


def test_a_worker_process_goes_on_after_a_failure_too_large_for_one_frame(
        small_frames: dict[str, Any], journal: str) -> None:
    settings = {**small_frames, "attempts": 1, "ttr": 3}
    queue = create_queue(settings)
    queue.push(Fail(journal, "ж" * 30000))  # 60 KB of message: over any one frame here
    queue.push_many([Record(journal, f"r{index}") for index in range(20)])
    worker = queue_core(settings, "listen", "--timeout", "0.2")
    try:
        wait_for(lambda: len(read_lines(journal)) >= 21, 30, "every job")
        time.sleep(0.3)
        code, _, err = stop(worker)
    finally:
        kill_group(worker)
    assert code == 0, err[-2000:]
    assert read_lines(journal)[1:] == [f"r{index}" for index in range(20)]
    assert "cannot report" not in err and "FRAME_ERROR" not in err, err[-2000:]
    assert "cannot reach" not in err, err[-2000:]  # the worker's connection stayed open
    [info] = queue.failed()
    assert info.error is not None and info.error.message.startswith("ж" * 100)
    assert queue.info()[JobStatus.WAITING] == 0
