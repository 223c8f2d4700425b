"""The beanstalkd protocol as the driver speaks it, against scripted replies: no server.

A socketpair stands in for beanstalkd: the test writes the server's bytes and reads what
the client sent. Every command's happy path, every error reply, replies cut anywhere or
arriving a byte at a time, pipelined replies, and garbage."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from queue_core.drivers import beanstalk_wire as wire

from tests.support.local import written


class Fake:
    """The server end of a socketpair, with the client's Connection on the other end."""

    def __init__(self, **options: Any) -> None:
        self.client_sock, self.server = socket.socketpair()
        self.conn = wire.Connection(self.client_sock, **options)
        self.threads: list[threading.Thread] = []

    def reply(self, data: bytes) -> None:
        self.server.sendall(data)

    def trickle(self, data: bytes, size: int = 1) -> None:
        """``data`` in writes of ``size`` bytes, from a thread, so the client reads it in
        pieces."""
        def run() -> None:
            for index in range(0, len(data), size):
                self.server.sendall(data[index:index + size])
                time.sleep(0.0005)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def hang_up(self) -> None:
        self.server.shutdown(socket.SHUT_WR)

    def sent(self) -> bytes:
        """Everything the client has written so far."""
        return written(self.server)

    def close(self) -> None:
        for thread in self.threads:
            thread.join(5)
        self.conn.close()
        self.server.close()


@pytest.fixture
def fake() -> Iterator[Fake]:
    made = Fake()
    yield made
    made.close()


def assert_usable(fake: Fake) -> None:
    """The stream is still in step: the next command gets its own reply."""
    fake.sent()
    fake.reply(b"TOUCHED\r\n")
    assert fake.conn.call(wire.touch(9)) is None
    assert fake.sent() == b"touch 9\r\n"
    assert not fake.conn.closed and fake.conn.pending == 0


def assert_dropped(fake: Fake) -> None:
    """After an error that may leave the stream out of step, nothing more is sent."""
    assert fake.conn.closed
    fake.sent()
    with pytest.raises(wire.ConnectionLost, match="connection unusable"):
        fake.conn.call(wire.touch(9))


STATS_JOB = (b"---\nid: 7\ntube: mail\nstate: ready\npri: 1024\nage: 3\ndelay: 0\nttr: 60\n"
             b"time-left: 0\nfile: 0\nreserves: 0\ntimeouts: 0\nreleases: 0\nburies: 0\n"
             b"kicks: 0\n")


def ok(document: bytes) -> bytes:
    return b"OK %d\r\n%b\r\n" % (len(document), document)


HAPPY: list[tuple[str, Callable[[], wire.Command[object]], bytes, bytes, object]] = [
    ("put", lambda: wire.put(b"he\r\nllo", 5, 2, 60), b"put 5 2 60 7\r\nhe\r\nllo\r\n",
     b"INSERTED 42\r\n", 42),
    ("put-empty", lambda: wire.put(b"", 0, 0, 1), b"put 0 0 1 0\r\n\r\n", b"INSERTED 1\r\n", 1),
    ("put-max", lambda: wire.put(b"x", wire.UINT32, wire.UINT32, wire.UINT32),
     b"put 4294967295 4294967295 4294967295 1\r\nx\r\n", b"INSERTED 3\r\n", 3),
    ("use", lambda: wire.use("mail.failed"), b"use mail.failed\r\n", b"USING mail.failed\r\n",
     "mail.failed"),
    ("watch", lambda: wire.watch("mail"), b"watch mail\r\n", b"WATCHING 2\r\n", 2),
    ("ignore", lambda: wire.ignore("default"), b"ignore default\r\n", b"WATCHING 1\r\n", 1),
    ("reserve", wire.reserve, b"reserve\r\n", b"RESERVED 7 3\r\nabc\r\n", wire.Job(7, b"abc")),
    ("reserve-with-timeout", lambda: wire.reserve_with_timeout(5),
     b"reserve-with-timeout 5\r\n", b"RESERVED 7 0\r\n\r\n", wire.Job(7, b"")),
    ("reserve-job", lambda: wire.reserve_job(7), b"reserve-job 7\r\n",
     b"RESERVED 7 2\r\n\r\n\r\n", wire.Job(7, b"\r\n")),
    ("delete", lambda: wire.delete(7), b"delete 7\r\n", b"DELETED\r\n", None),
    ("release", lambda: wire.release(7, 10, 3), b"release 7 10 3\r\n", b"RELEASED\r\n", None),
    ("bury", lambda: wire.bury(7, 10), b"bury 7 10\r\n", b"BURIED\r\n", None),
    ("touch", lambda: wire.touch(7), b"touch 7\r\n", b"TOUCHED\r\n", None),
    ("kick", lambda: wire.kick(100), b"kick 100\r\n", b"KICKED 4\r\n", 4),
    ("kick-job", lambda: wire.kick_job(7), b"kick-job 7\r\n", b"KICKED\r\n", None),
    ("peek", lambda: wire.peek(7), b"peek 7\r\n", b"FOUND 7 1\r\nz\r\n", wire.Job(7, b"z")),
    ("peek-ready", wire.peek_ready, b"peek-ready\r\n", b"FOUND 8 1\r\nr\r\n", wire.Job(8, b"r")),
    ("peek-delayed", wire.peek_delayed, b"peek-delayed\r\n", b"FOUND 9 1\r\nd\r\n",
     wire.Job(9, b"d")),
    ("peek-buried", wire.peek_buried, b"peek-buried\r\n", b"FOUND 10 1\r\nb\r\n",
     wire.Job(10, b"b")),
    ("stats-job", lambda: wire.stats_job(7), b"stats-job 7\r\n", ok(STATS_JOB), STATS_JOB),
    ("stats-tube", lambda: wire.stats_tube("mail"), b"stats-tube mail\r\n",
     ok(b"---\nname: mail\n"), b"---\nname: mail\n"),
    ("stats", wire.stats, b"stats\r\n", ok(b"---\nmax-job-size: 65535\n"),
     b"---\nmax-job-size: 65535\n"),
    ("list-tubes", wire.list_tubes, b"list-tubes\r\n", ok(b"---\n- default\n- mail\n"),
     b"---\n- default\n- mail\n"),
    ("list-tubes-watched", wire.list_tubes_watched, b"list-tubes-watched\r\n",
     ok(b"---\n- mail\n"), b"---\n- mail\n"),
    ("list-tube-used", wire.list_tube_used, b"list-tube-used\r\n", b"USING mail\r\n", "mail"),
    ("pause-tube", lambda: wire.pause_tube("mail", 30), b"pause-tube mail 30\r\n",
     b"PAUSED\r\n", None),
]


@pytest.mark.parametrize("make, sent, reply, expected", [case[1:] for case in HAPPY],
                         ids=[case[0] for case in HAPPY])
def test_each_command_sends_its_line_and_reads_its_reply(
        fake: Fake, make: Callable[[], wire.Command[object]], sent: bytes, reply: bytes,
        expected: object) -> None:
    fake.reply(reply)
    assert fake.conn.call(make()) == expected
    assert fake.sent() == sent
    assert_usable(fake)


ANSWERS: list[tuple[Callable[[], wire.Command[object]], bytes, type[wire.ReplyError]]] = [
    (lambda: wire.delete(7), b"NOT_FOUND", wire.NotFound),
    (lambda: wire.release(7, 1, 0), b"NOT_FOUND", wire.NotFound),
    (lambda: wire.bury(7, 1), b"NOT_FOUND", wire.NotFound),
    (lambda: wire.touch(7), b"NOT_FOUND", wire.NotFound),
    (lambda: wire.kick_job(7), b"NOT_FOUND", wire.NotFound),
    (lambda: wire.peek(7), b"NOT_FOUND", wire.NotFound),
    (wire.peek_ready, b"NOT_FOUND", wire.NotFound),
    (wire.peek_delayed, b"NOT_FOUND", wire.NotFound),
    (wire.peek_buried, b"NOT_FOUND", wire.NotFound),
    (lambda: wire.stats_job(7), b"NOT_FOUND", wire.NotFound),
    (lambda: wire.stats_tube("mail"), b"NOT_FOUND", wire.NotFound),
    (lambda: wire.reserve_job(7), b"NOT_FOUND", wire.NotFound),
    (lambda: wire.pause_tube("mail", 1), b"NOT_FOUND", wire.NotFound),
    (lambda: wire.reserve_with_timeout(0), b"TIMED_OUT", wire.TimedOut),
    (lambda: wire.reserve_with_timeout(0), b"DEADLINE_SOON", wire.DeadlineSoon),
    (wire.reserve, b"DEADLINE_SOON", wire.DeadlineSoon),
    (lambda: wire.ignore("mail"), b"NOT_IGNORED", wire.NotIgnored),
]


@pytest.mark.parametrize("make, word, error", ANSWERS,
                         ids=[f"{case[0]().name}-{case[1].decode()}" for case in ANSWERS])
def test_ordinary_answers_raise_their_own_error_and_keep_the_connection(
        fake: Fake, make: Callable[[], wire.Command[object]], word: bytes,
        error: type[wire.ReplyError]) -> None:
    fake.reply(word + b"\r\n")
    with pytest.raises(error) as raised:
        fake.conn.call(make())
    assert raised.value.reply == word
    assert type(raised.value) is error
    assert_usable(fake)


def test_a_put_answered_buried_says_which_job(fake: Fake) -> None:
    fake.reply(b"BURIED 17\r\n")
    with pytest.raises(wire.Buried, match="buried new job 17") as raised:
        fake.conn.call(wire.put(b"x", 1, 0, 1))
    assert raised.value.job_id == 17
    assert_usable(fake)


def test_a_release_answered_buried_says_which_job(fake: Fake) -> None:
    fake.reply(b"BURIED\r\n")
    with pytest.raises(wire.Buried, match="job 7 instead of releasing") as raised:
        fake.conn.call(wire.release(7, 1, 0))
    assert raised.value.job_id == 7
    assert_usable(fake)


SERVER_ERRORS = [(b"OUT_OF_MEMORY", wire.OutOfMemory), (b"INTERNAL_ERROR", wire.InternalError),
                 (b"BAD_FORMAT", wire.BadFormat), (b"UNKNOWN_COMMAND", wire.UnknownCommand),
                 (b"EXPECTED_CRLF", wire.ExpectedCrlf), (b"JOB_TOO_BIG", wire.JobTooBig),
                 (b"DRAINING", wire.Draining)]


@pytest.mark.parametrize("word, error", SERVER_ERRORS, ids=[w.decode() for w, _ in SERVER_ERRORS])
@pytest.mark.parametrize("make", [lambda: wire.put(b"x", 1, 0, 1), wire.reserve, wire.stats,
                                  lambda: wire.delete(3)],
                         ids=["put", "reserve", "stats", "delete"])
def test_server_errors_raise_their_own_error_and_drop_the_connection(
        fake: Fake, make: Callable[[], wire.Command[object]], word: bytes,
        error: type[wire.ServerError]) -> None:
    fake.reply(word + b"\r\n")
    command = make()
    with pytest.raises(error, match=f"answered {word.decode()} to {command.name}") as raised:
        fake.conn.call(command)
    assert type(raised.value) is error and isinstance(raised.value, wire.ServerError)
    assert_dropped(fake)


GARBLED: list[tuple[str, Callable[[], wire.Command[object]], bytes, type[Exception], str]] = [
    ("unknown word", lambda: wire.delete(7), b"WHAT\r\n", wire.UnexpectedReply,
     "unexpected reply b'WHAT' to delete .expected DELETED or NOT_FOUND"),
    ("answer of another command", lambda: wire.delete(7), b"TIMED_OUT\r\n",
     wire.UnexpectedReply, "unexpected reply b'TIMED_OUT' to delete"),
    ("success of another command", lambda: wire.delete(7), b"INSERTED 5\r\n",
     wire.UnexpectedReply, "to delete"),
    ("success word with extras", lambda: wire.delete(7), b"DELETED 7\r\n", wire.UnexpectedReply,
     "DELETED 7"),
    ("answer with extras", lambda: wire.delete(7), b"NOT_FOUND 7\r\n", wire.UnexpectedReply,
     "NOT_FOUND 7"),
    ("server error with extras", lambda: wire.delete(7), b"BAD_FORMAT now\r\n",
     wire.UnexpectedReply, "BAD_FORMAT now"),
    ("bare buried to put", lambda: wire.put(b"x", 1, 0, 1), b"BURIED\r\n", wire.UnexpectedReply,
     "to put"),
    ("buried with an id to release", lambda: wire.release(7, 1, 0), b"BURIED 7\r\n",
     wire.UnexpectedReply, "to release"),
    ("id not a number", lambda: wire.put(b"x", 1, 0, 1), b"INSERTED x1\r\n",
     wire.ProtocolError, "the number in reply b'INSERTED x1' to put is not a number"),
    ("negative id", wire.reserve, b"RESERVED -1 1\r\nx\r\n", wire.ProtocolError,
     "the job id .* is not a number"),
    ("signed size", wire.reserve, b"RESERVED 1 +1\r\nx\r\n", wire.ProtocolError,
     "the body size .* is not a number"),
    ("huge number", lambda: wire.put(b"x", 1, 0, 1), b"INSERTED " + b"9" * 21 + b"\r\n",
     wire.ProtocolError, "is not a number"),
    ("missing size", wire.reserve, b"RESERVED 1\r\n", wire.UnexpectedReply, "to reserve"),
    ("extra field", wire.reserve, b"RESERVED 1 1 1\r\nx\r\n", wire.UnexpectedReply,
     "to reserve"),
    ("double space", lambda: wire.watch("a"), b"WATCHING  1\r\n", wire.ProtocolError,
     "not a number"),
    ("no number", lambda: wire.watch("a"), b"WATCHING\r\n", wire.UnexpectedReply, "to watch"),
    ("binary", lambda: wire.delete(7), b"\x00\xff\xfe\r\n", wire.UnexpectedReply,
     r"unexpected reply b'\\x00\\xff\\xfe' to delete"),
    ("bare LF", lambda: wire.delete(7), b"DELETED\n", wire.ProtocolError, "bare LF"),
    ("line too long", lambda: wire.delete(7), b"A" * 300 + b"\r\n", wire.ProtocolError,
     "longer than 256 bytes"),
    ("endless line", lambda: wire.delete(7), b"B" * 5000, wire.ProtocolError,
     "longer than 256 bytes"),
    ("body longer than announced", wire.reserve, b"RESERVED 1 3\r\nabcdef\r\n",
     wire.ProtocolError, "3-byte body of reply b'RESERVED 1 3' to reserve is not followed by "
     "CRLF"),
    ("body shorter than announced", wire.peek_ready, b"FOUND 1 9\r\nabc\r\nDELETED\r\n",
     wire.ProtocolError, "9-byte body .* not followed by CRLF"),
    ("body over the limit", wire.reserve, b"RESERVED 1 %d\r\n" % (wire.MAX_BODY + 1),
     wire.ProtocolError, "announces 1073741827 bytes, more than the 1073741826 allowed"),
    ("stats without OK", wire.stats, b"FOUND 1 1\r\nx\r\n", wire.UnexpectedReply, "to stats"),
    ("use answered with another tube", lambda: wire.use("mail"), b"USING other\r\n",
     wire.UnexpectedReply, "names another tube than b'mail'"),
]


@pytest.mark.parametrize("make, reply, error, message", [case[1:] for case in GARBLED],
                         ids=[case[0] for case in GARBLED])
def test_garbled_replies_are_protocol_errors_naming_the_problem(
        fake: Fake, make: Callable[[], wire.Command[object]], reply: bytes,
        error: type[Exception], message: str) -> None:
    fake.reply(reply)
    with pytest.raises(error, match=message) as raised:
        fake.conn.call(make())
    assert isinstance(raised.value, wire.ProtocolError)
    assert_dropped(fake)


CUT = [
    ("before the reply", wire.reserve, b"", "closed the connection before replying to reserve"),
    ("mid line", wire.reserve, b"RESERV", "in the middle of the reply line to reserve: "
     "b'RESERV'"),
    ("mid line before LF", lambda: wire.delete(1), b"DELETED\r", "in the middle of the reply"),
    ("mid body", wire.reserve, b"RESERVED 4 10\r\nabc",
     "in the middle of the 10-byte body of reply b'RESERVED 4 10' to reserve .only 3 bytes"),
    ("before the body's CRLF", wire.stats, b"OK 3\r\nabc",
     "before the CRLF that ends the 3-byte body of reply b'OK 3' to stats"),
    ("inside the body's CRLF", lambda: wire.peek(4), b"FOUND 4 3\r\nabc\r",
     "before the CRLF that ends the 3-byte body"),
]


@pytest.mark.parametrize("make, reply, message", [case[1:] for case in CUT],
                         ids=[case[0] for case in CUT])
def test_a_connection_closed_mid_reply_says_where(fake: Fake,
                                                  make: Callable[[], wire.Command[object]],
                                                  reply: bytes, message: str) -> None:
    fake.reply(reply)
    fake.hang_up()
    with pytest.raises(wire.ConnectionLost, match=message):
        fake.conn.call(make())
    assert_dropped(fake)


PIPELINE_REPLIES = (b"DELETED\r\nRESERVED 8 5\r\nhello\r\n" + ok(STATS_JOB)
                    + b"FOUND 9 2\r\nhi\r\n")


def _pipeline(conn: wire.Connection) -> list[object]:
    commands: list[wire.Command[object]] = [wire.delete(7), wire.reserve_with_timeout(0),
                                            wire.stats_job(8), wire.peek_ready()]
    conn.send(*commands)
    assert conn.pending == 4
    return [command.read(conn) for command in commands]


def test_pipelined_commands_go_out_in_one_write_and_replies_are_read_in_order(
        fake: Fake) -> None:
    fake.reply(PIPELINE_REPLIES)
    assert _pipeline(fake.conn) == [None, wire.Job(8, b"hello"), STATS_JOB, wire.Job(9, b"hi")]
    assert fake.sent() == (b"delete 7\r\nreserve-with-timeout 0\r\nstats-job 8\r\n"
                           b"peek-ready\r\n")
    assert fake.conn.pending == 0
    assert_usable(fake)


def test_replies_arriving_a_byte_at_a_time_read_the_same(fake: Fake) -> None:
    fake.trickle(PIPELINE_REPLIES)
    assert _pipeline(fake.conn) == [None, wire.Job(8, b"hello"), STATS_JOB, wire.Job(9, b"hi")]
    assert_usable(fake)


def test_a_big_body_split_across_reads_reads_whole() -> None:
    fake = Fake(max_body=2_000_000)
    body = bytes(range(256)) * 4000
    try:
        fake.trickle(b"RESERVED 1 %d\r\n%b\r\n" % (len(body), body), size=7001)
        assert fake.conn.call(wire.reserve()) == wire.Job(1, body)
    finally:
        fake.close()


def test_ordinary_answers_inside_a_pipeline_leave_it_in_step(fake: Fake) -> None:
    fake.reply(b"NOT_FOUND\r\nTIMED_OUT\r\nNOT_FOUND\r\nNOT_FOUND\r\n")
    commands: list[wire.Command[object]] = [wire.delete(7), wire.reserve_with_timeout(0),
                                            wire.stats_job(8), wire.peek_ready()]
    fake.conn.send(*commands)
    for command, error in zip(commands, (wire.NotFound, wire.TimedOut, wire.NotFound,
                                         wire.NotFound), strict=True):
        with pytest.raises(error):
            command.read(fake.conn)
    assert_usable(fake)


def test_a_command_sent_while_replies_are_unread_is_refused(fake: Fake) -> None:
    fake.reply(b"DELETED\r\nDELETED\r\n")
    first, second = wire.delete(1), wire.delete(2)
    fake.conn.send(first, second)
    first.read(fake.conn)
    with pytest.raises(wire.ProtocolError, match="1 earlier replies are unread"):
        fake.conn.call(wire.delete(3))
    assert_dropped(fake)


def test_reading_a_reply_to_nothing_is_refused_instead_of_blocking(fake: Fake) -> None:
    with pytest.raises(wire.ProtocolError, match="reading the reply to delete, which was not "
                       "sent"):
        wire.delete(1).read(fake.conn)
    assert_dropped(fake)


@pytest.mark.parametrize("make, message", [
    (lambda: wire.put(b"x", 2**32, 0, 1), "priority must be a whole number from 0 to 4294967295"),
    (lambda: wire.put(b"x", 0, -1, 1), "delay must be"),
    (lambda: wire.put(b"x", 0, 0, 1.5), "ttr must be .* got 1.5"),
    (lambda: wire.put(b"x", True, 0, 1), "priority must be"),
    (lambda: wire.put("text", 0, 0, 1), "a job body must be bytes, got str"),
    (lambda: wire.release(7, 0, 2**40), "delay must be"),
    (lambda: wire.delete(0), "job id must be a whole number from 1"),
    (lambda: wire.delete(2**64), "job id must be"),
    (lambda: wire.stats_job(-3), "job id must be"),
    (lambda: wire.reserve_with_timeout(-1), "reserve timeout must be"),
    (lambda: wire.use("two words"), "tube name 'two words' is not valid"),
    (lambda: wire.watch("-dash"), "not starting with '-'"),
    (lambda: wire.use("a" * 201), "1 to 200"),
    (lambda: wire.use(""), "tube name '' is not valid"),
    (lambda: wire.use("caf\u00e9"), "is not valid"),
    (lambda: wire.use("a\r\nput"), "is not valid"),
    (lambda: wire.stats_tube(None), "tube name None"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_values_the_protocol_cannot_carry_are_refused_before_sending(
        fake: Fake, make: Callable[[], wire.Command[object]], message: str) -> None:
    with pytest.raises(wire.ArgumentError, match=message):
        fake.conn.call(make())
    assert fake.sent() == b""
    assert_usable(fake)


def test_tube_names_the_protocol_allows_are_taken() -> None:
    for name in ("a", "mail.failed", "A-b_c+d/e;f$g(h)", "9" * 200):
        assert wire.tube_name(name) == name.encode()


def test_stats_documents_parse_strictly() -> None:
    assert wire.parse_stats(STATS_JOB)["state"] == "ready"
    assert wire.parse_stats(b"---\nos: #1 SMP: x\nversion: \"1.12\"\n") == {
        "os": "#1 SMP: x", "version": '"1.12"'}
    assert wire.parse_stats(b"---\n") == {}
    assert wire.parse_list(b"---\n- default\n- mail\n") == ["default", "mail"]
    for bad, message in ((b"id: 7\n", "does not start with '---'"),
                         (b"---\nno separator\n", "is not 'key: value'"),
                         (b"---\nBad Key: 1\n", "is not 'key: value'")):
        with pytest.raises(wire.ProtocolError, match=message):
            wire.parse_stats(bad)
    with pytest.raises(wire.ProtocolError, match="is not '- item'"):
        wire.parse_list(b"---\ndefault\n")


def test_a_closed_connection_refuses_every_use(fake: Fake) -> None:
    fake.conn.close()
    with pytest.raises(wire.ConnectionLost, match="connection unusable"):
        fake.conn.send(wire.stats())
    with pytest.raises(wire.ConnectionLost, match="connection unusable"):
        fake.conn.call(wire.stats())


def test_a_send_to_a_dead_peer_is_a_lost_connection(fake: Fake) -> None:
    fake.server.close()
    with pytest.raises(wire.ConnectionLost):
        fake.conn.call(wire.put(b"x", 0, 0, 1))
    assert fake.conn.closed
