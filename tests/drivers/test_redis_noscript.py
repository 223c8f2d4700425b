"""A Redis that lost the queue's scripts (SCRIPT FLUSH; the same as a restart or a
failover to a server that never loaded them): every call reloads them and goes on, and
no deferred ack is lost. On a throwaway server, since a flush would disturb other tests
on the shared one."""

from __future__ import annotations

import logging
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from queue_core import JobStatus, Queue, create_queue
from queue_core.consumer import Consumer, Settlement, Verdict
from queue_core.driver import ErrorInfo
from tests.support.jobs import Record, Sleep, read_lines
from tests.support.procs import kill_group, queue_core, stop, wait_for
from tests.support.redis_servers import RedisProcess, missing_binaries

logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    problem = missing_binaries()
    if problem:
        pytest.fail(problem)
    made = RedisProcess(tmp_path_factory.mktemp("noscript"))
    made.start()
    yield made
    made.kill()


def _settings(server: RedisProcess, **extra: Any) -> dict[str, Any]:
    return {"driver": {"url": f"redis://127.0.0.1:{server.port}/0", "lease_grace": 0.5,
                       "prefetch_lease": 3, "warn_persistence": False},
            "channel": f"t{uuid.uuid4().hex[:12]}", "imports": ["tests.support.jobs"],
            **extra}


@pytest.fixture
def make(server: RedisProcess) -> Iterator[Callable[..., Queue]]:
    made: list[Queue] = []

    def build(**extra: Any) -> Queue:
        made.append(create_queue(_settings(server, **extra)))
        return made[-1]
    yield build
    for queue in made:
        queue.clear()
        queue.close()


@pytest.fixture
def flush(server: RedisProcess) -> Callable[[], None]:
    import redis
    client = redis.Redis(port=server.port)
    return lambda: client.script_flush()


def test_push_and_push_many(make: Callable[..., Queue], flush: Callable[[], None],
                            journal: str) -> None:
    queue = make()
    queue.push(Record(journal, "first"))
    flush()
    one = queue.push(Record(journal, "a"))
    flush()
    many = queue.push_many([Record(journal, f"m{index}") for index in range(3)])
    assert one is not None
    assert [queue.status(job_id) for job_id in (one, *many)] == [JobStatus.WAITING] * 4


def _begun(consumer: Consumer, settle: list[Settlement] | None = None) -> Any:
    """The next job, fetched alone (carrying ``settle``) and begun, as a worker does."""
    (message,) = consumer.fetch(1, 0, settle or [])
    consumer.begin(message)
    return message


def test_reserve(make: Callable[..., Queue], flush: Callable[[], None], journal: str) -> None:
    queue = make()
    consumer = queue.driver.open_consumer()
    assert consumer.fetch(1, 0) == []  # the worker's connection, scripts loaded
    ids = queue.push_many([Record(journal, f"j{index}") for index in range(2)])
    flush()
    message = _begun(consumer)
    assert message.id == ids[0]
    assert queue.status(ids[1]) is JobStatus.WAITING  # not reserved for no one
    consumer.close()


def test_the_deferred_ack_sent_with_the_next_reserve_is_not_lost(
        make: Callable[..., Queue], flush: Callable[[], None], journal: str) -> None:
    queue = make()
    driver = queue.driver
    consumer = driver.open_consumer()
    ids = queue.push_many([Record(journal, f"j{index}") for index in range(2)])
    first = _begun(consumer)
    assert first.id == ids[0]
    owed = [Settlement(Verdict.ACK, first, keep=True)]
    flush()  # the ack is still owed: it goes with the next reserve
    second = _begun(consumer, owed)
    assert second.id == ids[1]
    assert driver.status(ids[0]) is JobStatus.DONE
    assert queue.info()[JobStatus.RESERVED] == 1  # only the second: nothing left behind
    consumer.close()


def test_starts_and_acks_of_fetched_jobs_are_not_lost(
        make: Callable[..., Queue], flush: Callable[[], None], journal: str) -> None:
    queue = make()
    driver: Any = queue.driver
    consumer = driver.open_consumer()
    ids = queue.push_many([Record(journal, f"j{index}") for index in range(4)])
    # Quick jobs, as the core drives them: fetched several at a time, started unanswered.
    fetched = consumer.fetch(4, 0)
    first = fetched.pop(0)
    consumer.begin(first)
    assert queue.info()[JobStatus.RESERVED] == 4  # one batch
    owed = [Settlement(Verdict.ACK, first, keep=True)]
    flush()
    seen = [first.id]
    for message in fetched:  # each sends the previous ack and its own start, unanswered
        consumer.begin(message, owed)
        seen.append(message.id)
        owed = [Settlement(Verdict.ACK, message, keep=True)]
    consumer.settle(owed)  # reads the replies: NOSCRIPT, reload, everything sent again once
    assert seen == ids
    assert [driver.status(job_id) for job_id in ids] == [JobStatus.DONE] * 4
    assert [queue.get(job_id).attempt for job_id in ids] == [1] * 4


def test_release_and_fail(make: Callable[..., Queue], flush: Callable[[], None],
                          journal: str) -> None:
    queue = make()
    consumer = queue.driver.open_consumer()
    ids = queue.push_many([Record(journal, f"j{index}") for index in range(2)])
    first = _begun(consumer)
    flush()
    consumer.release(first, delay=0, error=ErrorInfo("ValueError", "again"))
    assert queue.status(ids[0]) is JobStatus.WAITING
    message = _begun(consumer)
    assert message.id == ids[0]
    flush()
    consumer.fail(message, error=ErrorInfo("ValueError", "no more"))
    info = queue.get(ids[0])
    assert info.status is JobStatus.FAILED and info.error is not None
    assert info.error.message == "no more"
    consumer.close()


def test_admin_calls(make: Callable[..., Queue], flush: Callable[[], None],
                     journal: str) -> None:
    queue = make()
    consumer = queue.driver.open_consumer()
    ids = queue.push_many([Record(journal, f"j{index}") for index in range(3)])
    message = _begun(consumer)
    consumer.fail(message, error=ErrorInfo("ValueError", "x"))
    consumer.close()
    flush()
    queue.retry(ids[0])
    assert queue.status(ids[0]) is JobStatus.WAITING
    flush()
    assert queue.remove(ids[1]) is True
    assert queue.driver.status(ids[1]) is None
    flush()
    queue.clear()
    assert set(queue.info().values()) == {0}


@pytest.mark.slow
def test_a_worker_goes_on_within_a_second_of_each_script_flush(
        server: RedisProcess, flush: Callable[[], None], journal: str, tmp_path: Path) -> None:
    settings = _settings(server, ttr=30, attempts=5)
    queue = create_queue(settings)
    total = 400
    tags = [f"s{index}" for index in range(total)]
    queue.push_many([Sleep(journal, tag, 0.005) for tag in tags])
    worker = queue_core(settings, "listen", "--timeout", "0.2", stdout=subprocess.DEVNULL)

    def ends() -> int:
        return sum(line.startswith("end ") for line in read_lines(journal))
    try:
        wait_for(lambda: ends() >= 20, 30, "the worker to run jobs")
        pauses = []
        for _ in range(5):
            before = ends()
            flush()
            flushed = time.monotonic()
            # The job running at the flush may end without a script; the one after it
            # was reserved and started by scripts the server no longer had.
            wait_for(lambda before=before: ends() > before + 1, 10, "a job after the flush",
                     every=0.002)
            pauses.append(time.monotonic() - flushed)
            time.sleep(0.25)
        wait_for(lambda: ends() >= total, 60, "every job")
        code, _, err = stop(worker)
    finally:
        kill_group(worker)
    assert code == 0, err
    logger.info("from each SCRIPT FLUSH to the next job done: %s s",
                ", ".join(f"{pause:.3f}" for pause in pauses))
    assert max(pauses) < 1.0, pauses
    # One worker runs its jobs in push order: a job left reserved for no one (a reserve
    # whose reply was lost) would come back only when its lease ends, out of order.
    started = [line.split(" ", 1)[1] for line in read_lines(journal) if line.startswith("start ")]
    assert started == tags
    assert "cannot reach" not in err  # a lost script is no outage
    counts = queue.info()
    assert counts[JobStatus.WAITING] + counts[JobStatus.RESERVED] + counts[JobStatus.FAILED] == 0
    queue.clear()
