"""What a store hands back is untrusted: the one check of a reserved job, in the core.

A driver builds each Message from whatever it read, converting fields with the lenient
helpers below, which never raise: a field that is not what it should be stays as it was
read. The worker then calls :func:`damage` before any decision; a message it names a
problem for goes to FAILED with that reason instead of stalling, vanishing or crashing
the worker.
"""

from __future__ import annotations

import math
from typing import Any

from . import bounds
from .driver import Message


def as_int(raw: Any) -> Any:
    """An int from a stored value (bytes, text or number), or the value as it was."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, (bytes, bytearray, str)):
        try:
            return int(raw)
        except ValueError:
            return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    return raw


def as_float(raw: Any) -> Any:
    """A float from a stored value (bytes, text or number), or the value as it was."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, (bytes, bytearray, str)):
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


def as_bytes(raw: Any) -> Any:
    """Bytes from a stored payload (text is UTF-8), or the value as it was."""
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, (bytearray, memoryview)):
        return bytes(raw)
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass")
    return raw


def as_time(raw: Any) -> float | None:
    """A stored number of seconds (a time, a duration) as a finite float, or None when it
    is not one: what an admin call shows of a field it cannot read."""
    value = as_float(raw)
    return value if type(value) is float and math.isfinite(value) else None


def usable_ttr(ttr: Any) -> bool:
    """Whether a stored ttr can be a timer and a lease: a number in (0, MAX_TTR]."""
    return (not isinstance(ttr, bool) and isinstance(ttr, (int, float))
            and 0 < ttr <= bounds.MAX_TTR)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def damage(message: Message) -> str | None:
    """Why a reserved message cannot be trusted with a decision, or None when it can."""
    attempt, ttr, priority, pushed = (message.attempt, message.ttr, message.priority,
                                      message.pushed_at)
    # Once per job: the common case in one expression (comparisons with NaN are false).
    if (type(message.payload) is bytes and type(attempt) is int
            and 1 <= attempt <= bounds.MAX_RUN and type(ttr) is float
            and 0 < ttr <= bounds.MAX_TTR and (priority is None or type(priority) is int)
            and (pushed is None or (type(pushed) is float and 0 <= pushed < math.inf))):
        return None
    return _explain(message)


def _explain(message: Message) -> str | None:
    if not isinstance(message.payload, bytes):
        return f"its payload is {type(message.payload).__name__}, not bytes"
    attempt = message.attempt
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not (
            1 <= attempt <= bounds.MAX_RUN):
        return f"its attempt count {_shown(attempt)} is not a whole number from 1 to " \
               f"{bounds.MAX_RUN}"
    ttr = message.ttr
    if not usable_ttr(ttr):
        return f"its ttr {_shown(ttr)} is not a number of seconds in (0, {bounds.MAX_TTR:g}]"
    priority = message.priority
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        return f"its priority {_shown(priority)} is not a whole number"
    pushed = message.pushed_at
    if pushed is not None and (isinstance(pushed, bool) or not isinstance(pushed, (int, float))
                               or not math.isfinite(pushed) or pushed < 0):
        return f"its push time {_shown(pushed)} is not a time"
    return None
