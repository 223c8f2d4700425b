"""beanstalkd's text protocol, spoken directly over a socket (no client library).

A :class:`Connection` sends commands built by the functions below (``put``, ``delete``,
``reserve_with_timeout``, ...) and reads their replies strictly: a reply line too long, a
bare LF, a body shorter than announced or not followed by CRLF, a number that is not one, a
reply the command cannot get, or a connection closed mid-reply is a :class:`ProtocolError`
naming what was wrong. Several commands may go out in one write (``send``) and have their
replies read in order (``Command.read``); ``call`` does both for one command.

Each reply kind has its own exception. Only the ordinary answers (NOT_FOUND, TIMED_OUT,
DEADLINE_SOON, BURIED, NOT_IGNORED) leave the connection usable; after any other error the
stream may be out of step (beanstalkd reading a body as a command, or a reply left
unread), so the connection closes itself and every later use raises
:class:`ConnectionLost`.
"""

from __future__ import annotations

import re
import socket
from operator import attrgetter
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")
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
_DATA = attrgetter("data")


# -- errors ----------------------------------------------------------------------------

class BeanstalkError(Exception):
    """Root of every error this module raises. ``reply`` is the reply line, when there was
    one."""

    def __init__(self, message: str, reply: bytes = b"") -> None:
        super().__init__(message)
        self.reply = reply


class ReplyError(BeanstalkError):
    """beanstalkd answered with one of the replies its protocol names."""

    word = b""


class NotFound(ReplyError):
    word = b"NOT_FOUND"


class TimedOut(ReplyError):
    word = b"TIMED_OUT"


class DeadlineSoon(ReplyError):
    word = b"DEADLINE_SOON"


class NotIgnored(ReplyError):
    word = b"NOT_IGNORED"


class Buried(ReplyError):
    """put: the job was stored but buried (the server is out of memory); release: the job
    was buried instead of released. ``job_id`` is the job's id."""

    word = b"BURIED"

    def __init__(self, message: str, reply: bytes = b"", job_id: int | None = None) -> None:
        super().__init__(message, reply)
        self.job_id = job_id


class ServerError(ReplyError):
    """An error reply any command may get: the stream may be out of step after it."""


class JobTooBig(ServerError):
    word = b"JOB_TOO_BIG"


class OutOfMemory(ServerError):
    word = b"OUT_OF_MEMORY"


class InternalError(ServerError):
    word = b"INTERNAL_ERROR"


class BadFormat(ServerError):
    word = b"BAD_FORMAT"


class UnknownCommand(ServerError):
    word = b"UNKNOWN_COMMAND"


class ExpectedCrlf(ServerError):
    word = b"EXPECTED_CRLF"


class Draining(ServerError):
    word = b"DRAINING"


class ProtocolError(BeanstalkError):
    """A reply that breaks the protocol: malformed, cut short, or not one the command can
    get."""


class UnexpectedReply(ProtocolError):
    """A well-formed line that is no reply to the command sent."""


class ConnectionLost(ProtocolError):
    """The connection closed (by the server, mid-reply, or by an earlier error) or failed."""


class ArgumentError(BeanstalkError, ValueError):
    """A value the protocol cannot carry, refused before anything is sent."""


_ANSWERS: dict[bytes, type[ReplyError]] = {
    cls.word: cls for cls in (NotFound, TimedOut, DeadlineSoon, NotIgnored, Buried)}
_SERVER_ERRORS: dict[bytes, type[ServerError]] = {
    cls.word: cls for cls in (JobTooBig, OutOfMemory, InternalError, BadFormat,
                              UnknownCommand, ExpectedCrlf, Draining)}


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


def _shown(line: bytes) -> str:
    return repr(line[:80] + (b"..." if len(line) > 80 else b""))


# -- the connection --------------------------------------------------------------------

class Job(NamedTuple):
    id: int
    body: bytes


_new_job = tuple.__new__  # builds a Job without NamedTuple's Python-level __new__


class Connection:
    """One connection to beanstalkd. Not thread-safe: one user at a time."""

    __slots__ = ("_sock", "_reader", "max_line", "max_body", "_pending", "_broken")

    def __init__(self, sock: socket.socket, *, max_line: int = MAX_LINE,
                 max_body: int = MAX_BODY) -> None:
        self._sock = sock
        self._reader = sock.makefile("rb")
        self.max_line = max_line
        self.max_body = max_body
        self._pending = 0
        self._broken: str | None = None

    @classmethod
    def connect(cls, address: tuple[str, int], timeout: float | None = None) -> Connection:
        """Connects within ``timeout`` seconds; afterwards reads wait as long as the command
        does (a reserve may block for its whole timeout)."""
        sock = socket.create_connection(address, timeout=timeout)
        try:
            sock.settimeout(None)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            sock.close()
            raise
        return cls(sock)

    @property
    def closed(self) -> bool:
        return self._broken is not None

    @property
    def pending(self) -> int:
        """Commands sent whose replies are not read yet."""
        return self._pending

    def close(self, reason: str = "the connection was closed") -> None:
        if self._broken is None:
            self._broken = reason
        self._pending = 0  # nothing more is read: every read now fails in _unreadable
        for part in (self._reader, self._sock):
            try:
                part.close()
            except OSError:
                pass

    def _lost(self, error: BeanstalkError) -> BeanstalkError:
        """``error``, after closing: the stream can no longer be trusted to be in step."""
        self.close(str(error))
        return error

    def send(self, *commands: Command[object]) -> None:
        """Writes ``commands`` in one go; read their replies in order with ``read``."""
        if self._broken is not None:
            raise ConnectionLost(f"connection unusable: {self._broken}")
        data = commands[0].data if len(commands) == 1 else b"".join(map(_DATA, commands))
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise self._lost(ConnectionLost(f"sending to beanstalkd failed: {exc}")) from exc
        self._pending += len(commands)

    def call(self, command: Command[T]) -> T:
        """Sends ``command`` and reads its reply."""
        if self._broken is not None:
            raise ConnectionLost(f"connection unusable: {self._broken}")
        if self._pending:
            raise self._lost(ProtocolError(
                f"{command.name} sent while {self._pending} earlier replies are unread"))
        self.send(command)
        return command.read(self)

    # -- reading: Command.read reads the line, these read the rest or name the problem --

    def _read_failed(self, command: Command[object], exc: Exception) -> BeanstalkError:
        return self._lost(ConnectionLost(f"reading the reply to {command.name} failed: {exc}"))

    def _unreadable(self, command: Command[object]) -> BeanstalkError:
        if self._broken is not None:
            return ConnectionLost(f"connection unusable: {self._broken}")
        return self._lost(ProtocolError(f"reading the reply to {command.name}, which was not "
                                        "sent"))

    def _bad_line(self, line: bytes, command: Command[object]) -> BeanstalkError:
        """The error for a reply line read without its CRLF."""
        if not line:
            problem: BeanstalkError = ConnectionLost(
                f"beanstalkd closed the connection before replying to {command.name}")
        elif line[-1:] == b"\n":
            problem = ProtocolError(f"reply {_shown(line)} to {command.name} ends in a bare "
                                    "LF, not CRLF", line)
        elif len(line) >= self.max_line:
            problem = ProtocolError(f"reply line to {command.name} is longer than "
                                    f"{self.max_line} bytes: {_shown(line)}", line)
        else:
            problem = ConnectionLost(f"beanstalkd closed the connection in the middle of the "
                                     f"reply line to {command.name}: {_shown(line)}", line)
        return self._lost(problem)

    def _number(self, field: bytes, what: str, line: bytes, command: Command[object]) -> int:
        if 0 < len(field) <= 20 and field.isdigit():
            return int(field)
        raise self._lost(ProtocolError(f"{what} in reply {_shown(line)} to {command.name} is "
                                       "not a number", line))

    def _bad_body(self, data: bytes | None, size: int, line: bytes,
                  command: Command[object]) -> BeanstalkError:
        """The error for a body read (``data``, with what should be its CRLF) that is not
        ``size`` bytes and CRLF; None when ``size`` is over the limit."""
        if data is None:
            return self._lost(ProtocolError(
                f"reply {_shown(line)} to {command.name} announces {size} bytes, more than "
                f"the {self.max_body} allowed", line))
        if len(data) < size:
            return self._lost(ConnectionLost(
                f"beanstalkd closed the connection in the middle of the {size}-byte body of "
                f"reply {_shown(line)} to {command.name} (only {len(data)} bytes came)", line))
        end = data[size:]
        if len(end) < 2 and b"\r\n".startswith(end):
            return self._lost(ConnectionLost(
                f"beanstalkd closed the connection before the CRLF that ends the "
                f"{size}-byte body of reply {_shown(line)} to {command.name}", line))
        return self._lost(ProtocolError(
            f"the {size}-byte body of reply {_shown(line)} to {command.name} is not "
            f"followed by CRLF (a body longer or shorter than announced)", line))

    def _refused(self, line: bytes, command: Command[object]) -> BeanstalkError:
        """The error for a reply that is not the command's success reply."""
        word, _, rest = line.partition(b" ")
        answer = _ANSWERS.get(word)
        if answer is not None and word in command.answers:
            if answer is Buried and command.name == "put":
                if rest:
                    job_id = self._number(rest, "the job id", line, command)
                    self._pending -= 1
                    return Buried(f"beanstalkd buried new job {job_id}: it is out of memory",
                                  line, job_id)
            elif not rest:
                self._pending -= 1
                if answer is Buried:
                    job = command.arg if isinstance(command.arg, int) else None
                    return Buried(f"beanstalkd buried job {job} instead of releasing it: it "
                                  "is out of memory", line, job)
                return answer(f"{command.name}: {word.decode()}", line)
        error = _SERVER_ERRORS.get(word)
        if error is not None and not rest:
            return self._lost(error(f"beanstalkd answered {word.decode()} to {command.name}",
                                    line))
        return self._lost(UnexpectedReply(
            f"unexpected reply {_shown(line)} to {command.name} (expected "
            f"{' or '.join(w.decode() for w in (command.reply.word, *sorted(command.answers)))})",
            line))


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
    a tube) for checks and messages. Each subclass reads one shape of reply."""

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
            raise conn._lost(UnexpectedReply(f"reply {_shown(line)} to {self.name} names "
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
        if len(parts) != 3 or parts[0] != self.reply.word:
            raise conn._refused(line, self)
        # The line's length limit keeps these numbers short enough for int().
        field, size = parts[1], parts[2]
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
        if word != b"OK" or not field:
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


_PUT = Reply("put", b"INSERTED", (b"BURIED",))
_USE = Reply("use", b"USING")
_WATCH = Reply("watch", b"WATCHING")
_IGNORE = Reply("ignore", b"WATCHING", (b"NOT_IGNORED",))
_RESERVE_WAIT = Reply("reserve-with-timeout", b"RESERVED", (b"TIMED_OUT", b"DEADLINE_SOON"))
_RESERVE_JOB = Reply("reserve-job", b"RESERVED", (b"NOT_FOUND",))
_DELETE = Reply("delete", b"DELETED", (b"NOT_FOUND",))
_RELEASE = Reply("release", b"RELEASED", (b"BURIED", b"NOT_FOUND"))
_BURY = Reply("bury", b"BURIED", (b"NOT_FOUND",))
_TOUCH = Reply("touch", b"TOUCHED", (b"NOT_FOUND",))
_KICK = Reply("kick", b"KICKED")
_KICK_JOB = Reply("kick-job", b"KICKED", (b"NOT_FOUND",))
_PEEK = Reply("peek", b"FOUND", (b"NOT_FOUND",))
_STATS_JOB = Reply("stats-job", b"OK", (b"NOT_FOUND",))
_STATS_TUBE = Reply("stats-tube", b"OK", (b"NOT_FOUND",))
_PAUSE_TUBE = Reply("pause-tube", b"PAUSED", (b"NOT_FOUND",))

# Commands without arguments hold no state: each is made once.
_RESERVE_ANY = _JobReply(b"reserve\r\n", Reply("reserve", b"RESERVED", (b"DEADLINE_SOON",)))
_PEEK_READY = _JobReply(b"peek-ready\r\n", Reply("peek-ready", b"FOUND", (b"NOT_FOUND",)))
_PEEK_DELAYED = _JobReply(b"peek-delayed\r\n",
                          Reply("peek-delayed", b"FOUND", (b"NOT_FOUND",)))
_PEEK_BURIED = _JobReply(b"peek-buried\r\n", Reply("peek-buried", b"FOUND", (b"NOT_FOUND",)))
_STATS = _Document(b"stats\r\n", Reply("stats", b"OK"))
_LIST_TUBES = _Document(b"list-tubes\r\n", Reply("list-tubes", b"OK"))
_LIST_WATCHED = _Document(b"list-tubes-watched\r\n", Reply("list-tubes-watched", b"OK"))
_LIST_USED = _Name(b"list-tube-used\r\n", Reply("list-tube-used", b"USING"))
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
    if lines[0] != b"---":
        raise ProtocolError(f"{what} document does not start with '---': "
                            f"{_shown(document)}", document)
    if lines[-1] == b"":
        lines.pop()
    return lines[1:]


def parse_stats(document: bytes) -> dict[str, str]:
    """A stats, stats-job or stats-tube document as ``{key: value}``, values as sent."""
    found = {}
    for line in _document_lines(document, "stats"):
        key, sep, value = line.partition(b": ")
        if not sep or not _KEY.match(key):
            raise ProtocolError(f"stats line {_shown(line)} is not 'key: value'", line)
        found[key.decode("ascii")] = value.decode("ascii", "replace")
    return found


def parse_list(document: bytes) -> list[str]:
    """A list-tubes document as a list of names."""
    found = []
    for line in _document_lines(document, "list"):
        if not line.startswith(b"- "):
            raise ProtocolError(f"list line {_shown(line)} is not '- item'", line)
        found.append(line[2:].decode("ascii", "replace"))
    return found
