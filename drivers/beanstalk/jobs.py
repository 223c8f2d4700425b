"""How the driver keeps its jobs in beanstalkd's fields: the body's header, the priority
that also counts lost runs, seconds as beanstalkd takes them, and the failure records of
the side tube read back.

A lost run (the worker's connection closed, or beanstalkd timed the reservation out) is
told apart from a normal end by the job's priority. Every reservation ends in a release, a
bury, or a loss (a timeout, or a closed connection, which beanstalkd does not count), so
``reserves - 1 - releases - buries`` is the number of lost runs. beanstalkd's 32-bit
priority carries ours in its upper 24 bits and, in the lower 8, that number as of the
job's last normal end; a job that comes back with a larger one was lost.
"""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

from queue_core.errors import InvalidArgumentError
from queue_core.model import DEFAULT_PRIORITY

from .protocol import UINT32

PRIORITY_BITS = 24
MAX_PRIORITY = 2**PRIORITY_BITS - 1
LOST_BITS = 8
"""The low bits of beanstalkd's priority that count lost runs; ours is above them."""
LOST_MASK = 0xFF
_BODY = b"QCB1 "
BODY_HEADER_MAX = 64
REASON_TTR = 3600
"""The server ttr of a failure record (never run: a listing reserves it for a moment)."""
"""Bytes our body header (marker, ttr, push time) may take ahead of the payload."""


class Body(NamedTuple):
    """A job's body read back; ttr and push time are None in a body not written by us."""

    ttr: float | None
    pushed_at: float | None
    payload: bytes


_new_body = tuple.__new__  # builds a Body without NamedTuple's Python-level __new__


def whole_seconds(value: float, what: str, minimum: int = 0) -> int:
    """Seconds as beanstalkd takes them (a 32-bit whole number), checked before sending:
    a value it cannot parse would put the connection out of step."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and 0 <= value <= UINT32):
        raise InvalidArgumentError(f"{what} {value!r} is out of range for the beanstalk "
                                   f"driver: 0 to {UINT32} seconds")
    return max(minimum, math.ceil(value))


def encode_priority(priority: int | None, lost: int = 0) -> int:
    """Our priority in beanstalkd's upper 24 bits, the lost runs so far in the lower 8."""
    ours = DEFAULT_PRIORITY if priority is None else priority
    if isinstance(ours, bool) or not isinstance(ours, int) or not 0 <= ours <= MAX_PRIORITY:
        raise InvalidArgumentError(f"priority {ours!r} is out of range for the beanstalk "
                                   f"driver: 0 to {MAX_PRIORITY}")
    return (ours << LOST_BITS) | (lost & LOST_MASK)


def encode_body(payload: bytes, ttr: float, pushed_at: float) -> bytes:
    return b"%s%r %r\n%s" % (_BODY, float(ttr), pushed_at, payload)


def decode_body(body: bytes) -> Body:
    """The header's ttr and push time, and the payload; a body not written by us is all
    payload."""
    if not body.startswith(_BODY):
        return _new_body(Body, (None, None, body))
    head, _, payload = body.partition(b"\n")
    try:
        ttr, pushed = head[len(_BODY):].split()
        return _new_body(Body, (float(ttr), float(pushed), payload))
    except ValueError:
        return _new_body(Body, (None, None, body))


def read_reason(body: bytes) -> dict[str, Any] | None:
    """A failure record of the side tube (``{"id": job id, "error": ..., "finished_at":
    ...}``), or None when it is not one of ours."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or isinstance(data.get("id"), bool) or not isinstance(
            data.get("id"), int):
        return None
    return data
