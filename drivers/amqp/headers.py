"""The headers a job carries on AMQP (``qc-``): which belong to one attempt, which texts
are cut to fit a frame and which numbers never are, and how their values are read back.

A job's attempts so far, its ttr and first push time travel in its headers; a copy of it
(a retry, a counted lost run, a failed job) carries the job's own headers and sets these
anew.
"""

from __future__ import annotations

from typing import Any

TRACEBACK_LIMIT = 32768
"""Bytes of UTF-8 of a traceback kept in the failed store (its end); less when the
connection's frame_max leaves less room (see ``AmqpDriver._fit``)."""
ERROR_LIMIT = 8192
"""Bytes of an error message kept in the failed store (its start)."""
ERROR_TYPE_LIMIT = 1000

_OUR_HEADERS = ("qc-attempt", "qc-lost", "qc-unproven", "qc-losses", "qc-error-type",
                "qc-error", "qc-traceback", "qc-failed-at")
SHORTENED = (("qc-traceback", True, TRACEBACK_LIMIT), ("qc-error", False, ERROR_LIMIT),
             ("qc-error-type", False, ERROR_TYPE_LIMIT))
"""The headers that are cut, to these bytes and further when a copy's headers would not
fit in a frame (a traceback keeps its end, where the error is)."""
_COUNTS = frozenset({"qc-ttr", "qc-pushed", "qc-attempt", "qc-lost", "qc-unproven",
                     "qc-losses", "qc-failed-at"})


def kept_whole(key: str, value: Any) -> bool:
    """Headers never left out of a copy to make it fit: the numbers the driver reads back."""
    return key in _COUNTS and type(value) is int


def as_int(value: Any, default: int = 0) -> int:
    """A header's value as a number, or ``default`` when it is not an integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return int(value)


def as_text(value: Any) -> str:
    """A header's value (or bytes, or nothing) as text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def carried(headers: dict[str, Any]) -> dict[str, Any]:
    """The headers a copy keeps: the job's own, without the broker's (``x-``) and without
    what belongs to one attempt."""
    return {key: value for key, value in headers.items()
            if not key.startswith("x-") and key not in _OUR_HEADERS}
