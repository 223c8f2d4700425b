"""Fuzzing the decoding path: arbitrary bytes and arbitrary JSON in every field of a stored
record (file, SQLite and Redis), then a worker. The worker never raises and never stalls:
each record ends FAILED (or DONE when what was stored happens to be a valid job of a
harmless registered type), no unregistered name runs, nothing named in a payload is
imported, and the admin calls read every record without raising.

The number of examples per test is bounded (QUEUE_FUZZ_EXAMPLES, default 150), so CI
spends a fixed, small time here; a failure prints the example that caused it.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from queue_core.drivers.file import records as file_records

from queue_core import JobStatus, Queue, create_queue
from tests.support.jobs import Noop

EXAMPLES = int(os.environ.get("QUEUE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
CANARY = "tests.support.canary"
HARMLESS = "tests.support.jobs.Noop"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
names = st.sampled_from([HARMLESS, "os.system", "builtins.print", f"{CANARY}.sing",
                         f"{CANARY}:sing", "", "tests.support.jobs"]) | st.text(max_size=30)
meta_values = st.dictionaries(
    st.sampled_from(["attempts", "backoff", "ttr", "unknown"]) | st.text(max_size=8),
    json_values | st.sampled_from([f"{CANARY}:sing", "this:s",
                                   {"type": f"{CANARY}:sing", "delay": 1}]),
    max_size=3)
envelopes = st.builds(
    lambda job, args, meta, keep_meta: json.dumps(
        {"job": job, "args": args, **({"meta": meta} if keep_meta else {})}).encode(),
    names, st.dictionaries(st.text(max_size=8), json_values, max_size=3) | json_values,
    meta_values | json_values, st.booleans())
payloads = envelopes | st.binary(max_size=200)
stored_values = (st.none() | st.integers(min_value=-2**63, max_value=2**63 - 1)
                 | st.floats() | st.text(max_size=20) | st.binary(max_size=20))


@pytest.fixture(autouse=True)
def no_canary() -> Iterator[None]:
    sys.modules.pop(CANARY, None)
    yield
    assert CANARY not in sys.modules, "a stored value made the worker import code"


def _settle(queue: Queue, job_id: str) -> None:
    """One worker pass, then the record's fate: FAILED, or DONE for a harmless job."""
    ran: list[Any] = []
    queue.on(Queue.EVENT_BEFORE_EXEC, lambda event: ran.append(event.job))
    queue.run()  # raises nothing, whatever is stored
    queue.off(Queue.EVENT_BEFORE_EXEC)
    assert all(isinstance(job, Noop) for job in ran), ran
    status = queue.status(job_id)
    assert status in (JobStatus.FAILED, JobStatus.DONE), status
    if status is JobStatus.DONE:
        assert ran, "DONE without running"
    info = queue.get(job_id)  # the admin path reads it too
    assert info.status is status
    queue.info()
    queue.failed()
    queue.remove(job_id)


# -- file ----------------------------------------------------------------------------------

@pytest.fixture
def file_queue(tmp_path: Path) -> Queue:
    return create_queue({"driver": f"file://{tmp_path}/q", "keep_completed": True,
                         "imports": ["tests.support.jobs"]})


def _file_record(queue: Queue, data: bytes) -> str:
    """A job whose stored record is ``data`` (a record file and its marker in new/)."""
    driver: Any = queue.driver
    job_id = uuid.uuid4().hex
    (driver.root / "records" / job_id).write_bytes(data)
    os.symlink("@", driver.root / "new" / job_id)
    return job_id


@FUZZ
@given(data=st.binary(max_size=300))
def test_file_arbitrary_bytes_as_a_record(file_queue: Queue, data: bytes) -> None:
    _settle(file_queue, _file_record(file_queue, data))


@FUZZ
@given(meta=st.dictionaries(st.sampled_from(["id", "ttr", "pushed_at", "error", "result",
                                             "finished_at"]) | st.text(max_size=8),
                            json_values, max_size=6),
       payload=payloads,
       attempt=st.integers(min_value=0, max_value=10**10 - 1) | st.text(
           alphabet="0123456789 -x", min_size=10, max_size=10),
       running=st.sampled_from(["0", "1", "x"]))
def test_file_arbitrary_fields_in_a_record(file_queue: Queue, meta: dict[str, Any],
                                           payload: bytes, attempt: Any,
                                           running: str) -> None:
    record = bytearray(file_records.encode(meta, payload))
    attempt_text = (f"{attempt:010d}" if isinstance(attempt, int) else attempt).encode()
    record[file_records.ATTEMPT_AT:file_records.ATTEMPT_AT + 10] = attempt_text
    record[27:28] = running.encode()
    _settle(file_queue, _file_record(file_queue, bytes(record)))


# -- SQLite ------------------------------------------------------------------------------

COLUMNS = ("attempt", "priority", "ttr", "pushed_at", "payload", "running", "started_at",
           "ready_at", "error", "result")


@pytest.fixture
def sqlite_queue(tmp_path: Path) -> Queue:
    return create_queue({"driver": f"sqlite:///{tmp_path}/queue.db", "keep_completed": True,
                         "attempts": 1, "imports": ["tests.support.jobs"]})


@FUZZ
@given(values=st.dictionaries(st.sampled_from(COLUMNS), stored_values, min_size=1,
                              max_size=4),
       payload=payloads)
def test_sqlite_arbitrary_values_in_a_row(sqlite_queue: Queue, values: dict[str, Any],
                                          payload: bytes) -> None:
    driver: Any = sqlite_queue.driver
    job_id = driver.push(payload, ttr=60)
    assignments = ", ".join(f"{column} = ?" for column in values)
    with driver.engine.begin() as conn:
        try:
            conn.exec_driver_sql(f"UPDATE {driver.table} SET {assignments} WHERE id = ?",
                                 (*values.values(), int(job_id)))
        except Exception as exc:  # a NOT NULL column: the store itself refuses the value
            if "NOT NULL" not in str(exc):
                raise
            conn.exec_driver_sql(f"DELETE FROM {driver.table} WHERE id = ?", (int(job_id),))
            return
    _settle(sqlite_queue, job_id)


# -- Redis -------------------------------------------------------------------------------

FIELDS = ("p", "ttr", "pri", "pushed", "att", "run", "err", "res", "tok")


@pytest.fixture
def redis_queue() -> Iterator[Queue]:
    from tests.support.specs.redis import URL, available
    reason = available()
    if reason:
        pytest.fail(reason) if os.environ.get("QUEUE_TEST_REQUIRE_ALL") else pytest.skip(reason)
    queue = create_queue({"driver": {"url": URL, "warn_persistence": False},
                          "channel": f"fuzz{uuid.uuid4().hex[:10]}", "keep_completed": True,
                          "imports": ["tests.support.jobs"]})
    yield queue
    queue.clear()
    queue.close()


@FUZZ
@given(values=st.dictionaries(st.sampled_from(FIELDS), st.binary(max_size=30) | st.none(),
                              min_size=1, max_size=4),
       payload=payloads)
def test_redis_arbitrary_bytes_in_a_job_hash(redis_queue: Queue, values: dict[str, Any],
                                             payload: bytes) -> None:
    driver: Any = redis_queue.driver
    job_id = driver.push(payload, ttr=60)
    key = f"{driver.prefix}j:{job_id}"
    client = driver._connector.client
    for name, value in values.items():
        if value is None:
            client.hdel(key, name)
        else:
            client.hset(key, name, value)
    _settle(redis_queue, job_id)
