"""Event semantics: handled flags, exit_code, handlers that raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from queue_core import ConfigError, ExecEvent, Job, Queue, WorkerEvent
from tests.support.recording import RecordingDriver


@dataclass
class Ok(Job):
    value: int = 1

    def execute(self, queue: Any) -> int:
        return self.value


@dataclass
class Boom(Job):
    def execute(self, queue: Any) -> None:
        raise RuntimeError("boom")


def make(**settings: Any) -> tuple[Queue, RecordingDriver]:
    driver = RecordingDriver()
    return Queue(driver, **settings), driver


def test_before_exec_handled_skips_the_job_and_counts_it_done() -> None:
    queue, driver = make()
    executed: list[Any] = []
    queue.on(Queue.EVENT_BEFORE_EXEC, lambda e: setattr(e, "handled", True))
    queue.on(Queue.EVENT_AFTER_EXEC, executed.append)
    queue.push(Boom())
    queue.run()
    assert driver.acked == [("1", 1)] and driver.failed == [] and executed == []


def test_after_exec_receives_the_result() -> None:
    queue, _ = make()
    seen: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_EXEC, seen.append)
    queue.push(Ok(41))
    queue.run()
    assert [(e.result, e.attempt, e.id) for e in seen] == [(41, 1, "1")]


@pytest.mark.parametrize("event", [Queue.EVENT_BEFORE_PUSH, Queue.EVENT_AFTER_PUSH,
                                   Queue.EVENT_BEFORE_EXEC, Queue.EVENT_AFTER_EXEC,
                                   Queue.EVENT_AFTER_ERROR, Queue.EVENT_AFTER_FAIL,
                                   Queue.EVENT_WORKER_START, Queue.EVENT_WORKER_LOOP,
                                   Queue.EVENT_WORKER_STOP])
def test_a_handler_that_raises_is_logged_and_changes_nothing(event: str, caplog) -> None:
    queue, driver = make(attempts=2)

    def broken(e: Any) -> None:
        raise ValueError("handler bug")
    queue.on(event, broken)
    queue.push(Ok())
    queue.push(Boom())
    queue.run()
    assert driver.acked == [("1", 1)]
    assert [(job_id, attempt) for job_id, attempt, _ in driver.failed] == [("2", 2)]
    assert f"{event} handler" in caplog.text and "handler bug" in caplog.text


def test_worker_events_and_exit_code() -> None:
    queue, driver = make()
    seen: list[str] = []

    def loop(event: WorkerEvent) -> None:
        seen.append("loop")
        if seen.count("loop") == 2:
            event.exit_code = 7
    queue.on(Queue.EVENT_WORKER_START, lambda e: seen.append("start"))
    queue.on(Queue.EVENT_WORKER_LOOP, loop)
    queue.on(Queue.EVENT_WORKER_STOP, lambda e: seen.append(f"stop {e.exit_code}"))
    for _ in range(5):
        queue.push(Ok())
    assert queue.listen(timeout=0.1) == 7
    assert seen == ["start", "loop", "loop", "stop 7"]
    assert len(driver.acked) == 2


def test_worker_start_exit_code_stops_before_any_job() -> None:
    queue, driver = make()
    queue.on(Queue.EVENT_WORKER_START, lambda e: setattr(e, "exit_code", 3))
    queue.push(Ok())
    assert queue.listen(timeout=0.1) == 3
    assert driver.acked == []


def test_max_jobs_stops_listen() -> None:
    queue, driver = make()
    for _ in range(5):
        queue.push(Ok())
    assert queue.listen(timeout=0.1, max_jobs=3) == 0
    assert len(driver.acked) == 3


def test_off_detaches_handlers() -> None:
    queue, _ = make()
    calls: list[Any] = []
    queue.on(Queue.EVENT_AFTER_EXEC, calls.append)
    assert queue.off(Queue.EVENT_AFTER_EXEC, calls.append) is True
    assert queue.off(Queue.EVENT_AFTER_EXEC, calls.append) is False
    queue.push(Ok())
    queue.run()
    assert calls == []


def test_unknown_events_and_non_callables_are_refused() -> None:
    queue, _ = make()
    with pytest.raises(ConfigError, match="unknown event"):
        queue.on("after_eror", print)
    with pytest.raises(ConfigError, match="not callable"):
        queue.on(Queue.EVENT_AFTER_ERROR, 5)  # type: ignore[arg-type]


def test_the_worker_goes_on_after_a_driver_error_while_reporting(caplog) -> None:
    from queue_core import DriverError

    class Flaky(RecordingDriver):
        def ack(self, message, *, result=None, keep=False):  # type: ignore[no-untyped-def]
            if message.id == "1":
                raise DriverError("connection reset")
            super().ack(message, result=result, keep=keep)
    driver = Flaky()
    queue = Queue(driver, ttr=0.2)
    driver.lease_grace = 0.1
    queue.push(Ok())
    queue.push(Ok())
    queue.run()
    assert driver.acked == [("2", 1)]
    assert "cannot report its outcome" in caplog.text


def test_a_huge_error_message_is_cut_in_log_lines_and_kept_whole_in_the_store() -> None:
    from queue_core.driver import LOGGED_MESSAGE, ErrorInfo
    info = ErrorInfo("builtins.ValueError", "x" * (LOGGED_MESSAGE * 50), "tb")
    shown = str(info)
    assert len(shown) < LOGGED_MESSAGE + 100 and f"[{LOGGED_MESSAGE * 50} characters]" in shown
    assert len(info.message) == LOGGED_MESSAGE * 50
