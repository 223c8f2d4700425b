"""One socket to beanstalkd, and the pipelining over it.

A :class:`Connection` sends the commands of ``protocol``; several may go out in one write
(``send``) and have their replies read in order (``Command.read``); ``call`` does both for
one command.

Only the ordinary answers (NOT_FOUND, TIMED_OUT, DEADLINE_SOON, BURIED, NOT_IGNORED) leave
the connection usable; after any other error the stream may be out of step (beanstalkd
reading a body as a command, or a reply left unread), so the connection closes itself and
every later use raises :class:`~.errors.ConnectionLost`.
"""

from __future__ import annotations

import socket
from operator import attrgetter
from typing import TypeVar

from .errors import (
    ANSWERS,
    SERVER_ERRORS,
    BeanstalkError,
    Buried,
    ConnectionLost,
    ProtocolError,
    UnexpectedReply,
    shown,
)
from .protocol import MAX_BODY, MAX_LINE, Command

T = TypeVar("T")

_DATA = attrgetter("data")


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
            problem = ProtocolError(f"reply {shown(line)} to {command.name} ends in a bare "
                                    "LF, not CRLF", line)
        elif len(line) >= self.max_line:
            problem = ProtocolError(f"reply line to {command.name} is longer than "
                                    f"{self.max_line} bytes: {shown(line)}", line)
        else:
            problem = ConnectionLost(f"beanstalkd closed the connection in the middle of the "
                                     f"reply line to {command.name}: {shown(line)}", line)
        return self._lost(problem)

    def _number(self, field: bytes, what: str, line: bytes, command: Command[object]) -> int:
        if 0 < len(field) <= 20 and field.isdigit():
            return int(field)
        raise self._lost(ProtocolError(f"{what} in reply {shown(line)} to {command.name} is "
                                       "not a number", line))

    def _bad_body(self, data: bytes | None, size: int, line: bytes,
                  command: Command[object]) -> BeanstalkError:
        """The error for a body read (``data``, with what should be its CRLF) that is not
        ``size`` bytes and CRLF; None when ``size`` is over the limit."""
        if data is None:
            return self._lost(ProtocolError(
                f"reply {shown(line)} to {command.name} announces {size} bytes, more than "
                f"the {self.max_body} allowed", line))
        if len(data) < size:
            return self._lost(ConnectionLost(
                f"beanstalkd closed the connection in the middle of the {size}-byte body of "
                f"reply {shown(line)} to {command.name} (only {len(data)} bytes came)", line))
        end = data[size:]
        if len(end) < 2 and b"\r\n".startswith(end):
            return self._lost(ConnectionLost(
                f"beanstalkd closed the connection before the CRLF that ends the "
                f"{size}-byte body of reply {shown(line)} to {command.name}", line))
        return self._lost(ProtocolError(
            f"the {size}-byte body of reply {shown(line)} to {command.name} is not "
            f"followed by CRLF (a body longer or shorter than announced)", line))

    def _refused(self, line: bytes, command: Command[object]) -> BeanstalkError:
        """The error for a reply that is not the command's success reply."""
        word, _, rest = line.partition(b" ")
        answer = ANSWERS.get(word)
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
        error = SERVER_ERRORS.get(word)
        if error is not None and not rest:
            return self._lost(error(f"beanstalkd answered {word.decode()} to {command.name}",
                                    line))
        return self._lost(UnexpectedReply(
            f"unexpected reply {shown(line)} to {command.name} (expected "
            f"{' or '.join(w.decode() for w in (command.reply.word, *sorted(command.answers)))})",
            line))
