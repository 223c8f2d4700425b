"""Cancel marks and progress records read back from each back end are untrusted: junk
written straight into the store reads as no progress and no cancel, never as an error
that fails a lookup or stops a job."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import pytest

from queue_core import JobStatus, Queue
from tests.support.jobs import Record

pytestmark = pytest.mark.needs("cancel", "progress", "!runs_at_push")

JUNK_PROGRESS: list[Any] = [
    "not json", "[1, 2]", '{"f": "half"}', '{"f": 2}', '{"f": -1}', '{"f": NaN}',
    '{"f": 0.5, "m": 7}', '{"f": 0.5, "at": "noon"}', '{"f": true}', "{" * 5000,
    '"' + "x" * 20000 + '"', b"\xff\xfe",
]
JUNK_MARKS: list[Any] = ["soon", "-5", "nan", "inf", "0", b"\xff", "1e400", "x" * 100]


def write_raw(queue: Queue, job_id: str, kind: str, raw: Any) -> bool:
    """Store ``raw`` as the job's progress (kind 'progress') or cancel mark ('cancel'),
    bypassing the driver's own encoding, as damage or another program would; False when
    the store cannot hold that value at all (a DOUBLE column and a word)."""
    driver: Any = queue.driver
    data = raw if isinstance(raw, bytes) else str(raw).encode()
    if driver.name == "memory":
        job = driver._jobs.jobs[job_id]
        assert kind == "progress", "the memory driver keeps its marks as numbers"
        job.progress = data.decode("utf-8", "replace")
    elif driver.name == "file":
        folder = driver.root / "marks"
        folder.mkdir(exist_ok=True)
        (folder / f"{job_id}.{kind}").write_bytes(data)
    elif driver.name == "redis":
        client = driver._connector.client
        client.hset(driver._key(job_id), "pg" if kind == "progress" else "cx", data)
    elif driver.name == "db":
        from sqlalchemy import text
        column = "progress" if kind == "progress" else "cancel_at"
        value: Any = data.decode("utf-8", "replace")
        if column == "cancel_at":
            try:
                value = float(value)
            except ValueError:
                return False
            if driver.dialect != "postgresql" and value in (math.inf, -math.inf) \
                    or value != value:
                return False
        with driver.engine.begin() as conn:
            conn.execute(text(f"DELETE FROM {driver.marks_table} WHERE id = :id"),
                         {"id": int(job_id)})
            conn.execute(text(f"INSERT INTO {driver.marks_table} (id, channel, {column}) "
                              "VALUES (:id, :c, :v)"),
                         {"id": int(job_id), "c": driver.channel, "v": value})
    else:
        raise AssertionError(f"no way to write raw marks on {driver.name}")
    return True


@pytest.mark.worker_modes("c1")
@pytest.mark.parametrize("raw", JUNK_PROGRESS, ids=range(len(JUNK_PROGRESS)))
def test_junk_progress_reads_as_none(make_queue, journal: str, raw: Any,
                                     caplog: pytest.LogCaptureFixture) -> None:
    queue = make_queue()
    job_id = queue.push(Record(journal, "x"))
    write_raw(queue, job_id, "progress", raw)
    with caplog.at_level(logging.WARNING, logger="queue_core.progress"):
        info = queue.get(job_id)
    assert info.status is JobStatus.WAITING
    assert info.progress is None
    assert "stored progress is unreadable" in caplog.text


@pytest.mark.worker_modes("c1")
def test_a_progress_message_read_back_loses_its_control_characters(make_queue,
                                                                   journal: str) -> None:
    queue = make_queue()
    job_id = queue.push(Record(journal, "x"))
    write_raw(queue, job_id, "progress", '{"f": 0.5, "m": "a\\u001b[31mb\\nc", "at": 1}')
    progress = queue.get(job_id).progress
    assert progress is not None and progress.message == "a?[31mb?c"


@pytest.mark.worker_modes("c1")
@pytest.mark.drivers("file", "redis", "redis-cluster", "sqlite", "postgresql", "mysql")
def test_a_junk_cancel_mark_does_not_cancel(make_queue, journal: str) -> None:
    queue = make_queue()
    job_id = queue.push(Record(journal, "x"))
    held = queue.consume().next(0)  # reserved, as a running job is
    assert held is not None and held.id == job_id
    written = 0
    for raw in JUNK_MARKS:
        if write_raw(queue, job_id, "cancel", raw):
            written += 1
            assert queue.driver.cancel_requested([job_id]) == set(), raw
    assert written >= 2
    write_raw(queue, job_id, "cancel", "1700000000000")
    assert queue.driver.cancel_requested([job_id]) == {job_id}


@pytest.mark.worker_modes("c1")
@pytest.mark.drivers("file")
def test_a_file_mark_that_is_a_link_is_not_followed(make_queue, journal: str,
                                                    tmp_path: Any) -> None:
    queue = make_queue()
    job_id = queue.push(Record(journal, "x"))
    secret = tmp_path / "secret"
    secret.write_text('{"f": 0.5, "m": "secret", "at": 1}')
    folder = queue.driver.root / "marks"  # type: ignore[attr-defined]
    folder.mkdir(exist_ok=True)
    os.symlink(secret, folder / f"{job_id}.progress")
    assert queue.get(job_id).progress is None
