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
from queue_core.drivers.beanstalk import connection, errors, protocol

from tests.support.local import written


class Fake:
    """The server end of a socketpair, with the client's Connection on the other end."""

    def __init__(self, **options: Any) -> None:
        self.client_sock, self.server = socket.socketpair()
        self.conn = connection.Connection(self.client_sock, **options)
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
    assert fake.conn.call(protocol.touch(9)) is None
    assert fake.sent() == b"touch 9\r\n"
    assert not fake.conn.closed and fake.conn.pending == 0


def assert_dropped(fake: Fake) -> None:
    """After an error that may leave the stream out of step, nothing more is sent."""
    assert fake.conn.closed
    fake.sent()
    with pytest.raises(errors.ConnectionLost, match="connection unusable"):
        fake.conn.call(protocol.touch(9))


STATS_JOB = (b"---\nid: 7\ntube: mail\nstate: ready\npri: 1024\nage: 3\ndelay: 0\nttr: 60\n"
             b"time-left: 0\nfile: 0\nreserves: 0\ntimeouts: 0\nreleases: 0\nburies: 0\n"
             b"kicks: 0\n")


def ok(document: bytes) -> bytes:
    return b"OK %d\r\n%b\r\n" % (len(document), document)


HAPPY: list[tuple[str, Callable[[], protocol.Command[object]], bytes, bytes, object]] = [
    ("put", lambda: protocol.put(b"he\r\nllo", 5, 2, 60), b"put 5 2 60 7\r\nhe\r\nllo\r\n",
     b"INSERTED 42\r\n", 42),
    ("put-empty", lambda: protocol.put(b"", 0, 0, 1), b"put 0 0 1 0\r\n\r\n", b"INSERTED 1\r\n", 1),
    ("put-max", lambda: protocol.put(b"x", protocol.UINT32, protocol.UINT32, protocol.UINT32),
     b"put 4294967295 4294967295 4294967295 1\r\nx\r\n", b"INSERTED 3\r\n", 3),
    ("use", lambda: protocol.use("mail.failed"), b"use mail.failed\r\n", b"USING mail.failed\r\n",
     "mail.failed"),
    ("watch", lambda: protocol.watch("mail"), b"watch mail\r\n", b"WATCHING 2\r\n", 2),
    ("ignore", lambda: protocol.ignore("default"), b"ignore default\r\n", b"WATCHING 1\r\n", 1),
    ("reserve", protocol.reserve, b"reserve\r\n", b"RESERVED 7 3\r\nabc\r\n",
     protocol.Job(7, b"abc")),
    ("reserve-with-timeout", lambda: protocol.reserve_with_timeout(5),
     b"reserve-with-timeout 5\r\n", b"RESERVED 7 0\r\n\r\n", protocol.Job(7, b"")),
    ("reserve-job", lambda: protocol.reserve_job(7), b"reserve-job 7\r\n",
     b"RESERVED 7 2\r\n\r\n\r\n", protocol.Job(7, b"\r\n")),
    ("delete", lambda: protocol.delete(7), b"delete 7\r\n", b"DELETED\r\n", None),
    ("release", lambda: protocol.release(7, 10, 3), b"release 7 10 3\r\n", b"RELEASED\r\n", None),
    ("bury", lambda: protocol.bury(7, 10), b"bury 7 10\r\n", b"BURIED\r\n", None),
    ("touch", lambda: protocol.touch(7), b"touch 7\r\n", b"TOUCHED\r\n", None),
    ("kick", lambda: protocol.kick(100), b"kick 100\r\n", b"KICKED 4\r\n", 4),
    ("kick-job", lambda: protocol.kick_job(7), b"kick-job 7\r\n", b"KICKED\r\n", None),
    ("peek", lambda: protocol.peek(7), b"peek 7\r\n", b"FOUND 7 1\r\nz\r\n", protocol.Job(7, b"z")),
    ("peek-ready", protocol.peek_ready, b"peek-ready\r\n", b"FOUND 8 1\r\nr\r\n",
     protocol.Job(8, b"r")),
    ("peek-delayed", protocol.peek_delayed, b"peek-delayed\r\n", b"FOUND 9 1\r\nd\r\n",
     protocol.Job(9, b"d")),
    ("peek-buried", protocol.peek_buried, b"peek-buried\r\n", b"FOUND 10 1\r\nb\r\n",
     protocol.Job(10, b"b")),
    ("stats-job", lambda: protocol.stats_job(7), b"stats-job 7\r\n", ok(STATS_JOB), STATS_JOB),
    ("stats-tube", lambda: protocol.stats_tube("mail"), b"stats-tube mail\r\n",
     ok(b"---\nname: mail\n"), b"---\nname: mail\n"),
    ("stats", protocol.stats, b"stats\r\n", ok(b"---\nmax-job-size: 65535\n"),
     b"---\nmax-job-size: 65535\n"),
    ("list-tubes", protocol.list_tubes, b"list-tubes\r\n", ok(b"---\n- default\n- mail\n"),
     b"---\n- default\n- mail\n"),
    ("list-tubes-watched", protocol.list_tubes_watched, b"list-tubes-watched\r\n",
     ok(b"---\n- mail\n"), b"---\n- mail\n"),
    ("list-tube-used", protocol.list_tube_used, b"list-tube-used\r\n", b"USING mail\r\n", "mail"),
    ("pause-tube", lambda: protocol.pause_tube("mail", 30), b"pause-tube mail 30\r\n",
     b"PAUSED\r\n", None),
]


@pytest.mark.parametrize("make, sent, reply, expected", [case[1:] for case in HAPPY],
                         ids=[case[0] for case in HAPPY])
def test_each_command_sends_its_line_and_reads_its_reply(
        fake: Fake, make: Callable[[], protocol.Command[object]], sent: bytes, reply: bytes,
        expected: object) -> None:
    fake.reply(reply)
    assert fake.conn.call(make()) == expected
    assert fake.sent() == sent
    assert_usable(fake)


ANSWERS: list[tuple[Callable[[], protocol.Command[object]], bytes, type[errors.ReplyError]]] = [
    (lambda: protocol.delete(7), b"NOT_FOUND", errors.NotFound),
    (lambda: protocol.release(7, 1, 0), b"NOT_FOUND", errors.NotFound),
    (lambda: protocol.bury(7, 1), b"NOT_FOUND", errors.NotFound),
    (lambda: protocol.touch(7), b"NOT_FOUND", errors.NotFound),
    (lambda: protocol.kick_job(7), b"NOT_FOUND", errors.NotFound),
    (lambda: protocol.peek(7), b"NOT_FOUND", errors.NotFound),
    (protocol.peek_ready, b"NOT_FOUND", errors.NotFound),
    (protocol.peek_delayed, b"NOT_FOUND", errors.NotFound),
    (protocol.peek_buried, b"NOT_FOUND", errors.NotFound),
    (lambda: protocol.stats_job(7), b"NOT_FOUND", errors.NotFound),
    (lambda: protocol.stats_tube("mail"), b"NOT_FOUND", errors.NotFound),
    (lambda: protocol.reserve_job(7), b"NOT_FOUND", errors.NotFound),
    (lambda: protocol.pause_tube("mail", 1), b"NOT_FOUND", errors.NotFound),
    (lambda: protocol.reserve_with_timeout(0), b"TIMED_OUT", errors.TimedOut),
    (lambda: protocol.reserve_with_timeout(0), b"DEADLINE_SOON", errors.DeadlineSoon),
    (protocol.reserve, b"DEADLINE_SOON", errors.DeadlineSoon),
    (lambda: protocol.ignore("mail"), b"NOT_IGNORED", errors.NotIgnored),
]


@pytest.mark.parametrize("make, word, error", ANSWERS,
                         ids=[f"{case[0]().name}-{case[1].decode()}" for case in ANSWERS])
def test_ordinary_answers_raise_their_own_error_and_keep_the_connection(
        fake: Fake, make: Callable[[], protocol.Command[object]], word: bytes,
        error: type[errors.ReplyError]) -> None:
    fake.reply(word + b"\r\n")
    with pytest.raises(error) as raised:
        fake.conn.call(make())
    assert raised.value.reply == word
    assert type(raised.value) is error
    assert_usable(fake)


def test_a_put_answered_buried_says_which_job(fake: Fake) -> None:
    fake.reply(b"BURIED 17\r\n")
    with pytest.raises(errors.Buried, match="buried new job 17") as raised:
        fake.conn.call(protocol.put(b"x", 1, 0, 1))
    assert raised.value.job_id == 17
    assert_usable(fake)


def test_a_release_answered_buried_says_which_job(fake: Fake) -> None:
    fake.reply(b"BURIED\r\n")
    with pytest.raises(errors.Buried, match="job 7 instead of releasing") as raised:
        fake.conn.call(protocol.release(7, 1, 0))
    assert raised.value.job_id == 7
    assert_usable(fake)


SERVER_ERRORS = [(b"OUT_OF_MEMORY", errors.OutOfMemory), (b"INTERNAL_ERROR", errors.InternalError),
                 (b"BAD_FORMAT", errors.BadFormat), (b"UNKNOWN_COMMAND", errors.UnknownCommand),
                 (b"EXPECTED_CRLF", errors.ExpectedCrlf), (b"JOB_TOO_BIG", errors.JobTooBig),
                 (b"DRAINING", errors.Draining)]


@pytest.mark.parametrize("word, error", SERVER_ERRORS, ids=[w.decode() for w, _ in SERVER_ERRORS])
@pytest.mark.parametrize("make", [lambda: protocol.put(b"x", 1, 0, 1), protocol.reserve,
                                  protocol.stats, lambda: protocol.delete(3)],
                         ids=["put", "reserve", "stats", "delete"])
def test_server_errors_raise_their_own_error_and_drop_the_connection(
        fake: Fake, make: Callable[[], protocol.Command[object]], word: bytes,
        error: type[errors.ServerError]) -> None:
    fake.reply(word + b"\r\n")
    command = make()
    with pytest.raises(error, match=f"answered {word.decode()} to {command.name}") as raised:
        fake.conn.call(command)
    assert type(raised.value) is error and isinstance(raised.value, errors.ServerError)
    assert_dropped(fake)


GARBLED: list[tuple[str, Callable[[], protocol.Command[object]], bytes, type[Exception], str]] = [
    ("unknown word", lambda: protocol.delete(7), b"WHAT\r\n", errors.UnexpectedReply,
     "unexpected reply b'WHAT' to delete .expected DELETED or NOT_FOUND"),
    ("answer of another command", lambda: protocol.delete(7), b"TIMED_OUT\r\n",
     errors.UnexpectedReply, "unexpected reply b'TIMED_OUT' to delete"),
    ("success of another command", lambda: protocol.delete(7), b"INSERTED 5\r\n",
     errors.UnexpectedReply, "to delete"),
    ("success word with extras", lambda: protocol.delete(7), b"DELETED 7\r\n",
     errors.UnexpectedReply, "DELETED 7"),
    ("answer with extras", lambda: protocol.delete(7), b"NOT_FOUND 7\r\n", errors.UnexpectedReply,
     "NOT_FOUND 7"),
    ("server error with extras", lambda: protocol.delete(7), b"BAD_FORMAT now\r\n",
     errors.UnexpectedReply, "BAD_FORMAT now"),
    ("bare buried to put", lambda: protocol.put(b"x", 1, 0, 1), b"BURIED\r\n",
     errors.UnexpectedReply, "to put"),
    ("buried with an id to release", lambda: protocol.release(7, 1, 0), b"BURIED 7\r\n",
     errors.UnexpectedReply, "to release"),
    ("id not a number", lambda: protocol.put(b"x", 1, 0, 1), b"INSERTED x1\r\n",
     errors.ProtocolError, "the number in reply b'INSERTED x1' to put is not a number"),
    ("negative id", protocol.reserve, b"RESERVED -1 1\r\nx\r\n", errors.ProtocolError,
     "the job id .* is not a number"),
    ("signed size", protocol.reserve, b"RESERVED 1 +1\r\nx\r\n", errors.ProtocolError,
     "the body size .* is not a number"),
    ("huge number", lambda: protocol.put(b"x", 1, 0, 1), b"INSERTED " + b"9" * 21 + b"\r\n",
     errors.ProtocolError, "is not a number"),
    ("missing size", protocol.reserve, b"RESERVED 1\r\n", errors.UnexpectedReply, "to reserve"),
    ("extra field", protocol.reserve, b"RESERVED 1 1 1\r\nx\r\n", errors.UnexpectedReply,
     "to reserve"),
    ("double space", lambda: protocol.watch("a"), b"WATCHING  1\r\n", errors.ProtocolError,
     "not a number"),
    ("no number", lambda: protocol.watch("a"), b"WATCHING\r\n", errors.UnexpectedReply, "to watch"),
    ("binary", lambda: protocol.delete(7), b"\x00\xff\xfe\r\n", errors.UnexpectedReply,
     r"unexpected reply b'\\x00\\xff\\xfe' to delete"),
    ("bare LF", lambda: protocol.delete(7), b"DELETED\n", errors.ProtocolError, "bare LF"),
    ("line too long", lambda: protocol.delete(7), b"A" * 300 + b"\r\n", errors.ProtocolError,
     "longer than 256 bytes"),
    ("endless line", lambda: protocol.delete(7), b"B" * 5000, errors.ProtocolError,
     "longer than 256 bytes"),
    ("body longer than announced", protocol.reserve, b"RESERVED 1 3\r\nabcdef\r\n",
     errors.ProtocolError, "3-byte body of reply b'RESERVED 1 3' to reserve is not followed by "
     "CRLF"),
    ("body shorter than announced", protocol.peek_ready, b"FOUND 1 9\r\nabc\r\nDELETED\r\n",
     errors.ProtocolError, "9-byte body .* not followed by CRLF"),
    ("body over the limit", protocol.reserve, b"RESERVED 1 %d\r\n" % (protocol.MAX_BODY + 1),
     errors.ProtocolError, "announces 1073741827 bytes, more than the 1073741826 allowed"),
    ("stats without OK", protocol.stats, b"FOUND 1 1\r\nx\r\n", errors.UnexpectedReply, "to stats"),
    ("use answered with another tube", lambda: protocol.use("mail"), b"USING other\r\n",
     errors.UnexpectedReply, "names another tube than b'mail'"),
]


@pytest.mark.parametrize("make, reply, error, message", [case[1:] for case in GARBLED],
                         ids=[case[0] for case in GARBLED])
def test_garbled_replies_are_protocol_errors_naming_the_problem(
        fake: Fake, make: Callable[[], protocol.Command[object]], reply: bytes,
        error: type[Exception], message: str) -> None:
    fake.reply(reply)
    with pytest.raises(error, match=message) as raised:
        fake.conn.call(make())
    assert isinstance(raised.value, errors.ProtocolError)
    assert_dropped(fake)


CUT = [
    ("before the reply", protocol.reserve, b"", "closed the connection before replying to reserve"),
    ("mid line", protocol.reserve, b"RESERV", "in the middle of the reply line to reserve: "
     "b'RESERV'"),
    ("mid line before LF", lambda: protocol.delete(1), b"DELETED\r", "in the middle of the reply"),
    ("mid body", protocol.reserve, b"RESERVED 4 10\r\nabc",
     "in the middle of the 10-byte body of reply b'RESERVED 4 10' to reserve .only 3 bytes"),
    ("before the body's CRLF", protocol.stats, b"OK 3\r\nabc",
     "before the CRLF that ends the 3-byte body of reply b'OK 3' to stats"),
    ("inside the body's CRLF", lambda: protocol.peek(4), b"FOUND 4 3\r\nabc\r",
     "before the CRLF that ends the 3-byte body"),
]


@pytest.mark.parametrize("make, reply, message", [case[1:] for case in CUT],
                         ids=[case[0] for case in CUT])
def test_a_connection_closed_mid_reply_says_where(fake: Fake,
                                                  make: Callable[[], protocol.Command[object]],
                                                  reply: bytes, message: str) -> None:
    fake.reply(reply)
    fake.hang_up()
    with pytest.raises(errors.ConnectionLost, match=message):
        fake.conn.call(make())
    assert_dropped(fake)


PIPELINE_REPLIES = (b"DELETED\r\nRESERVED 8 5\r\nhello\r\n" + ok(STATS_JOB)
                    + b"FOUND 9 2\r\nhi\r\n")


def _pipeline(conn: connection.Connection) -> list[object]:
    commands: list[protocol.Command[object]] = [
        protocol.delete(7), protocol.reserve_with_timeout(0), protocol.stats_job(8),
        protocol.peek_ready()]
    conn.send(*commands)
    assert conn.pending == 4
    return [command.read(conn) for command in commands]


def test_pipelined_commands_go_out_in_one_write_and_replies_are_read_in_order(
        fake: Fake) -> None:
    fake.reply(PIPELINE_REPLIES)
    assert _pipeline(fake.conn) == [None, protocol.Job(8, b"hello"), STATS_JOB,
                                    protocol.Job(9, b"hi")]
    assert fake.sent() == (b"delete 7\r\nreserve-with-timeout 0\r\nstats-job 8\r\n"
                           b"peek-ready\r\n")
    assert fake.conn.pending == 0
    assert_usable(fake)


def test_replies_arriving_a_byte_at_a_time_read_the_same(fake: Fake) -> None:
    fake.trickle(PIPELINE_REPLIES)
    assert _pipeline(fake.conn) == [None, protocol.Job(8, b"hello"), STATS_JOB,
                                    protocol.Job(9, b"hi")]
    assert_usable(fake)


def test_a_big_body_split_across_reads_reads_whole() -> None:
    fake = Fake(max_body=2_000_000)
    body = bytes(range(256)) * 4000
    try:
        fake.trickle(b"RESERVED 1 %d\r\n%b\r\n" % (len(body), body), size=7001)
        assert fake.conn.call(protocol.reserve()) == protocol.Job(1, body)
    finally:
        fake.close()


def test_ordinary_answers_inside_a_pipeline_leave_it_in_step(fake: Fake) -> None:
    fake.reply(b"NOT_FOUND\r\nTIMED_OUT\r\nNOT_FOUND\r\nNOT_FOUND\r\n")
    commands: list[protocol.Command[object]] = [
        protocol.delete(7), protocol.reserve_with_timeout(0), protocol.stats_job(8),
        protocol.peek_ready()]
    fake.conn.send(*commands)
    for command, error in zip(commands, (errors.NotFound, errors.TimedOut, errors.NotFound,
                                         errors.NotFound), strict=True):
        with pytest.raises(error):
            command.read(fake.conn)
    assert_usable(fake)


def test_a_command_sent_while_replies_are_unread_is_refused(fake: Fake) -> None:
    fake.reply(b"DELETED\r\nDELETED\r\n")
    first, second = protocol.delete(1), protocol.delete(2)
    fake.conn.send(first, second)
    first.read(fake.conn)
    with pytest.raises(errors.ProtocolError, match="1 earlier replies are unread"):
        fake.conn.call(protocol.delete(3))
    assert_dropped(fake)


def test_reading_a_reply_to_nothing_is_refused_instead_of_blocking(fake: Fake) -> None:
    with pytest.raises(errors.ProtocolError, match="reading the reply to delete, which was not "
                       "sent"):
        protocol.delete(1).read(fake.conn)
    assert_dropped(fake)


@pytest.mark.parametrize("make, message", [
    (lambda: protocol.put(b"x", 2**32, 0, 1),
     "priority must be a whole number from 0 to 4294967295"),
    (lambda: protocol.put(b"x", 0, -1, 1), "delay must be"),
    (lambda: protocol.put(b"x", 0, 0, 1.5), "ttr must be .* got 1.5"),
    (lambda: protocol.put(b"x", True, 0, 1), "priority must be"),
    (lambda: protocol.put("text", 0, 0, 1), "a job body must be bytes, got str"),
    (lambda: protocol.release(7, 0, 2**40), "delay must be"),
    (lambda: protocol.delete(0), "job id must be a whole number from 1"),
    (lambda: protocol.delete(2**64), "job id must be"),
    (lambda: protocol.stats_job(-3), "job id must be"),
    (lambda: protocol.reserve_with_timeout(-1), "reserve timeout must be"),
    (lambda: protocol.use("two words"), "tube name 'two words' is not valid"),
    (lambda: protocol.watch("-dash"), "not starting with '-'"),
    (lambda: protocol.use("a" * 201), "1 to 200"),
    (lambda: protocol.use(""), "tube name '' is not valid"),
    (lambda: protocol.use("caf\u00e9"), "is not valid"),
    (lambda: protocol.use("a\r\nput"), "is not valid"),
    (lambda: protocol.stats_tube(None), "tube name None"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_values_the_protocol_cannot_carry_are_refused_before_sending(
        fake: Fake, make: Callable[[], protocol.Command[object]], message: str) -> None:
    with pytest.raises(errors.ArgumentError, match=message):
        fake.conn.call(make())
    assert fake.sent() == b""
    assert_usable(fake)


def test_tube_names_the_protocol_allows_are_taken() -> None:
    for name in ("a", "mail.failed", "A-b_c+d/e;f$g(h)", "9" * 200):
        assert protocol.tube_name(name) == name.encode()


def test_stats_documents_parse_strictly() -> None:
    assert protocol.parse_stats(STATS_JOB)["state"] == "ready"
    assert protocol.parse_stats(b"---\nos: #1 SMP: x\nversion: \"1.12\"\n") == {
        "os": "#1 SMP: x", "version": '"1.12"'}
    assert protocol.parse_stats(b"---\n") == {}
    assert protocol.parse_list(b"---\n- default\n- mail\n") == ["default", "mail"]
    for bad, message in ((b"id: 7\n", "does not start with '---'"),
                         (b"---\nno separator\n", "is not 'key: value'"),
                         (b"---\nBad Key: 1\n", "is not 'key: value'")):
        with pytest.raises(errors.ProtocolError, match=message):
            protocol.parse_stats(bad)
    with pytest.raises(errors.ProtocolError, match="is not '- item'"):
        protocol.parse_list(b"---\ndefault\n")


def test_a_closed_connection_refuses_every_use(fake: Fake) -> None:
    fake.conn.close()
    with pytest.raises(errors.ConnectionLost, match="connection unusable"):
        fake.conn.send(protocol.stats())
    with pytest.raises(errors.ConnectionLost, match="connection unusable"):
        fake.conn.call(protocol.stats())


def test_a_send_to_a_dead_peer_is_a_lost_connection(fake: Fake) -> None:
    fake.server.close()
    with pytest.raises(errors.ConnectionLost):
        fake.conn.call(protocol.put(b"x", 0, 0, 1))
    assert fake.conn.closed
