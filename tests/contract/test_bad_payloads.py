"""Payloads that cannot become a job fail at once, are never retried, and the worker
goes on with the next job."""

from __future__ import annotations

import json

import pytest

from queue_core import ExecEvent, JobStatus, Queue
from tests.support.jobs import Record, read_lines
from tests.support.run import run_until

BAD_PAYLOADS = {
    "garbage": b"\x00\xffnot json at all",
    "not-an-object": b"[1, 2, 3]",
    "unknown-type": json.dumps({"job": "os.system", "args": {"command": "touch /tmp/x"}}).encode(),
    "missing-args": json.dumps({"job": "tests.support.jobs.Record"}).encode(),
}


@pytest.mark.parametrize("kind", sorted(BAD_PAYLOADS))
def test_a_bad_payload_fails_without_retry(make_queue, journal: str, kind: str) -> None:
    attempts = 5 if make_queue().capabilities.retry else 1
    queue = make_queue(attempts=attempts)
    failed: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_FAIL, failed.append)
    bad_id = queue.driver.push(BAD_PAYLOADS[kind], ttr=60)
    queue.push(Record(journal, "next"))
    run_until(queue, lambda: read_lines(journal) and failed)
    queue.run()
    assert len(failed) == 1 and failed[0].job is None
    assert type(failed[0].error).__name__ == "SerializationError"
    assert read_lines(journal) == ["next"]
    if queue.capabilities.status:
        info = queue.get(bad_id)
        assert info.status is JobStatus.FAILED
        assert info.attempt == 1
        assert info.error.type == "queue_core.errors.SerializationError"
    if kind == "unknown-type":
        assert "unknown job type 'os.system'" in str(failed[0].error)
