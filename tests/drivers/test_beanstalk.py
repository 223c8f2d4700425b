"""Beanstalk driver specifics: a server restart, the priority mapping, whole-second delays,
job size, what beanstalkd cannot do, URLs."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from queue_core.drivers.beanstalk import MAX_PRIORITY, BeanstalkDriver, connection, protocol

from queue_core import (
    ConfigError,
    InvalidArgumentError,
    JobStatus,
    NotSupportedError,
    create_queue,
)
from tests.support.jobs import Fail, Record, Sleep, read_lines
from tests.support.procs import kill_group, queue_core, stop, wait_for
from tests.support.specs.beanstalk import available, port

pytestmark = pytest.mark.skipif(bool(available()), reason=str(available()))


def settings_for(url: str, **extra: Any) -> dict[str, Any]:
    return {"driver": {"url": url, "lease_grace": 0.5}, "channel": f"t{uuid.uuid4().hex[:10]}",
            "imports": ["tests.support.jobs"], **extra}


@pytest.fixture
def settings() -> Iterator[dict[str, Any]]:
    made = settings_for(f"beanstalk://127.0.0.1:{port()}")
    yield made
    create_queue(made).clear()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A throwaway beanstalkd with a binlog, so its jobs survive a restart."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("beanstalkd")
        assert binary is not None
        self.process = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(self.port),
                                         "-b", str(self.directory)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._up, 10, "beanstalkd to start")

    def _up(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    made = Server(tmp_path)
    made.start()
    yield made
    made.kill()


def test_a_worker_survives_a_restart_of_its_beanstalkd(server: Server, journal: str) -> None:
    settings = settings_for(f"beanstalk://127.0.0.1:{server.port}", attempts=3)
    queue = create_queue(settings)
    for index in range(40):
        queue.push(Sleep(journal, f"s{index}", 0.05))
    worker = queue_core(settings, "listen", "--timeout", "0.2")
    try:
        wait_for(lambda: sum(line.startswith("end") for line in read_lines(journal)) >= 8,
                 30, "8 jobs")
        server.kill()
        time.sleep(1.5)
        assert worker.poll() is None
        server.start()
        wait_for(lambda: {line for line in read_lines(journal) if line.startswith("end")}
                 == {f"end s{index}" for index in range(40)}, 60, "every job")
        code, _, err = stop(worker)
    finally:
        kill_group(worker)
    assert code == 0, err
    assert err.count("cannot reach") == 1 and "reachable again" in err


def test_priorities_map_onto_beanstalkd_and_out_of_range_is_refused(settings: dict[str, Any],
                                                                    journal: str) -> None:
    queue = create_queue(settings)
    job_id = queue.push(Record(journal, "a"), priority=MAX_PRIORITY)
    assert queue.get(job_id).priority == MAX_PRIORITY
    with pytest.raises(InvalidArgumentError, match=f"0 to {MAX_PRIORITY}"):
        queue.push(Record(journal, "b"), priority=MAX_PRIORITY + 1)


def test_delays_are_rounded_up_to_whole_seconds(settings: dict[str, Any], journal: str) -> None:
    queue = create_queue(settings)
    pushed = time.monotonic()
    job_id = queue.push(Record(journal, "late"), delay=0.2)
    assert queue.status(job_id) is JobStatus.DELAYED
    while "late" not in read_lines(journal):
        assert time.monotonic() - pushed < 5
        if not queue.run():
            time.sleep(0.05)
    assert time.monotonic() - pushed >= 0.9  # never earlier than asked; a second at most


def test_a_job_too_big_for_the_server_is_refused_and_nothing_is_queued(
        settings: dict[str, Any], journal: str) -> None:
    queue = create_queue(settings)
    with pytest.raises(InvalidArgumentError, match="max-job-size"):
        queue.push(Record(journal, "big", data="x" * 2_000_000))
    assert sum(queue.info().values()) == 0


def test_what_beanstalkd_cannot_do_is_refused(settings: dict[str, Any], journal: str) -> None:
    queue = create_queue(settings)
    with pytest.raises(NotSupportedError, match="keeping completed jobs"):
        create_queue({**settings, "keep_completed": True})
    # The core refuses what the capabilities leave out, before the driver is asked; the
    # driver refuses on its own too.
    with pytest.raises(NotSupportedError, match="does not support listing waiting jobs"):
        queue.jobs("waiting")
    with pytest.raises(NotSupportedError, match="can only list failed jobs"):
        queue.driver.jobs(JobStatus.WAITING)
    job_id = queue.push(Fail(journal, "f"))
    queue.run()
    with pytest.raises(NotSupportedError, match="does not support resetting the attempt count"):
        queue.retry(job_id, reset_attempts=True)
    with pytest.raises(NotSupportedError, match="retrying completed jobs"):
        queue.retry(job_id, state="done")
    queue.retry(job_id)
    assert queue.status(job_id) is JobStatus.WAITING


def test_url_forms() -> None:
    driver = BeanstalkDriver.from_url("beanstalk://10.0.0.5:11301", channel="mail")
    assert driver.address == ("10.0.0.5", 11301) and driver.channel == "mail"
    assert BeanstalkDriver.from_url("beanstalk://").address == ("127.0.0.1", 11300)
    with pytest.raises(ConfigError):
        BeanstalkDriver.from_url("beanstalk://host:99999")
    with pytest.raises(ConfigError):
        BeanstalkDriver.from_url("beanstalk://host:11300?tube=x")


def test_a_push_while_beanstalkd_is_down_raises(journal: str) -> None:
    from queue_core import DriverError
    queue = create_queue(settings_for(f"beanstalk://127.0.0.1:{_free_port()}"))
    with pytest.raises(DriverError, match="beanstalk"):
        queue.push(Record(journal, "x"))


@pytest.mark.parametrize("order", ["fifo", "priority"])
def test_a_reserve_is_one_round_trip_whatever_the_order(settings: dict[str, Any], journal: str,
                                                        order: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The stats a reserve needs ride with it when the driver guessed which job comes
    # next: the next id in a FIFO tube, the job peek-ready shows in one read by priority.
    from queue_core.drivers.beanstalk import client
    extra: list[int] = []
    fallback = client.Client.counts_and_peek

    def counted(self: Any, job_id: int) -> Any:
        extra.append(job_id)
        return fallback(self, job_id)
    monkeypatch.setattr(client.Client, "counts_and_peek", counted)
    queue = create_queue(settings)
    for index in range(30):
        priority = 30 - index if order == "priority" else None
        queue.push(Record(journal, f"j{index}"), priority=priority)
    assert queue.run() == 30
    expected = [f"j{i}" for i in (range(29, -1, -1) if order == "priority" else range(30))]
    assert read_lines(journal) == expected
    assert len(extra) <= 2, extra  # the first reserve (no hint yet) and one wrong guess


def test_a_job_put_by_another_client_takes_beanstalkds_ttr(settings: dict[str, Any]) -> None:
    queue = create_queue(settings)
    with socket.create_connection(("127.0.0.1", port()), timeout=5) as other:
        other.sendall(b"use %s\r\nput 0 0 7 15\r\n{\"not\": \"ours\"}\r\n"
                      % settings["channel"].encode())
        replies = b""
        while replies.count(b"\r\n") < 2:
            replies += other.recv(100)
    assert replies.startswith(b"USING ") and b"\r\nINSERTED " in replies
    consumer = queue.driver.open_consumer()
    try:
        [message] = consumer.fetch(1, 0)
    finally:
        consumer.close()
    assert (message.payload, message.ttr, message.attempt) == (b'{"not": "ours"}', 7.0, 1)


def test_values_beanstalkd_cannot_parse_are_refused_before_they_are_sent(
        settings: dict[str, Any], journal: str) -> None:
    """A delay of 1e300 used to reach beanstalkd as a number it could not parse: it read
    the body as a command, and every later reply belonged to the command before."""
    queue = create_queue(settings)
    driver = queue.driver
    for bad in ({"delay": 1e300}, {"delay": -1}, {"ttr": 1e300}, {"ttr": float("nan")},
                {"priority": 2**40}):
        with pytest.raises(InvalidArgumentError, match="out of range for the beanstalk"):
            driver.push(b"{}", **{"ttr": 60, **bad})
    first = queue.push(Record(journal, "a"))
    second = queue.push(Record(journal, "b"))
    assert first is not None and second is not None and int(second) == int(first) + 1
    assert queue.status(first) is JobStatus.WAITING
    assert queue.remove(second) and queue.status(second) is JobStatus.DONE
    assert queue.info()[JobStatus.WAITING] == 1


def test_a_protocol_error_drops_the_connection_instead_of_reading_out_of_step(
        settings: dict[str, Any], journal: str) -> None:
    """Whatever the reason for an error reply (here a command beanstalkd cannot parse,
    sent around the driver's checks), the next command runs on a fresh connection."""
    from queue_core import DriverError
    queue = create_queue(settings)
    driver: Any = queue.driver
    queue.push(Record(journal, "before"))
    unparsable = protocol.put(b"body read as a command", 0, 0, 60)
    unparsable.data = unparsable.data.replace(b"put 0 ", b"put -1 ", 1)
    with pytest.raises(DriverError):
        driver._io(lambda c: c.call(unparsable))
    assert driver._link.client is None
    job_id = queue.push(Record(journal, "after"))
    assert job_id is not None
    assert queue.get(job_id).status is JobStatus.WAITING
    assert queue.info()[JobStatus.WAITING] == 2
    queue.run()
    assert read_lines(journal) == ["before", "after"]


def test_the_payload_limit_comes_from_the_server(settings: dict[str, Any]) -> None:
    queue = create_queue(settings)
    limit = queue.driver.payload_limit()
    assert limit is not None and 1048576 - 100 < limit < 1048576  # the test server's -z


@pytest.mark.parametrize("lost_at", ["put", "bury"])
def test_a_worker_lost_while_failing_a_job_leaves_it_listed_or_back(
        settings: dict[str, Any], journal: str, lost_at: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The failed listing finds buried jobs through their reasons: a worker lost between
    writing the reason and burying the job must never leave a buried job without one."""
    queue = create_queue(settings)
    job_id = queue.push(Fail(journal, "f"))
    consumer = queue.driver.open_consumer()
    [message] = consumer.fetch(1, 0)
    assert message.id == job_id
    real = connection.Connection.call

    def lost(self: Any, command: Any) -> Any:
        if command.name != lost_at or (lost_at == "put" and b"\r\n{" not in command.data):
            return real(self, command)
        raise ConnectionError("the worker died here")
    monkeypatch.setattr(connection.Connection, "call", lost)
    from queue_core import DriverError, ErrorInfo
    with pytest.raises(DriverError):
        consumer.fail(message, error=ErrorInfo("RuntimeError", "boom"))
    monkeypatch.undo()
    consumer.close()
    observer = create_queue(settings)
    deadline = time.monotonic() + 5
    while observer.status(job_id) is JobStatus.RESERVED and time.monotonic() < deadline:
        time.sleep(0.05)
    buried = observer.info()[JobStatus.FAILED]
    assert len(observer.failed()) == buried
    assert observer.status(job_id) is JobStatus.WAITING  # back, to run again


def test_each_consumer_holds_its_reservations_on_a_connection_of_its_own(
        settings: dict[str, Any], journal: str) -> None:
    """beanstalkd gives a worker's jobs back as soon as its connection closes: closing one
    worker's consumer gives back its job and no other's."""
    queue = create_queue(settings)
    pushed = {queue.push(Record(journal, "a")), queue.push(Record(journal, "b"))}
    one, two = queue.driver.open_consumer(), queue.driver.open_consumer()
    try:
        [first] = one.fetch(1, 0)
        [second] = two.fetch(1, 0)
        assert {first.id, second.id} == pushed
        one.close()
        wait_for(lambda: queue.status(first.id) is JobStatus.WAITING, 5, "the job back")
        assert queue.status(second.id) is JobStatus.RESERVED
    finally:
        one.close()
        two.close()


def test_the_store_serves_several_threads_at_once(settings: dict[str, Any]) -> None:
    queue = create_queue(settings)
    driver = queue.driver
    ids: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                job_id = driver.push(b"{}", ttr=60)
                assert driver.status(job_id) is JobStatus.WAITING
                ids.append(job_id)
        except BaseException as exc:
            errors.append(exc)
    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(set(ids)) == 400
    assert queue.info()[JobStatus.WAITING] == 400
