"""beanstalkd's text protocol, spoken directly (no client library): the commands the
driver sends, as bytes, and the strict readers of their replies.

A command built by the functions below (``put``, ``delete``, ``reserve_with_timeout``, ...)
reads its reply from a :class:`~.connection.Connection` strictly: a reply line too long, a
bare LF, a body shorter than announced or not followed by CRLF, a number that is not one, a
reply the command cannot get, or a connection closed mid-reply is a
:class:`~.errors.ProtocolError` naming what was wrong. Values the protocol cannot carry are
refused before anything is sent.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar

from .errors import (
    ArgumentError,
    Buried,
    DeadlineSoon,
    NotFound,
    NotIgnored,
    ProtocolError,
    TimedOut,
    UnexpectedReply,
    shown,
)

if TYPE_CHECKING:
    from .connection import Connection

T_co = TypeVar("T_co", covariant=True)

UINT32 = 2**32 - 1
MAX_JOB_ID = 2**64 - 1
MAX_LINE = 256
"""Longest reply line read; beanstalkd's longest ("USING" and a 200-byte tube) is shorter."""
MAX_BODY = 2**30 + 2
"""Largest body a reply may announce: beanstalkd's own ceiling for -z (1 GiB)."""
MAX_TUBE = 200
_TUBE = re.compile(r"[A-Za-z0-9+/;.$_()][A-Za-z0-9+/;.$_()-]*\Z")
_KEY = re.compile(rb"[a-z][a-z0-9-]*\Z")

# The words of the success replies; the other replies' words are their exceptions'.
INSERTED = b"INSERTED"
USING = b"USING"
WATCHING = b"WATCHING"
RESERVED = b"RESERVED"
FOUND = b"FOUND"
OK = b"OK"
DELETED = b"DELETED"
RELEASED = b"RELEASED"
BURIED = b"BURIED"
TOUCHED = b"TOUCHED"
KICKED = b"KICKED"
PAUSED = b"PAUSED"

# The YAML that stats and list replies carry: a document start, then "key: value" lines
# or "- item" lines.
DOCUMENT_START = b"---"
STATS_SEPARATOR = b": "
LIST_ITEM = b"- "


# -- values ----------------------------------------------------------------------------

def _uint(value: object, what: str, top: int = UINT32, least: int = 0) -> int:
    if type(value) is int and least <= value <= top:
        return value
    if not isinstance(value, bool) and isinstance(value, int) and least <= value <= top:
        return int(value)  # an int subclass (IntEnum): sent as the plain number
    raise ArgumentError(f"{what} must be a whole number from {least} to {top}, got {value!r}")


def _job_id(value: object) -> int:
    if type(value) is int and 0 < value <= MAX_JOB_ID:
        return value
    return _uint(value, "job id", MAX_JOB_ID, 1)


def tube_name(name: object) -> bytes:
    """``name`` as the protocol carries it; a name beanstalkd would refuse or misread (a
    space would split the command) raises :class:`ArgumentError`."""
    if (not isinstance(name, str) or not name.isascii() or len(name) > MAX_TUBE
            or not _TUBE.match(name)):
        raise ArgumentError(
            f"tube name {name!r} is not valid for beanstalkd: 1 to {MAX_TUBE} letters, digits "
            "or + / ; . $ _ ( ) -, not starting with '-'")
    return name.encode("ascii")


class Job(NamedTuple):
    id: int
    body: bytes


_new_job = tuple.__new__  # builds a Job without NamedTuple's Python-level __new__


# -- commands and their replies ---------------------------------------------------------

class Reply:
    """What a command's reply may be: its success word and the ordinary answers it may get
    instead."""

    __slots__ = ("name", "word", "answers")

    def __init__(self, name: str, word: bytes, answers: tuple[bytes, ...] = ()) -> None:
        self.name = name
        self.word = word
        self.answers = frozenset(answers)


class Command(Generic[T_co]):
    """One command: the bytes to send, what its reply may be, and its argument (a job id or
    a tube) for checks and messages. Each subclass reads one shape of reply.

    The readers work on the connection's buffered reader and its count of unread replies
    directly: reading a reply is the other half of the connection's pipelining."""

    __slots__ = ("data", "reply", "arg")

    def __init__(self, data: bytes, reply: Reply, arg: object = None) -> None:
        self.data = data
        self.reply = reply
        self.arg = arg

    @property
    def name(self) -> str:
        return self.reply.name

    @property
    def answers(self) -> frozenset[bytes]:
        return self.reply.answers

    def read(self, conn: Connection) -> T_co:
        """This command's reply, read from ``conn`` after ``send``."""
        raise NotImplementedError

    def _line(self, conn: Connection) -> bytes:
        """The reply line, without its CRLF. (The readers of the replies the worker reads
        for every job repeat these lines inline: one call less per reply.)"""
        if conn._pending <= 0:
            raise conn._unreadable(self)
        try:
            line = conn._reader.readline(conn.max_line)
        except (OSError, ValueError) as exc:  # ValueError: the reader was closed
            raise conn._read_failed(self, exc) from exc
        if line[-2:] != b"\r\n":
            raise conn._bad_line(line, self)
        return line[:-2]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.data[:60]!r})"


class _Word(Command[None]):
    """A reply of one word: DELETED, RELEASED, BURIED, TOUCHED, KICKED, PAUSED."""

    __slots__ = ()

    def read(self, conn: Connection) -> None:
        if conn._pending <= 0:
            raise conn._unreadable(self)
        try:
            line = conn._reader.readline(conn.max_line)
        except (OSError, ValueError) as exc:
            raise conn._read_failed(self, exc) from exc
        if line[-2:] != b"\r\n":
            raise conn._bad_line(line, self)
        line = line[:-2]
        if line != self.reply.word:
            raise conn._refused(line, self)
        conn._pending -= 1


class _Number(Command[int]):
    """A word and a number: INSERTED <id>, WATCHING <count>, KICKED <count>."""

    __slots__ = ()

    def read(self, conn: Connection) -> int:
        line = self._line(conn)
        word, _, field = line.partition(b" ")
        if word != self.reply.word or not field:
            raise conn._refused(line, self)
        number = conn._number(field, "the number", line, self)
        conn._pending -= 1
        return number


class _Name(Command[str]):
    """USING <tube>; when the command named a tube, the reply must name the same."""

    __slots__ = ()

    def read(self, conn: Connection) -> str:
        line = self._line(conn)
        word, _, field = line.partition(b" ")
        if word != self.reply.word or not field:
            raise conn._refused(line, self)
        if self.arg is not None and field != self.arg:
            raise conn._lost(UnexpectedReply(f"reply {shown(line)} to {self.name} names "
                                             f"another tube than {self.arg!r}", line))
        conn._pending -= 1
        return field.decode("ascii", "replace")


class _JobReply(Command[Job]):
    """RESERVED or FOUND <id> <bytes>, then the body and CRLF."""

    __slots__ = ()

    def read(self, conn: Connection) -> Job:
        if conn._pending <= 0:
            raise conn._unreadable(self)
        try:
            line = conn._reader.readline(conn.max_line)
        except (OSError, ValueError) as exc:
            raise conn._read_failed(self, exc) from exc
        if line[-2:] != b"\r\n":
            raise conn._bad_line(line, self)
        line = line[:-2]
        parts = line.split(b" ")
        if len(parts) != 3:
            raise conn._refused(line, self)
        word, field, size = parts
        if word != self.reply.word:
            raise conn._refused(line, self)
        # The line's length limit keeps these numbers short enough for int().
        job_id = int(field) if field.isdigit() else conn._number(field, "the job id", line, self)
        n = int(size) if size.isdigit() else conn._number(size, "the body size", line, self)
        try:
            data = conn._reader.read(n + 2) if n <= conn.max_body else None
        except (OSError, ValueError) as exc:
            raise conn._read_failed(self, exc) from exc
        if data is None or len(data) != n + 2 or data[-2:] != b"\r\n":
            raise conn._bad_body(data, n, line, self)
        conn._pending -= 1
        return _new_job(Job, (job_id, data[:-2]))


class _Document(Command[bytes]):
    """OK <bytes>, then a YAML document and CRLF."""

    __slots__ = ()

    def read(self, conn: Connection) -> bytes:
        if conn._pending <= 0:
            raise conn._unreadable(self)
        try:
            line = conn._reader.readline(conn.max_line)
        except (OSError, ValueError) as exc:
            raise conn._read_failed(self, exc) from exc
        if line[-2:] != b"\r\n":
            raise conn._bad_line(line, self)
        line = line[:-2]
        word, _, field = line.partition(b" ")
        if word != OK or not field:
            raise conn._refused(line, self)
        n = int(field) if field.isdigit() else conn._number(field, "the body size", line, self)
        try:
            data = conn._reader.read(n + 2) if n <= conn.max_body else None
        except (OSError, ValueError) as exc:
            raise conn._read_failed(self, exc) from exc
        if data is None or len(data) != n + 2 or data[-2:] != b"\r\n":
            raise conn._bad_body(data, n, line, self)
        conn._pending -= 1
        return data[:-2]


_PUT = Reply("put", INSERTED, (Buried.word,))
_USE = Reply("use", USING)
_WATCH = Reply("watch", WATCHING)
_IGNORE = Reply("ignore", WATCHING, (NotIgnored.word,))
_RESERVE_WAIT = Reply("reserve-with-timeout", RESERVED, (TimedOut.word, DeadlineSoon.word))
_RESERVE_JOB = Reply("reserve-job", RESERVED, (NotFound.word,))
_DELETE = Reply("delete", DELETED, (NotFound.word,))
_RELEASE = Reply("release", RELEASED, (Buried.word, NotFound.word))
_BURY = Reply("bury", BURIED, (NotFound.word,))
_TOUCH = Reply("touch", TOUCHED, (NotFound.word,))
_KICK = Reply("kick", KICKED)
_KICK_JOB = Reply("kick-job", KICKED, (NotFound.word,))
_PEEK = Reply("peek", FOUND, (NotFound.word,))
_STATS_JOB = Reply("stats-job", OK, (NotFound.word,))
_STATS_TUBE = Reply("stats-tube", OK, (NotFound.word,))
_PAUSE_TUBE = Reply("pause-tube", PAUSED, (NotFound.word,))

# Commands without arguments hold no state: each is made once.
_RESERVE_ANY = _JobReply(b"reserve\r\n", Reply("reserve", RESERVED, (DeadlineSoon.word,)))
_PEEK_READY = _JobReply(b"peek-ready\r\n", Reply("peek-ready", FOUND, (NotFound.word,)))
_PEEK_DELAYED = _JobReply(b"peek-delayed\r\n",
                          Reply("peek-delayed", FOUND, (NotFound.word,)))
_PEEK_BURIED = _JobReply(b"peek-buried\r\n", Reply("peek-buried", FOUND, (NotFound.word,)))
_STATS = _Document(b"stats\r\n", Reply("stats", OK))
_LIST_TUBES = _Document(b"list-tubes\r\n", Reply("list-tubes", OK))
_LIST_WATCHED = _Document(b"list-tubes-watched\r\n", Reply("list-tubes-watched", OK))
_LIST_USED = _Name(b"list-tube-used\r\n", Reply("list-tube-used", USING))
_RESERVES: dict[int, Command[Job]] = {}


# -- commands --------------------------------------------------------------------------

def put(body: bytes, priority: int, delay: int, ttr: int) -> Command[int]:
    """put: the new job's id. Buried (with ``job_id``) when the server stored it buried."""
    if not isinstance(body, bytes):
        raise ArgumentError(f"a job body must be bytes, got {type(body).__name__}")
    head = b"put %d %d %d %d\r\n" % (_uint(priority, "priority"), _uint(delay, "delay"),
                                      _uint(ttr, "ttr"), len(body))
    return _Number(b"%b%b\r\n" % (head, body), _PUT)


def use(tube: str) -> Command[str]:
    """use: the tube's name, checked against the one asked for."""
    name = tube_name(tube)
    return _Name(b"use %b\r\n" % name, _USE, name)


def watch(tube: str) -> Command[int]:
    """watch: the number of tubes watched."""
    return _Number(b"watch %b\r\n" % tube_name(tube), _WATCH)


def ignore(tube: str) -> Command[int]:
    """ignore: the number of tubes still watched; NotIgnored for the last one."""
    return _Number(b"ignore %b\r\n" % tube_name(tube), _IGNORE)


def reserve() -> Command[Job]:
    return _RESERVE_ANY


def reserve_with_timeout(seconds: int) -> Command[Job]:
    """TimedOut when no job came within ``seconds``; DeadlineSoon when a job this
    connection holds is about to time out."""
    made = _RESERVES.get(seconds) if type(seconds) is int else None
    if made is None:
        made = _JobReply(b"reserve-with-timeout %d\r\n" % _uint(seconds, "reserve timeout"),
                         _RESERVE_WAIT)
        if len(_RESERVES) < 64:
            _RESERVES[seconds] = made
    return made


def reserve_job(job_id: int) -> Command[Job]:
    return _JobReply(b"reserve-job %d\r\n" % _job_id(job_id), _RESERVE_JOB, job_id)


def delete(job_id: int) -> Command[None]:
    return _Word(b"delete %d\r\n" % _job_id(job_id), _DELETE, job_id)


def release(job_id: int, priority: int, delay: int) -> Command[None]:
    """release; Buried (with ``job_id``) when the server buried the job instead."""
    return _Word(b"release %d %d %d\r\n" % (
        _job_id(job_id), _uint(priority, "priority"), _uint(delay, "delay")), _RELEASE, job_id)


def bury(job_id: int, priority: int) -> Command[None]:
    return _Word(b"bury %d %d\r\n" % (_job_id(job_id), _uint(priority, "priority")), _BURY,
                 job_id)


def touch(job_id: int) -> Command[None]:
    return _Word(b"touch %d\r\n" % _job_id(job_id), _TOUCH, job_id)


def kick(bound: int) -> Command[int]:
    """kick: the number of jobs kicked."""
    return _Number(b"kick %d\r\n" % _uint(bound, "kick bound"), _KICK)


def kick_job(job_id: int) -> Command[None]:
    return _Word(b"kick-job %d\r\n" % _job_id(job_id), _KICK_JOB, job_id)


def peek(job_id: int) -> Command[Job]:
    return _JobReply(b"peek %d\r\n" % _job_id(job_id), _PEEK, job_id)


def peek_ready() -> Command[Job]:
    return _PEEK_READY


def peek_delayed() -> Command[Job]:
    return _PEEK_DELAYED


def peek_buried() -> Command[Job]:
    return _PEEK_BURIED


def stats_job(job_id: int) -> Command[bytes]:
    """stats-job: the YAML document as sent (see ``parse_stats``)."""
    return _Document(b"stats-job %d\r\n" % _job_id(job_id), _STATS_JOB, job_id)


def stats_tube(tube: str) -> Command[bytes]:
    return _Document(b"stats-tube %b\r\n" % tube_name(tube), _STATS_TUBE)


def stats() -> Command[bytes]:
    return _STATS


def list_tubes() -> Command[bytes]:
    """list-tubes: a YAML list (see ``parse_list``)."""
    return _LIST_TUBES


def list_tubes_watched() -> Command[bytes]:
    return _LIST_WATCHED


def list_tube_used() -> Command[str]:
    """list-tube-used: the name of the tube in use."""
    return _LIST_USED


def pause_tube(tube: str, delay: int) -> Command[None]:
    return _Word(b"pause-tube %b %d\r\n" % (tube_name(tube), _uint(delay, "pause delay")),
                 _PAUSE_TUBE)


# -- documents -------------------------------------------------------------------------

def _document_lines(document: bytes, what: str) -> list[bytes]:
    lines = document.split(b"\n")
    if lines[0] != DOCUMENT_START:
        raise ProtocolError(f"{what} document does not start with '---': "
                            f"{shown(document)}", document)
    if lines[-1] == b"":
        lines.pop()
    return lines[1:]


def parse_stats(document: bytes) -> dict[str, str]:
    """A stats, stats-job or stats-tube document as ``{key: value}``, values as sent."""
    found = {}
    for line in _document_lines(document, "stats"):
        key, sep, value = line.partition(STATS_SEPARATOR)
        if not sep or not _KEY.match(key):
            raise ProtocolError(f"stats line {shown(line)} is not 'key: value'", line)
        found[key.decode("ascii")] = value.decode("ascii", "replace")
    return found


def parse_list(document: bytes) -> list[str]:
    """A list-tubes document as a list of names."""
    found = []
    for line in _document_lines(document, "list"):
        if not line.startswith(LIST_ITEM):
            raise ProtocolError(f"list line {shown(line)} is not '- item'", line)
        found.append(line[len(LIST_ITEM):].decode("ascii", "replace"))
    return found
