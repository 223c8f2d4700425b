"""Every log record about a job carries job_id, job_name, attempt and queue as ``extra``
fields (logfields.py), so that a JSON formatter picks them up."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import pytest

from queue_core import Job, RetryableJob, create_queue
from queue_core.logfields import FIELDS


class FlakyForLogs(RetryableJob):
    job_name = "tests.logs.flaky"

    def execute(self, queue: Any) -> None:
        raise RuntimeError("boom")

    def can_retry(self, attempt: int, error: BaseException) -> bool:
        return attempt < 2


class QuietForLogs(Job):
    job_name = "tests.logs.quiet"

    def execute(self, queue: Any) -> None:
        return None


def _about(caplog: pytest.LogCaptureFixture, job_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if f"job {job_id}" in r.getMessage()]


def test_retry_and_final_failure_records_carry_the_job_fields(
        caplog: pytest.LogCaptureFixture) -> None:
    queue = create_queue({"driver": "memory://", "channel": "logs", "attempts": 5})
    job_id = queue.push(FlakyForLogs())
    assert job_id is not None
    with caplog.at_level(logging.INFO, logger="queue_core"):
        queue.run()
    records = _about(caplog, job_id)
    assert [r.levelno for r in records] == [logging.INFO, logging.WARNING]
    for attempt, record in enumerate(records, start=1):
        assert {name: getattr(record, name) for name in FIELDS} == {
            "job_id": job_id, "job_name": "tests.logs.flaky", "attempt": attempt,
            "queue": "logs"}


def test_an_undecodable_payload_is_logged_with_its_id_and_no_job_name(
        caplog: pytest.LogCaptureFixture) -> None:
    queue = create_queue({"driver": "memory://", "channel": "logs"})
    job_id = queue.driver.push(b'{"not": "a job"}', ttr=60)
    with caplog.at_level(logging.INFO, logger="queue_core"):
        queue.run()
    [record] = _about(caplog, job_id)
    assert (record.job_id, record.job_name, record.attempt, record.queue) == (  # type: ignore[attr-defined]
        job_id, None, 1, "logs")


def test_a_driver_record_about_a_job_names_it_and_its_queue(
        tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    queue = create_queue({"driver": f"file://{tmp_path}", "channel": "logs"})
    job_id = queue.push(QuietForLogs())
    assert job_id is not None
    consumer = queue.consume()
    [message] = consumer.next_many(1.0, 1)
    os.unlink(message.handle.path)  # type: ignore[attr-defined] - its lease "ended"
    with caplog.at_level(logging.INFO, logger="queue_core"):
        consumer.ack(message)
        consumer.close()
    [record] = _about(caplog, job_id)
    assert (record.job_id, record.queue) == (job_id, "logs")  # type: ignore[attr-defined]


def test_a_json_formatter_gets_the_fields_from_the_record(
        caplog: pytest.LogCaptureFixture) -> None:
    queue = create_queue({"driver": "memory://", "channel": "logs", "attempts": 1})
    job_id = queue.push(FlakyForLogs())
    with caplog.at_level(logging.INFO, logger="queue_core"):
        queue.run()
    record = _about(caplog, str(job_id))[-1]
    line = json.dumps({name: record.__dict__[name] for name in FIELDS})
    assert json.loads(line)["job_name"] == "tests.logs.flaky"
