"""At concurrency 1 (the default) a worker runs async jobs side by side, up to
``async_concurrency``, and synchronous jobs one at a time in its main thread."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from queue_core import ConfigError, Job, JobStatus, Queue, create_queue
from queue_core.cli import main

_LOG: list[tuple[str, str, bool]] = []
"""(event, tag, in the main thread) in the order they happened."""
_LOCK = threading.Lock()


def _note(event: str, tag: str) -> None:
    with _LOCK:
        _LOG.append((event, tag, threading.current_thread() is threading.main_thread()))


@dataclass
class Waits(Job):
    tag: str

    async def execute(self, queue: Any) -> str:
        _note("start", self.tag)
        await asyncio.sleep(0.2)
        _note("end", self.tag)
        return self.tag


@dataclass
class Blocks(Job):
    tag: str

    def execute(self, queue: Any) -> str:
        _note("start", self.tag)
        time.sleep(0.05)
        _note("end", self.tag)
        return self.tag


def most_at_once(kind: str) -> int:
    running = most = 0
    for event, tag, _ in _LOG:
        if tag.startswith(kind):
            running += 1 if event == "start" else -1
            most = max(most, running)
    return most


@pytest.fixture
def queue() -> Queue:
    _LOG.clear()
    return create_queue({"driver": "memory://", "keep_completed": True})


def test_async_jobs_run_side_by_side_and_synchronous_ones_alone_in_the_main_thread(
        queue: Queue) -> None:
    ids = [queue.push(Waits(f"a{index}")) for index in range(12)]
    ids += [queue.push(Blocks(f"s{index}")) for index in range(3)]
    ids += [queue.push(Waits(f"b{index}")) for index in range(5)]
    assert queue.run() == 20
    assert all(queue.status(job_id) is JobStatus.DONE for job_id in ids)
    assert most_at_once("a") == 12
    assert most_at_once("s") == 1  # never two synchronous jobs at once
    assert all(main for event, tag, main in _LOG if tag.startswith("s"))
    assert not any(main for event, tag, main in _LOG if tag[0] in "ab")


def test_async_concurrency_caps_the_async_jobs_in_flight(queue: Queue) -> None:
    for index in range(9):
        queue.push(Waits(f"a{index}"))
    assert queue.worker(async_concurrency=4).run() == 9
    assert most_at_once("a") == 4


def test_async_concurrency_1_runs_async_jobs_one_at_a_time(queue: Queue) -> None:
    for index in range(3):
        queue.push(Waits(f"a{index}"))
    assert queue.worker(async_concurrency=1).run() == 3
    assert most_at_once("a") == 1


def test_max_jobs_counts_the_async_jobs_run_side_by_side(queue: Queue) -> None:
    ids = [queue.push(Waits(f"a{index}")) for index in range(10)]
    assert queue.worker(max_jobs=6).run() == 6
    assert sum(queue.status(job_id) is JobStatus.DONE for job_id in ids) == 6
    assert sum(queue.status(job_id) is JobStatus.WAITING for job_id in ids) == 4


@pytest.mark.parametrize("value", [0, -1, "8", 1.5, True, 10_001])
def test_a_bad_async_concurrency_is_refused_with_its_name(value: Any) -> None:
    with pytest.raises(ConfigError, match="async_concurrency"):
        create_queue({"driver": "memory://", "async_concurrency": value})


def test_the_cli_refuses_a_bad_async_concurrency(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--app", "memory://", "run", "--async-concurrency", "0"]) == 2
    assert "--async-concurrency" in capsys.readouterr().err
