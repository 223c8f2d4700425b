"""A worker whose back end goes away keeps running, backs off, logs once per outage and
resumes. (Each server driver also has a test against a real server that restarts.)"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from queue_core import DriverError, Job, Queue
from tests.support.recording import RecordingDriver


@dataclass
class Ok(Job):
    def execute(self, queue: Any) -> None:
        return None


class Outage(RecordingDriver):
    """reserve fails ``down`` times in a row, then works."""

    def __init__(self, down: int) -> None:
        super().__init__()
        self.down = down
        self.calls = 0
        self.reserve_error = DriverError("connection refused")

    def reserve(self, timeout: float = 0.0):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.down > 0:
            self.down -= 1
            raise self.reserve_error
        return super().reserve(timeout)


def test_a_worker_rides_out_an_outage_and_logs_it_once(caplog) -> None:
    driver = Outage(down=5)
    queue = Queue(driver)
    for _ in range(3):
        queue.push(Ok())
    caplog.set_level(logging.WARNING, logger="queue_core.worker")
    assert queue.listen(timeout=0.1, max_jobs=3) == 0
    assert [job_id for job_id, _ in driver.acked] == ["1", "2", "3"]
    assert driver.calls >= 8
    messages = [record.getMessage() for record in caplog.records]
    assert sum("cannot reach recording:queue: connection refused" in m for m in messages) == 1
    assert sum("is reachable again after" in m for m in messages) == 1


def test_an_error_that_names_its_queue_is_logged_without_naming_it_twice(caplog) -> None:
    driver = Outage(down=1)
    driver.reserve_error = DriverError(f"{driver.describe()}: connection refused")
    queue = Queue(driver)
    queue.push(Ok())
    caplog.set_level(logging.WARNING, logger="queue_core.worker")
    queue.listen(timeout=0.1, max_jobs=1)
    [message] = [r.getMessage() for r in caplog.records if "cannot reach" in r.getMessage()]
    assert message.count(driver.describe()) == 1, message


def test_the_outage_backoff_is_capped_and_grows(monkeypatch) -> None:
    from queue_core import worker as worker_module
    naps: list[float] = []
    monkeypatch.setattr(worker_module.Worker, "_sleep", lambda self, seconds: naps.append(seconds))
    driver = Outage(down=12)
    queue = Queue(driver)
    queue.push(Ok())
    queue.listen(timeout=0.1, max_jobs=1)
    assert naps[:5] == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert max(naps) == worker_module.OUTAGE_BACKOFF_MAX


def test_saving_an_outcome_is_retried_through_a_short_outage(caplog) -> None:
    class AckOutage(RecordingDriver):
        failures = 3

        def ack(self, message, *, result=None, keep=False):  # type: ignore[no-untyped-def]
            if self.failures:
                self.failures -= 1
                raise DriverError("server has gone away")
            super().ack(message, result=result, keep=keep)

    driver = AckOutage()
    queue = Queue(driver, ttr=30)
    queue.push(Ok())
    caplog.set_level(logging.WARNING)
    assert queue.run() == 1
    assert driver.acked == [("1", 1)]
    messages = [record.getMessage() for record in caplog.records]
    assert sum("cannot save its outcome" in m for m in messages) == 1
    assert sum("outcome saved" in m for m in messages) == 1
