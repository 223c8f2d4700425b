"""The errors of beanstalkd's protocol as the driver reads it: one exception per reply
kind, and one per way a reply can break the protocol.

Only the ordinary answers (NOT_FOUND, TIMED_OUT, DEADLINE_SOON, BURIED, NOT_IGNORED) leave
the connection usable; after any other error the connection closes itself.
"""

from __future__ import annotations


class BeanstalkError(Exception):
    """Root of every error the protocol modules raise. ``reply`` is the reply line, when
    there was one."""

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


ANSWERS: dict[bytes, type[ReplyError]] = {
    cls.word: cls for cls in (NotFound, TimedOut, DeadlineSoon, NotIgnored, Buried)}
"""The ordinary answers by reply word: the connection stays usable after them."""
SERVER_ERRORS: dict[bytes, type[ServerError]] = {
    cls.word: cls for cls in (JobTooBig, OutOfMemory, InternalError, BadFormat,
                              UnknownCommand, ExpectedCrlf, Draining)}
"""The error replies by word: the stream may be out of step after them."""


def shown(line: bytes) -> str:
    """``line`` as an error message quotes it: its first 80 bytes."""
    return repr(line[:80] + (b"..." if len(line) > 80 else b""))
