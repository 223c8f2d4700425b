"""The beanstalk driver's pipelining, with no server: a scripted peer on a socketpair that
answers a batch of commands only once the whole batch has arrived, and a socket that
records each write. So a client that waited for a reply before sending the next command
of a batch would time out, and one that wrote a batch in pieces would show it.

Covered: the tube setup (use, watch, ignore) in one write; the worker's cycle (the
deferred delete of the job just finished, the reserve, the stats of the expected next job)
in one write with the replies taken in order; a wrong guess costing exactly one more
pipelined round trip; a delete the server no longer knows (lease over) not disturbing the
reserve after it; a deferred delete surviving a dropped connection to go out again,
folded into the next reserve on the new one; and the outcomes still owed when a worker
stops going out together in one write.

The worker side is a consumer (``open_consumer``) driven as a worker drives it, through the
core's Consumption, which keeps each outcome back for the driver to fold into its next
fetch."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from queue_core.drivers.beanstalk import BeanstalkDriver, _Handle, connection

from queue_core import DriverError, ErrorInfo, Message
from queue_core.consumer import Consumer, Settlement, Verdict
from queue_core.consuming import Consumption


def stats_job(job_id: int, pri: int = 1024, reserves: int = 1) -> bytes:
    document = (b"---\nid: %d\ntube: mail\nstate: reserved\npri: %d\nage: 3\ndelay: 0\n"
                b"ttr: 60\ntime-left: 59\nfile: 0\nreserves: %d\ntimeouts: 0\nreleases: 0\n"
                b"buries: 0\nkicks: 0\n" % (job_id, pri, reserves))
    return b"OK %d\r\n%b\r\n" % (len(document), document)


def reserved(job_id: int, body: bytes) -> bytes:
    return b"RESERVED %d %d\r\n%b\r\n" % (job_id, len(body), body)


SETUP = (3, b"USING mail\r\nWATCHING 2\r\nWATCHING 1\r\n")
"""use mail, watch mail, ignore default: sent together at connect."""


class Recording:
    """A socket that records every write (and delegates the rest)."""

    def __init__(self, sock: socket.socket, writes: list[bytes]) -> None:
        self._sock = sock
        self._writes = writes

    def sendall(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class Peer:
    """Scripted beanstalkd: for each connection, a list of (command count, reply). The
    reply goes out only after that many command lines have all arrived."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.scripts: list[list[tuple[int, bytes]]] = []
        self.writes: list[list[bytes]] = []  # per connection, as the client wrote them
        self.batches: list[list[list[bytes]]] = []  # per connection, lines per batch
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        self.sockets: list[socket.socket] = []
        monkeypatch.setattr(connection.Connection, "connect", self._connect)

    def expect(self, *batches: tuple[int, bytes]) -> None:
        """The script of the next connection."""
        self.scripts.append(list(batches))

    def _connect(self, address: tuple[str, int], timeout: float | None = None
                 ) -> connection.Connection:
        index = len(self.writes)
        if index >= len(self.scripts):
            raise ConnectionRefusedError("no connection expected")
        client, server = socket.socketpair()
        client.settimeout(2)  # a client waiting for a reply the peer holds back fails
        self.sockets += [client, server]
        self.writes.append([])
        self.batches.append([])
        thread = threading.Thread(target=self._serve, args=(server, index), daemon=True)
        thread.start()
        self.threads.append(thread)
        return connection.Connection(Recording(client, self.writes[index]))  # type: ignore[arg-type]

    def _serve(self, server: socket.socket, index: int) -> None:
        reader = server.makefile("rb")
        try:
            for count, reply in self.scripts[index]:
                lines = []
                for _ in range(count):
                    line = reader.readline()
                    if not line:
                        return
                    lines.append(line.rstrip(b"\r\n"))
                self.batches[index].append(lines)
                server.sendall(reply)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            reader.close()

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def peer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Peer]:
    made = Peer(monkeypatch)
    yield made
    made.close()
    assert made.errors == []


@pytest.fixture
def driver() -> Iterator[BeanstalkDriver]:
    made = BeanstalkDriver("127.0.0.1", 1, channel="mail", connect_timeout=1)
    yield made
    made.close()


@pytest.fixture
def consumer(driver: BeanstalkDriver) -> Iterator[Any]:
    made = driver.open_consumer()
    yield made
    made.close()


@pytest.fixture
def worker(driver: BeanstalkDriver, consumer: Consumer) -> Consumption:
    return Consumption(driver, consumer)


def owed(job_id: int) -> Message:
    """A reservation of job ``job_id`` whose outcome is still to be sent."""
    return Message(str(job_id), b"", 1, 60.0, handle=_Handle(job_id, 1024, 0))


def test_the_tube_setup_goes_out_in_one_write(peer: Peer, consumer: Any) -> None:
    peer.expect(SETUP, (1, b"TIMED_OUT\r\n"))
    assert consumer.fetch(1, 0) == []
    assert peer.writes[0] == [b"use mail\r\nwatch mail\r\nignore default\r\n",
                              b"reserve-with-timeout 0\r\n"]
    assert peer.batches[0] == [[b"use mail", b"watch mail", b"ignore default"],
                               [b"reserve-with-timeout 0"]]


def test_the_deferred_delete_and_the_next_reserve_share_one_write_and_one_round_trip(
        peer: Peer, worker: Consumption) -> None:
    peer.expect(
        SETUP,
        (1, reserved(7, b"first")),
        # No hint yet: the counts of job 7 and the next hint, together.
        (2, stats_job(7) + b"NOT_FOUND\r\n"),
        # The finished job's delete, the reserve, the stats of the guessed next job.
        (3, b"DELETED\r\n" + reserved(8, b"second") + stats_job(8, reserves=2)),
        # The guess for after 8 is 9; nothing is ready, and 9's stats are not found.
        (3, b"DELETED\r\n" + b"TIMED_OUT\r\n" + b"NOT_FOUND\r\n"),
    )
    first = worker.next(0)
    assert first is not None and (first.id, first.payload, first.attempt) == ("7", b"first", 1)
    worker.ack(first)
    assert len(peer.writes[0]) == 3  # the ack itself wrote nothing
    second = worker.next(0)
    assert second is not None and (second.id, second.payload, second.attempt) == (
        "8", b"second", 2)
    worker.ack(second)
    assert worker.next(0) is None
    assert peer.writes[0][1:] == [
        b"reserve-with-timeout 0\r\n",
        b"stats-job 7\r\npeek-ready\r\n",
        b"delete 7\r\nreserve-with-timeout 0\r\nstats-job 8\r\n",
        b"delete 8\r\nreserve-with-timeout 0\r\nstats-job 9\r\n",
    ]
    assert [len(batch) for batch in peer.batches[0]] == [3, 1, 2, 3, 3]


def test_a_wrong_guess_costs_one_pipelined_round_trip_and_its_stats_are_not_used(
        peer: Peer, worker: Consumption) -> None:
    peer.expect(
        SETUP,
        (1, reserved(7, b"a")),
        (2, stats_job(7) + b"NOT_FOUND\r\n"),
        # The guess was 8; 12 came (out of order): 8's stats must not be taken for 12's.
        (3, b"DELETED\r\n" + reserved(12, b"b") + stats_job(8, pri=5 << 8, reserves=9)),
        (2, stats_job(12, pri=3 << 8) + b"FOUND 15 1\r\nc\r\n"),
        # Now it peeks: delete, reserve, stats of the peeked hint, and the next peek.
        (4, b"DELETED\r\n" + reserved(15, b"c") + stats_job(15) + b"NOT_FOUND\r\n"),
    )
    first = worker.next(0)
    assert first is not None
    worker.ack(first)
    second = worker.next(0)
    assert second is not None and (second.id, second.priority, second.attempt) == ("12", 3, 1)
    worker.ack(second)
    third = worker.next(0)
    assert third is not None and third.id == "15"
    assert peer.writes[0][3:] == [
        b"delete 7\r\nreserve-with-timeout 0\r\nstats-job 8\r\n",
        b"stats-job 12\r\npeek-ready\r\n",
        b"delete 12\r\nreserve-with-timeout 0\r\nstats-job 15\r\npeek-ready\r\n",
    ]


def test_a_delete_whose_lease_ran_out_leaves_the_reserve_after_it_in_step(
        peer: Peer, consumer: Any) -> None:
    peer.expect(SETUP, (3, b"NOT_FOUND\r\n" + reserved(6, b"x") + stats_job(6)))
    consumer._hint = 6
    got = consumer.fetch(1, 0, [Settlement(Verdict.ACK, owed(5))])
    assert [(message.id, message.payload) for message in got] == [("6", b"x")]
    assert peer.writes[0][1] == b"delete 5\r\nreserve-with-timeout 0\r\nstats-job 6\r\n"
    assert consumer._link.client is not None and consumer._link.client.conn.pending == 0


def test_a_deferred_delete_goes_out_again_with_the_reserve_on_the_next_connection(
        peer: Peer, consumer: Any, worker: Consumption) -> None:
    peer.expect(SETUP, (2, b"DELETED\r\n" + b"RESERVED 9\r\n"))  # a broken reserve reply
    peer.expect(SETUP, (2, b"DELETED\r\n" + b"TIMED_OUT\r\n"))
    worker.ack(owed(5))
    with pytest.raises(DriverError, match="unexpected reply b'RESERVED 9'"):
        worker.next(0)
    assert consumer._link.client is None
    assert [kept.message.id for kept in worker._kept] == ["5"]
    assert worker.next(0) is None
    assert peer.writes[1] == [b"use mail\r\nwatch mail\r\nignore default\r\n",
                              b"delete 5\r\nreserve-with-timeout 0\r\n"]
    assert worker._kept == []


def test_the_deletes_still_owed_at_a_stop_go_out_together_on_their_own(
        peer: Peer, worker: Consumption) -> None:
    peer.expect(SETUP, (1, reserved(1, b"a")), (2, stats_job(1) + b"FOUND 2 1\r\nb\r\n"),
                (2, b"DELETED\r\n" + b"NOT_FOUND\r\n"))
    message = worker.next(0)
    assert message is not None
    worker.ack(message)
    worker.ack(owed(2))  # a second outcome before a reserve: both wait
    assert len(peer.writes[0]) == 3
    worker.close()  # a worker stopping: NOT_FOUND (lease over) is not an error
    assert peer.writes[0][-1] == b"delete 1\r\ndelete 2\r\n" and len(peer.writes[0]) == 4
    assert worker._kept == []


def test_a_release_rides_with_the_next_reserve_and_a_bury_goes_ahead_in_order(
        peer: Peer, worker: Consumption) -> None:
    peer.expect(
        SETUP,
        (1, reserved(7, b"a")),
        (2, stats_job(7) + b"NOT_FOUND\r\n"),
        # The release kept back, the reserve and the guessed stats: one write.
        (3, b"RELEASED\r\n" + reserved(8, b"b") + stats_job(8)),
        # A bury is its reason first (use, put with its body line, use back), then the bury
        # itself, each answered before the next; the reserve follows.
        (1, b"USING mail.failed\r\n"), (2, b"INSERTED 99\r\n"), (1, b"USING mail\r\n"),
        (1, b"BURIED\r\n"),
        (2, b"TIMED_OUT\r\n" + b"NOT_FOUND\r\n"),
    )
    first = worker.next(0)
    assert first is not None
    worker.release(first, delay=1.5, error=None)
    assert len(peer.writes[0]) == 3  # kept back
    second = worker.next(0)
    assert second is not None and second.id == "8"
    # Priority 1024 (4 once shifted) with no lost runs; the delay rounded up.
    assert peer.writes[0][3] == b"release 7 1024 2\r\nreserve-with-timeout 0\r\nstats-job 8\r\n"
    worker.fail(second, error=ErrorInfo("RuntimeError", "boom"))
    assert worker.next(0) is None
    writes = peer.writes[0][4:]
    assert writes[0] == b"use mail.failed\r\n" and writes[1].startswith(b"put 4294967295 0 ")
    assert b'"id": 8' in writes[1] and b'"boom"' in writes[1]
    assert writes[2:] == [b"use mail\r\n", b"bury 8 1024\r\n",
                          b"reserve-with-timeout 0\r\nstats-job 9\r\n"]


def test_jobs_given_back_are_released_at_once_in_one_write(peer: Peer, consumer: Any) -> None:
    # beanstalkd cannot take back the reserve it counted; a release at least ends the run
    # as a normal one, where closing the connection would count it as a lost run.
    peer.expect(SETUP, (2, b"RELEASED\r\n" + b"NOT_FOUND\r\n"))
    consumer.give_back([owed(5), owed(6)])
    # Priority 1024, shifted past the 8 bits of lost runs (none): 262144.
    assert peer.writes[0][1:] == [b"release 5 262144 0\r\nrelease 6 262144 0\r\n"]
