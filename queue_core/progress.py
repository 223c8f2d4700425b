"""A job's progress: the checks on what a job reports, the one stored form every driver
keeps (a small JSON object), and the reading back of it, which trusts nothing.

A job reports with ``self.progress(fraction, message)`` (job.py); the run's control
(control.py) throttles the writes and stores the last value before the job's outcome.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

from .errors import InvalidArgumentError
from .model import Progress

logger = logging.getLogger(__name__)

MAX_MESSAGE = 1000
"""Characters of a progress message that are kept; a longer one is cut with an ellipsis."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""Characters a message read back loses (shown as '?'): it is printed on terminals."""
MAX_STORED = 8 * MAX_MESSAGE
"""Bytes of a stored progress record read back at most (JSON escapes can grow a message)."""


def check(fraction: Any, message: Any = "") -> tuple[float, str]:
    """The reported values, checked: ``fraction`` a finite number in [0, 1], ``message`` a
    str (cut to ``MAX_MESSAGE`` characters)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise InvalidArgumentError(f"progress fraction must be a number in [0, 1], "
                                   f"got {fraction!r}")
    value = float(fraction)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidArgumentError(f"progress fraction must be a finite number in [0, 1], "
                                   f"got {fraction!r}")
    if not isinstance(message, str):
        raise InvalidArgumentError(f"progress message must be a str, got "
                                   f"{type(message).__name__}")
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - 1] + "\u2026"
    return value, message


def encode(progress: Progress) -> str:
    """The stored form: ``{"f": fraction, "m": message, "at": time}``."""
    return json.dumps({"f": progress.fraction, "m": progress.message, "at": progress.at},
                      ensure_ascii=False, separators=(",", ":"))


def decode(raw: object, job_id: str = "?") -> Progress | None:
    """A stored progress record read back, or None when there is none or it is not one
    (logged: a damaged record never fails a lookup)."""
    if raw is None or raw == "" or raw == b"":
        return None
    try:
        if isinstance(raw, (bytes, bytearray, memoryview)):
            raw = bytes(raw).decode("utf-8")
        if not isinstance(raw, str):
            raise ValueError(f"a {type(raw).__name__}, not text")
        if len(raw) > MAX_STORED:
            raise ValueError(f"{len(raw)} characters long")
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        fraction, message = check(data.get("f"), data.get("m", ""))
        at = data.get("at", 0.0)
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
            raise ValueError(f"its time is {at!r}")
        return Progress(fraction, _CONTROL.sub("?", message), float(at))
    except (ValueError, TypeError, RecursionError, InvalidArgumentError) as exc:
        logger.warning("job %s: its stored progress is unreadable and is ignored (%s)",
                       job_id, exc)
        return None


def cancel_mark(raw: object, job_id: str = "?") -> bool:
    """Whether a stored cancel mark (the time of the request, a number) asks for a cancel.
    Anything else is a damaged mark: logged and ignored, so that junk never stops a job."""
    if raw is None or raw == "" or raw == b"":
        return False
    try:
        if isinstance(raw, (bytes, bytearray)):
            raw = bytes(raw).decode("ascii")
        value = float(raw) if isinstance(raw, str) and len(raw) < 40 else raw
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(repr(raw)[:80])
        if not math.isfinite(value) or value <= 0:
            raise ValueError(repr(raw)[:80])
        return True
    except (ValueError, UnicodeDecodeError) as exc:
        logger.warning("job %s: its stored cancel mark is unreadable and is ignored (%s)",
                       job_id, exc)
        return False
