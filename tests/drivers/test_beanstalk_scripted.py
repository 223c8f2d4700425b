"""The beanstalk driver over a scripted beanstalkd on a loopback port: what it does with
each kind of reply, with no real server. Ordinary answers keep the connection; anything
else drops it, becomes DriverError naming the problem, and the next call reconnects."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from queue_core.drivers.beanstalk import BeanstalkDriver, _Handle

from queue_core import DriverError, InvalidArgumentError, Message
from queue_core.consumer import Settlement, Verdict
from queue_core.consuming import Consumption

Handler = Callable[[bytes], bytes]


class Scripted:
    """Answers each command line with ``answer(line)``; tube commands answer themselves."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.commands: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(sock,), daemon=True).start()

    def _talk(self, sock: socket.socket) -> None:
        reader = sock.makefile("rb")
        with sock, reader:
            while True:
                line = reader.readline()
                if not line:
                    return
                line = line.rstrip(b"\r\n")
                if line.startswith(b"put "):
                    reader.read(int(line.split()[-1]) + 2)
                self.commands.append(line)
                word, _, rest = line.partition(b" ")
                if word == b"use":
                    reply = b"USING " + rest + b"\r\n"
                elif word in (b"watch", b"ignore"):
                    reply = b"WATCHING 1\r\n"
                else:
                    reply = self.answer(line)
                try:
                    sock.sendall(reply)
                except OSError:
                    return
                if not reply.endswith(b"\r\n"):  # a cut reply: hang up after it
                    return

    def close(self) -> None:
        self.listener.close()


Serve = Callable[[Handler], tuple[Scripted, BeanstalkDriver]]


@pytest.fixture
def serve() -> Iterator[Serve]:
    made: list[tuple[Scripted, BeanstalkDriver]] = []

    def start(answer: Handler) -> tuple[Scripted, BeanstalkDriver]:
        server = Scripted(answer)
        driver = BeanstalkDriver("127.0.0.1", server.port, channel="mail", connect_timeout=2)
        made.append((server, driver))
        return server, driver
    yield start
    for server, driver in made:
        driver.close()
        server.close()


def owed(job_id: int) -> Message:
    """A reservation of job ``job_id`` whose outcome is still to be sent."""
    return Message(str(job_id), b"", 1, 60.0, handle=_Handle(job_id, 1024, 0))


def test_ordinary_answers_keep_the_connection_and_garbage_drops_it(serve: Serve) -> None:
    puts = iter([b"JOB_TOO_BIG\r\n", b"INSERTED seven\r\n", b"INSERTED 8\r\n"])
    waits = iter([b"TIMED_OUT\r\n", b"DEADLINE_SOON\r\n"])

    def answer(line: bytes) -> bytes:
        if line.startswith(b"put"):
            return next(puts)
        if line.startswith(b"reserve-with-timeout"):
            return next(waits)
        return b"NOT_FOUND\r\n"  # delete, stats-job, peek-ready
    server, driver = serve(answer)
    consumer: Any = driver.open_consumer()
    consumer._hint = 6
    # A job acked after its lease ran out: NOT_FOUND to its delete. Delete, reserve
    # (TIMED_OUT), stats-job: one trip.
    assert consumer.fetch(1, 0, [Settlement(Verdict.ACK, owed(5))]) == []
    assert consumer.fetch(1, 0) == []  # DEADLINE_SOON
    assert consumer._link.client is not None and server.connections == 1
    assert server.commands[3:6] == [b"delete 5", b"reserve-with-timeout 0", b"stats-job 6"]
    with pytest.raises(InvalidArgumentError, match="max-job-size.*nothing was queued"):
        driver.push(b"{}", ttr=60)
    assert driver._link.client is None
    with pytest.raises(DriverError, match="beanstalk://127.0.0.1:.* the number in reply "
                       "b'INSERTED seven' to put is not a number"):
        driver.push(b"{}", ttr=60)
    assert driver._link.client is None
    assert driver.push(b"{}", ttr=60) == "8"
    # The consumer's connection, and the store's three: each drop made the next call
    # connect afresh, and the store's drops left the consumer's alone.
    assert server.connections == 4 and consumer._link.client is not None
    consumer.close()


@pytest.mark.parametrize("reply, message", [
    (b"DRAINING\r\n", "answered DRAINING to put"),
    (b"OUT_OF_MEMORY\r\n", "answered OUT_OF_MEMORY to put"),
    (b"BURIED 4\r\n", "buried new job 4"),
    (b"NOT_FOUND\r\n", "unexpected reply b'NOT_FOUND' to put"),
    (b"INSERTED 1", "in the middle of the reply line to put"),
])
def test_a_push_refused_by_the_server_is_a_driver_error(serve: Serve, reply: bytes,
                                                        message: str) -> None:
    server, driver = serve(lambda line: reply)
    with pytest.raises(DriverError, match=message):
        driver.push(b"{}", ttr=60)
    assert driver._link.client is None


@pytest.mark.parametrize("reply, message", [
    (b"RESERVED 9 10\r\nabc", "in the middle of the 10-byte body"),
    (b"RESERVED 9 3\r\nabcde\r\n", "not followed by CRLF"),
    (b"RESERVED 9\r\n", "unexpected reply b'RESERVED 9' to reserve-with-timeout"),
    (b"INTERNAL_ERROR\r\n", "answered INTERNAL_ERROR to delete"),
    (b"\x00" * 400, "longer than 256 bytes"),
])
def test_a_broken_reserve_reply_drops_the_connection_and_keeps_the_ack(
        serve: Serve, reply: bytes, message: str) -> None:
    def answer(line: bytes) -> bytes:
        if line.startswith(b"delete") and not reply.startswith(b"INTERNAL"):
            return b"DELETED\r\n"
        return reply
    server, driver = serve(answer)
    consumer: Any = driver.open_consumer()
    worker = Consumption(driver, consumer)
    worker.ack(owed(5))
    with pytest.raises(DriverError, match=message):
        worker.next(0)
    assert consumer._link.client is None
    # The delete goes out again with the next reserve.
    assert [kept.message.id for kept in worker._kept] == ["5"]
    consumer.close()
