"""What is particular to the memory driver: named stores, one process, waking waiters."""

from __future__ import annotations

import threading
import time

import pytest

from queue_core import JobStatus, NotSupportedError, create_queue
from tests.support.jobs import Record, read_lines


def test_queues_naming_the_same_store_share_its_jobs_and_others_do_not(journal: str) -> None:
    producer = create_queue({"driver": "memory://shared-by-name", "channel": "a"})
    worker = create_queue({"driver": "memory://shared-by-name", "channel": "a"})
    other_channel = create_queue({"driver": "memory://shared-by-name", "channel": "b"})
    unnamed = create_queue({"driver": "memory://", "channel": "a"})
    producer.push(Record(journal, "x"))
    assert unnamed.run() == 0 and other_channel.run() == 0
    assert worker.run() == 1
    assert read_lines(journal) == ["x"]


def test_a_waiting_worker_thread_takes_a_pushed_job_without_polling(journal: str) -> None:
    queue = create_queue({"driver": "memory://"})
    consumption = queue.consume()
    got: list[float] = []

    def wait() -> None:
        message = consumption.next(10)
        assert message is not None
        got.append(time.monotonic())

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.2)
    pushed = time.monotonic()
    queue.push(Record(journal, "x"))
    thread.join(10)
    assert got and got[0] - pushed < 1.0


def test_a_delayed_job_wakes_a_waiting_worker_when_it_is_due(journal: str) -> None:
    queue = create_queue({"driver": "memory://"})
    queue.push(Record(journal, "later"), delay=0.3)
    started = time.monotonic()
    message = queue.consume().next(5)
    assert message is not None and 0.25 <= time.monotonic() - started < 3


def test_isolated_workers_are_refused() -> None:
    with pytest.raises(NotSupportedError, match="memory driver does not support isolated"):
        create_queue({"driver": "memory://", "isolate": True})


def test_an_abandoned_reservation_comes_back_as_a_lost_run(journal: str) -> None:
    queue = create_queue({"driver": {"url": "memory://", "lease_grace": 0.1}})
    job_id = queue.push(Record(journal, "x"), ttr=1)
    assert queue.consume().next(0) is not None  # its worker thread died with it
    assert queue.status(job_id) is JobStatus.RESERVED
    message = queue.consume().next(3)
    assert message is not None and message.redelivered and message.attempt == 2



def test_drivers_sharing_a_store_never_give_two_jobs_one_id(journal: str) -> None:
    first = create_queue({"driver": "memory://ids-are-shared"})
    second = create_queue({"driver": "memory://ids-are-shared"})
    ids = [first.push(Record(journal, "a")), second.push(Record(journal, "b")),
           *first.push_many([Record(journal, "c"), Record(journal, "d")])]
    assert len(set(ids)) == 4
    assert first.run() == 4
    assert sorted(read_lines(journal)) == ["a", "b", "c", "d"]
