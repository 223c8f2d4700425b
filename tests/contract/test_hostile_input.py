"""Hostile and broken input, on every driver: a payload never chooses code, every number
is bounded at push and on read, and a job whose stored values are bad fails with the
reason instead of stalling or crashing the worker."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from queue_core import (
    ConfigError,
    ExecEvent,
    InvalidArgumentError,
    JobStatus,
    Queue,
    SerializationError,
    create_queue,
)
from tests.support.jobs import Fail, Record, read_lines
from tests.support.run import run_until

CANARY = "tests.support.canary"
SING = f"{CANARY}:sing"


def raw(job: str, args: dict[str, Any], meta: Any) -> bytes:
    return json.dumps({"job": job, "args": args, "meta": meta}).encode()


def failing_args(journal: str) -> dict[str, Any]:
    return {"journal": journal, "tag": "f", "times": None}


# Every field of a payload's metadata that names code, as a string or inside a backoff.
CODE_IN_META: dict[str, Any] = {
    "backoff-path": {"attempts": 3, "backoff": SING},
    "backoff-module": {"attempts": 3, "backoff": "this:s"},
    "backoff-type": {"attempts": 3, "backoff": {"type": SING, "delay": 0}},
    "backoff-delay": {"attempts": 3, "backoff": {"type": "fixed", "delay": SING}},
    "backoff-jitter": {"attempts": 3, "backoff": {"type": "fixed", "delay": 0, "jitter": SING}},
    "backoff-extra-key": {"attempts": 3, "backoff": {"type": "fixed", "delay": 0, "fn": SING}},
    "backoff-list": {"attempts": 3, "backoff": [CANARY, "sing"]},
    "attempts": {"attempts": SING},
    "attempts-many": {"attempts": "many"},
    "attempts-float": {"attempts": 2.5},
    "attempts-huge": {"attempts": 10**30},
    "backoff-huge": {"attempts": 3, "backoff": 1e308},
    "backoff-huge-exponential": {"attempts": 3, "backoff": {"type": "exponential",
                                                            "delay": 1e308}},
    "backoff-negative": {"attempts": 3, "backoff": -1},
    "meta-not-an-object": SING,
}


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "canary"
    monkeypatch.setenv("QUEUE_TEST_CANARY", str(path))
    sys.modules.pop(CANARY, None)
    sys.modules.pop("this", None)
    return path


@pytest.mark.parametrize("kind", sorted(CODE_IN_META))
def test_metadata_naming_code_is_refused_as_data(make_queue, journal: str, canary: Path,
                                                 kind: str) -> None:
    queue = make_queue()
    failed: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_FAIL, failed.append)
    bad_id = queue.driver.push(raw("tests.support.jobs.Fail", failing_args(journal),
                                   CODE_IN_META[kind]), ttr=60)
    queue.push(Record(journal, "next"))
    run_until(queue, lambda: "next" in read_lines(journal) and failed)
    queue.run()
    assert CANARY not in sys.modules and "this" not in sys.modules
    assert not canary.exists(), canary.read_text()
    # Refused when decoded: the job never ran, and was not retried.
    assert read_lines(journal) == ["next"]
    assert len(failed) == 1 and isinstance(failed[0].error, SerializationError)
    assert "meta" in str(failed[0].error)
    if queue.capabilities.status:
        info = queue.get(bad_id)
        assert info.status is JobStatus.FAILED and info.attempt == 1


def test_an_unknown_metadata_key_is_ignored(make_queue, journal: str, canary: Path) -> None:
    queue = make_queue()
    queue.driver.push(raw("tests.support.jobs.Record", {"journal": journal, "tag": "ran"},
                          {"on_error": SING, "import": CANARY}), ttr=60)
    run_until(queue, lambda: read_lines(journal))
    assert read_lines(journal) == ["ran"]
    assert CANARY not in sys.modules and not canary.exists()


def test_args_cannot_set_dunder_attributes(make_queue, journal: str) -> None:
    queue = make_queue()
    failed: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_FAIL, failed.append)
    queue.driver.push(raw("tests.support.jobs.Record",
                          {"journal": journal, "tag": "x", "__dict__": {"tag": "y"}}, {}), ttr=60)
    run_until(queue, lambda: failed)
    assert "'__dict__' is not allowed" in str(failed[0].error)
    assert read_lines(journal) == []


@pytest.mark.needs("retry")
def test_a_backoff_as_data_still_works(make_queue, journal: str) -> None:
    queue = make_queue()
    job_id = queue.driver.push(raw("tests.support.jobs.Fail",
                                   {"journal": journal, "tag": "f", "times": 1},
                                   {"attempts": 2, "backoff": {"type": "fixed", "delay": 0}}),
                               ttr=60)
    run_until(queue, lambda: len(read_lines(journal)) == 2)
    if queue.capabilities.status:
        run_until(queue, lambda: queue.status(job_id) is JobStatus.DONE)


@pytest.mark.needs("retry")
def test_a_backoff_out_of_bounds_is_refused_at_push(queue: Queue, journal: str) -> None:
    with pytest.raises(InvalidArgumentError,
                       match=r"backoff=\)\.delay must be at most 31622400 seconds \(366 days\)"):
        queue.push(Fail(journal, "f"), backoff={"type": "exponential", "delay": 1e300})


@pytest.mark.needs("retry")
def test_a_growing_backoff_waits_at_most_the_longest_delay(make_queue, journal: str) -> None:
    """A custom backoff of 1e300 seconds is not an error: the retry waits the longest delay
    the driver can hold."""
    queue = make_queue(attempts=3, backoff=lambda attempt, error, job: 1e300)
    errors: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_ERROR, errors.append)
    queue.push(Fail(journal, "f"))
    run_until(queue, lambda: errors)
    assert errors[0].retry is True
    assert 0 < errors[0].delay <= 366 * 86400
    if queue.capabilities.max_delay is not None:
        assert errors[0].delay <= queue.capabilities.max_delay


@pytest.mark.parametrize("ttr", [1e10, 1e300, float("inf"), float("nan"), -5, 0])
def test_a_ttr_that_cannot_run_is_refused_at_push(queue: Queue, journal: str,
                                                  ttr: float) -> None:
    with pytest.raises(InvalidArgumentError, match="ttr"):
        queue.push(Record(journal, "x"), ttr=ttr)
    with pytest.raises(InvalidArgumentError, match="ttr"):
        queue.push_many([Record(journal, "x")], ttr=ttr)
    if queue.capabilities.info:
        assert sum(queue.info().values()) == 0


def test_a_ttr_setting_that_cannot_run_is_a_config_error(queue_settings) -> None:
    with pytest.raises(ConfigError, match="ttr 10000000000.0 is above queue-core's limit"):
        create_queue(queue_settings(ttr=1e10))


@pytest.mark.needs("delay")
@pytest.mark.parametrize("delay", [1e300, float("inf"), 400 * 86400])
def test_a_delay_out_of_bounds_is_refused_with_the_limit(queue: Queue, journal: str,
                                                         delay: float) -> None:
    with pytest.raises(InvalidArgumentError, match=r"delay .*(limit|must be)"):
        queue.push(Record(journal, "x"), delay=delay)
    if queue.capabilities.info:
        assert sum(queue.info().values()) == 0


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def test_a_deeply_nested_field_is_a_serialization_error(queue: Queue, journal: str) -> None:
    with pytest.raises(SerializationError, match="'data' is nested too deeply"):
        queue.push(Record(journal, "x", _nested(100_000)))
    if queue.capabilities.info:
        assert sum(queue.info().values()) == 0


def test_a_deeply_nested_payload_fails_as_undecodable(make_queue, journal: str) -> None:
    queue = make_queue()
    failed: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_FAIL, failed.append)
    payload = b'{"job":"tests.support.jobs.Record","args":{"data":' + b"[" * 100_000 + \
        b"]" * 100_000 + b"}}"
    if queue.driver.payload_limit() is not None and len(payload) > queue.driver.payload_limit():
        pytest.fail("the test payload must fit every driver")
    queue.driver.push(payload, ttr=60)
    queue.push(Record(journal, "next"))
    run_until(queue, lambda: "next" in read_lines(journal) and failed)
    assert isinstance(failed[0].error, SerializationError)
    assert "nested too deeply" in str(failed[0].error)


@pytest.mark.parametrize("ttr", [-5.0, 1e10, 1e300])
def test_a_stored_ttr_out_of_bounds_fails_the_job(make_queue, journal: str,
                                                  ttr: float) -> None:
    """What a store hands back is checked before it reaches a timer: a driver that takes
    such a ttr (below the core, which refuses it) stores a job the worker fails."""
    queue = make_queue()
    failed: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_FAIL, failed.append)
    payload = raw("tests.support.jobs.Record", {"journal": journal, "tag": "bad"}, {})
    try:
        bad_id = queue.driver.push(payload, ttr=ttr)
    except InvalidArgumentError:
        return  # the driver itself refused it, with a sentence: nothing stored
    queue.push(Record(journal, "next"))
    run_until(queue, lambda: "next" in read_lines(journal) and failed)
    queue.run()
    assert read_lines(journal) == ["next"]
    assert type(failed[0].error).__name__ == "DamagedJobError"
    assert "ttr" in str(failed[0].error)
    if queue.capabilities.status:
        info = queue.get(bad_id)
        assert info.status is JobStatus.FAILED
        assert info.error.type == "queue_core.errors.DamagedJobError"


@pytest.mark.needs("!runs_at_push", "multiprocess")
def test_the_worker_process_survives_hostile_payloads(queue_settings, journal: str,
                                                      tmp_path: Path) -> None:
    """The same, through a real ``queue-core listen``: nothing imported, nothing stalls."""
    from tests.support.procs import queue_core, stop, wait_for
    settings = queue_settings()
    queue = create_queue(settings)
    canary = tmp_path / "canary"
    for kind in ("backoff-path", "attempts", "backoff-type"):
        queue.driver.push(raw("tests.support.jobs.Fail", failing_args(journal),
                              CODE_IN_META[kind]), ttr=60)
    queue.push(Record(journal, "after"))
    os.environ["QUEUE_TEST_CANARY"] = str(canary)
    try:
        worker = queue_core(settings, "listen", "--timeout", "0.2")
    finally:
        del os.environ["QUEUE_TEST_CANARY"]
    try:
        wait_for(lambda: "after" in read_lines(journal), 30, "the good job")
        if queue.capabilities.info:
            wait_for(lambda: queue.info()[JobStatus.FAILED] == 3
                     or not queue.capabilities.failed_store, 30, "three failed jobs")
    finally:
        code, _, err = stop(worker)
    assert code == 0, err
    assert not canary.exists()
    assert "Traceback" not in err
