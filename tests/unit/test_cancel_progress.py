"""The checks on what a job reports as progress and on what a store gives back, the
throttle of progress writes, the cancel watch, and the retry decision for a cancel."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from queue_core.drivers.memory import MemoryDriver
from queue_core.drivers.sync import SyncDriver

from queue_core import (
    InvalidArgumentError,
    Job,
    JobCancelledError,
    JobStatus,
    NotSupportedError,
    Progress,
    Queue,
    RetryableJob,
    control,
)
from queue_core import progress as codec


class Quiet(Job):
    def execute(self, queue: Any) -> None:
        return None


# -- what a job reports ---------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0, 0.0, 0.5, 1, 1.0])
def test_a_fraction_in_range_is_taken(fraction: float) -> None:
    assert codec.check(fraction, "m") == (float(fraction), "m")


@pytest.mark.parametrize("fraction", [-0.01, 1.01, math.nan, math.inf, -math.inf, True,
                                      "0.5", None, [0.5]])
def test_a_bad_fraction_is_refused(fraction: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="progress fraction"):
        codec.check(fraction)


@pytest.mark.parametrize("message", [None, 5, b"bytes", ["x"]])
def test_a_message_must_be_text(message: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="progress message must be a str"):
        codec.check(0.5, message)


def test_a_long_message_is_cut() -> None:
    _, message = codec.check(0.5, "x" * 5000)
    assert len(message) == codec.MAX_MESSAGE and message.endswith("\u2026")


def test_outside_a_run_progress_is_checked_and_cancelled_is_false() -> None:
    job = Quiet()
    job.progress(0.5, "nowhere to store it")  # no run: nothing stored, no error
    with pytest.raises(InvalidArgumentError):
        job.progress(2.0)
    assert job.cancelled() is False


# -- what a store gives back ------------------------------------------------------------


def test_a_stored_progress_round_trips() -> None:
    value = Progress(0.25, "quarter \u00e9", 1700000000.5)
    assert codec.decode(codec.encode(value)) == value
    assert codec.decode(codec.encode(value).encode()) == value


@pytest.mark.parametrize("raw", [None, "", b""])
def test_no_stored_progress_is_none(raw: Any) -> None:
    assert codec.decode(raw) is None


@pytest.mark.parametrize("raw", [
    "junk", "[]", "1", '{"f": 1.5}', '{"f": null}', '{"f": 0.5, "m": {}}',
    '{"f": 0.5, "at": Infinity}', '{"f": 0.5, "at": true}', b"\xff", 42, ["x"],
    '{"f": 0.5, "m": "' + "y" * 10000 + '"}',
])
def test_a_damaged_stored_progress_is_none_and_logged(
        raw: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="queue_core.progress"):
        assert codec.decode(raw, "7") is None
    assert "job 7: its stored progress is unreadable" in caplog.text


@pytest.mark.parametrize("raw", [1, 1700000000000, "1700000000000", b"1700000000000.5",
                                 "2.5"])
def test_a_cancel_mark_is_a_positive_time(raw: Any) -> None:
    assert codec.cancel_mark(raw) is True


@pytest.mark.parametrize("raw", [None, "", b""])
def test_no_cancel_mark(raw: Any) -> None:
    assert codec.cancel_mark(raw) is False


@pytest.mark.parametrize("raw", ["yes", "-1", "0", "nan", "inf", b"\xff", True, [1],
                                 "9" * 50])
def test_a_damaged_cancel_mark_is_ignored_and_logged(
        raw: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="queue_core.progress"):
        assert codec.cancel_mark(raw, "9") is False
    assert "job 9: its stored cancel mark is unreadable" in caplog.text


# -- the throttle -------------------------------------------------------------------------


class Recording(MemoryDriver):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[tuple[str, Progress]] = []
        self.asked: list[list[str]] = []
        self.marked: set[str] = set()
        self.fail_lookups = False

    def set_progress(self, job_id: str, value: Progress) -> None:
        self.written.append((job_id, value))

    def cancel_requested(self, job_ids: Sequence[str]) -> set[str]:
        self.asked.append(list(job_ids))
        if self.fail_lookups:
            raise OSError("down")
        return self.marked & set(job_ids)


def test_progress_writes_are_throttled_and_the_last_one_is_written_at_the_end() -> None:
    store = Recording()
    job = Quiet()
    run = control.begin(job, "1", store)
    for step in range(1000):
        job.progress(step / 1000, f"s{step}")
    assert len(store.written) == 1  # the first at once, the rest held back
    control.end(job, run)
    assert [value.message for _, value in store.written] == ["s0", "s999"]
    assert job.cancelled() is False  # the run is over


def test_a_value_held_back_is_written_by_the_timer() -> None:
    store = Recording()
    job = Quiet()
    run = control.begin(job, "2", store)
    job.progress(0.1, "first")
    job.progress(0.2, "held")
    end = time.monotonic() + 5
    while len(store.written) < 2:
        assert time.monotonic() < end
        time.sleep(0.02)
    assert store.written[-1][1].message == "held"
    control.end(job, run)
    assert len(store.written) == 2  # nothing was left to write


def test_a_failing_progress_write_does_not_fail_the_job(
        caplog: pytest.LogCaptureFixture) -> None:
    class Broken(MemoryDriver):
        def set_progress(self, job_id: str, value: Progress) -> None:
            raise OSError("disk full")

    job = Quiet()
    run = control.begin(job, "3", Broken())
    job.progress(0.5)
    control.end(job, run)
    assert "cannot store its progress: disk full" in caplog.text


def test_progress_on_a_driver_without_it_is_refused() -> None:
    class NoProgress(MemoryDriver):
        name = "plain"
        capabilities = MemoryDriver.capabilities.__class__(status=True)

    job = Quiet()
    run = control.begin(job, "4", NoProgress())
    try:
        with pytest.raises(NotSupportedError, match="the plain driver does not support job "
                                                    "progress"):
            job.progress(0.5)
    finally:
        control.end(job, run)


# -- the cancel watch ---------------------------------------------------------------------


def test_the_watch_looks_up_only_runs_that_went_on_long_enough() -> None:
    store = Recording()
    watch = control.CancelWatch(store, every=60, after=0.2)
    young, old = Quiet(), Quiet()
    young_run = control.begin(young, "young", store)
    old_run = control.begin(old, "old", store)
    old_run.began -= 1.0
    stopped: list[str] = []
    old_run.on_cancel = lambda: stopped.append("old")
    try:
        assert watch.tick() == 0
        assert store.asked == [["old"]]  # one batched call, the young run not in it
        store.marked = {"old", "young"}
        assert watch.tick() == 1
        assert stopped == ["old"] and old.cancelled() and not young.cancelled()
        assert watch.tick() == 0  # a run found cancelled is not looked up again
        assert store.asked[-1] == ["old"] and len(store.asked) == 2
    finally:
        control.end(young, young_run)
        control.end(old, old_run)
    assert watch.tick() == 0 and len(store.asked) == 2  # no run: no lookup at all


def test_a_failing_lookup_is_logged_once_and_the_watch_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    store = Recording()
    store.fail_lookups = True
    watch = control.CancelWatch(store, every=60, after=0.0)
    job = Quiet()
    run = control.begin(job, "5", store)
    try:
        assert watch.tick() == 0 and watch.tick() == 0
        assert caplog.text.count("cannot look up cancelled jobs") == 1
        store.fail_lookups, store.marked = False, {"5"}
        assert watch.tick() == 1
        assert "can be looked up" in caplog.text
    finally:
        control.end(job, run)


def test_a_stop_that_raises_does_not_end_the_watch(caplog: pytest.LogCaptureFixture) -> None:
    store = Recording()
    store.marked = {"6"}
    job = Quiet()
    run = control.begin(job, "6", store)

    def broken() -> None:
        raise RuntimeError("no")

    run.on_cancel = broken
    try:
        assert control.CancelWatch(store, after=0.0).tick() == 1
        assert job.cancelled()
        assert "could not stop the cancelled run" in caplog.text
    finally:
        control.end(job, run)


# -- the core's decision ------------------------------------------------------------------


class Asks(RetryableJob):
    asked: list[int] = []

    def execute(self, queue: Any) -> None:
        while not self.cancelled():
            time.sleep(0.01)

    def can_retry(self, attempt: int, error: BaseException) -> bool:
        Asks.asked.append(attempt)
        return True


def test_a_cancelled_run_is_never_retried_and_can_retry_is_not_asked() -> None:
    queue = Queue(MemoryDriver(), attempts=10)
    Asks.asked = []
    job_id = queue.push(Asks())
    worker = queue.worker(handle_signals=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    end = time.monotonic() + 10
    while queue.status(job_id) is not JobStatus.RESERVED:
        assert time.monotonic() < end
        time.sleep(0.01)
    assert queue.cancel(job_id)
    thread.join(timeout=10)
    info = queue.get(job_id)
    assert info.status is JobStatus.FAILED and info.attempt == 1
    assert info.error is not None and info.error.type.endswith("JobCancelledError")
    assert Asks.asked == []


def test_cancel_is_refused_where_the_driver_cannot() -> None:
    queue = Queue(SyncDriver())
    with pytest.raises(NotSupportedError, match="the sync driver does not support "
                                                "cancelling jobs"):
        queue.cancel("1")
    assert issubclass(JobCancelledError, Exception)
