"""Beanstalk: an idle reserve waits on beanstalkd itself, which hands it a put at once, and
is never left outstanding when the call returns; an idle worker still stops within about a
second (beanstalkd waits in whole seconds)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from queue_core.drivers.beanstalk import BeanstalkDriver, connection, protocol

from queue_core import JobStatus, Message, create_queue
from queue_core.consumer import Consumer
from queue_core.consuming import Consumption
from tests.support.jobs import Record, read_lines
from tests.support.procs import kill_group, queue_core, stop, wait_for
from tests.support.specs.beanstalk import available, port

pytestmark = pytest.mark.skipif(bool(available()), reason=str(available()))

IDLE_STOP = 1.5
"""What docs/worker.md promises for an idle beanstalk worker (about a second: beanstalkd's
one-second wait, then the exit), with room for a loaded machine."""


@pytest.fixture
def address() -> Iterator[tuple[str, int]]:
    """A beanstalkd of this test's own, so that its command counts are this test's."""
    binary = shutil.which("beanstalkd")
    assert binary is not None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        number = int(sock.getsockname()[1])
    process = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(number)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up() -> bool:
        try:
            socket.create_connection(("127.0.0.1", number), timeout=0.5).close()
            return True
        except OSError:
            return False
    try:
        wait_for(up, 10, "beanstalkd to start")
        yield ("127.0.0.1", number)
    finally:
        process.kill()
        process.wait()


def server_stats(address: tuple[str, int], job_id: str | None = None) -> dict[str, str]:
    conn = connection.Connection.connect(address, 5)
    try:
        command = protocol.stats() if job_id is None else protocol.stats_job(int(job_id))
        return protocol.parse_stats(conn.call(command))
    finally:
        conn.close()


def waits(address: tuple[str, int]) -> int:
    """reserve-with-timeout commands the server has had."""
    return int(server_stats(address)["cmd-reserve-with-timeout"])


def later(seconds: float, action: Any) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        action()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def drivers(address: tuple[str, int]) -> tuple[Consumption, BeanstalkDriver]:
    """A worker's consumer, as the core wraps it, and a producer's driver, on one fresh
    tube."""
    channel = f"t{uuid.uuid4().hex[:10]}"
    store = BeanstalkDriver(*address, channel=channel)
    return Consumption(store, store.open_consumer()), BeanstalkDriver(*address, channel=channel)


def reserve(consumer: Consumer, timeout: float) -> Message | None:
    """One fetch of one job, straight from the driver's consumer."""
    got = consumer.fetch(1, timeout)
    assert len(got) <= 1
    return got[0] if got else None


def test_an_idle_reserve_waits_on_the_server_and_gets_a_put_at_once(
        address: tuple[str, int]) -> None:
    worker, producer = drivers(address)
    try:
        assert worker.next(0) is None  # connected: the counts below are the wait's own
        pushed: list[float] = []
        pushed_ids: list[str] = []

        def push() -> None:
            pushed.append(time.monotonic())
            pushed_ids.append(producer.push(b"x", ttr=60))
        before = waits(address)
        thread = later(0.3, push)
        message = worker.next(0.5)
        got = time.monotonic()
        thread.join()
        assert message is not None and message.id == pushed_ids[0]
        assert message.attempt == 1 and not message.redelivered
        # One wait on the server served the call, and the put ended it: a driver that
        # polls sends a reserve per poll and finds the job only at its next one.
        assert waits(address) - before == 1
        assert got - pushed[0] < 0.25
    finally:
        worker.close()
        producer.close()


def test_a_job_the_server_hands_over_after_the_callers_timeout_is_returned_not_left(
        address: tuple[str, int]) -> None:
    # beanstalkd waits in whole seconds, so reserve(0.5) waits one: a job put in the second
    # half is returned by this call, to be run, rather than left to an outstanding reserve
    # that a stopping worker would have to give back.
    worker, producer = drivers(address)
    try:
        ids: list[str] = []
        thread = later(0.7, lambda: ids.append(producer.push(b"late", ttr=60)))
        message = worker.next(0.5)
        thread.join()
        assert message is not None and message.id == ids[0]
        assert message.attempt == 1 and not message.redelivered
    finally:
        worker.close()
        producer.close()


def test_nothing_is_outstanding_at_close_so_a_later_job_is_not_charged(
        address: tuple[str, int]) -> None:
    worker, producer = drivers(address)
    started = time.monotonic()
    assert worker.next(0.5) is None
    waited = time.monotonic() - started
    job_id = producer.push(b"after", ttr=60)
    closing = time.monotonic()
    worker.close()
    assert time.monotonic() - closing < 0.5  # no wait left to sit out
    assert 0.4 < waited < 1.6  # one whole-second wait on the server, no more
    stats = server_stats(address, job_id)
    assert (stats["state"], stats["reserves"], stats["releases"]) == ("ready", "0", "0")
    other = BeanstalkDriver(*address, channel=producer.channel).open_consumer()
    try:
        message = reserve(other, 0)
        assert message is not None and message.id == job_id
        assert message.attempt == 1 and not message.redelivered
    finally:
        other.close()
        producer.close()


def test_the_deferred_delete_goes_out_ahead_of_the_wait(address: tuple[str, int]) -> None:
    worker, producer = drivers(address)
    try:
        first = producer.push(b"first", ttr=60)
        message = worker.next(0)
        assert message is not None and message.id == first
        worker.ack(message)  # deferred: sent with the next reserve
        seen: list[Any] = []
        thread = later(0.3, lambda: seen.append(producer.status(first)))
        second: list[str] = []
        pusher = later(0.5, lambda: second.append(producer.push(b"second", ttr=60)))
        message = worker.next(0.8)
        thread.join()
        pusher.join()
        assert seen == [None]  # deleted while the reserve was still waiting
        assert message is not None and message.id == second[0] and message.attempt == 1
    finally:
        worker.close()
        producer.close()


def test_a_delayed_job_reaches_a_waiting_reserve_when_it_is_due(
        address: tuple[str, int]) -> None:
    worker, producer = drivers(address)
    try:
        assert worker.next(0) is None
        job_id = producer.push(b"later", ttr=60, delay=1)
        pushed = time.monotonic()
        message = worker.next(3)
        took = time.monotonic() - pushed
        assert message is not None and message.id == job_id and message.attempt == 1
        assert 0.9 < took < 1.5, took
    finally:
        worker.close()
        producer.close()


def _settings() -> dict[str, Any]:
    return {"driver": {"url": f"beanstalk://127.0.0.1:{port()}", "lease_grace": 0.5},
            "channel": f"t{uuid.uuid4().hex[:10]}", "imports": ["tests.support.jobs"]}


@pytest.mark.parametrize("idle", [0.2, 0.6, 0.9])
def test_an_idle_worker_stops_within_the_promised_bound(tmp_path: Path, idle: float) -> None:
    # Signals land at different points of beanstalkd's one-second wait.
    settings, ready = _settings(), tmp_path / "ready"
    worker = queue_core(settings, "listen", "--timeout", "3", ready=ready)
    try:
        wait_for(ready.exists, 20, "the worker to start")
        time.sleep(idle)
        sent = time.monotonic()
        code, _, err = stop(worker, signal.SIGTERM)
        took = time.monotonic() - sent
    finally:
        kill_group(worker)
        create_queue(settings).clear()
    assert code == 0, err
    assert took < IDLE_STOP, took


def test_a_job_pushed_as_an_idle_worker_stops_runs_once_or_stays_uncharged(
        tmp_path: Path, journal: str) -> None:
    settings, ready = _settings(), tmp_path / "ready"
    queue = create_queue(settings)
    worker = queue_core(settings, "listen", "--timeout", "3", ready=ready)
    try:
        wait_for(ready.exists, 20, "the worker to start")
        time.sleep(0.3)
        worker.send_signal(signal.SIGTERM)
        job_id = queue.push(Record(journal, "late"))  # while the worker's wait goes on
        code, _, err = stop(worker)
    finally:
        kill_group(worker)
    try:
        assert code == 0, err
        assert job_id is not None
        if read_lines(journal):
            # Handed over by the wait the signal interrupted: run, once, and gone.
            assert read_lines(journal) == ["late"]
            assert queue.status(job_id) is JobStatus.DONE
        else:
            info = queue.get(job_id)
            assert info is not None and info.attempt == 0  # reserves: never charged
            consumer = queue.driver.open_consumer()
            message = reserve(consumer, 0)
            consumer.close()
            assert message is not None and message.attempt == 1
    finally:
        queue.clear()
        queue.close()
