"""The bounds every number must keep before it reaches a timer, a formula or a driver.

ttr, delay, attempts and backoff are checked here at push, in settings and on read, so a
value too large for ``setitimer``, a timestamp or a wire format is refused with a
sentence naming it and its limit. A driver whose back end allows less declares it in
its Capabilities (``max_delay``, ``priority_range``, a payload limit).
"""

from __future__ import annotations

import math
from typing import Any

from .errors import InvalidArgumentError

DAY = 86400.0
MAX_TTR = 30 * DAY
"""The longest time limit (and lease) a job may have."""
MAX_DELAY = 366 * DAY
"""The longest delay before a job (or a retry) is ready, unless a driver allows less."""
MAX_ATTEMPTS = 1_000_000
"""The largest ``attempts``; ``None`` means no limit at all."""
MAX_RUN = 10**9
"""The largest attempt number a store may report for a job."""


def span(seconds: float) -> str:
    """``31622400 seconds (366 days)``: a limit as a reader checks it."""
    text = f"{int(seconds)}" if float(seconds).is_integer() else f"{seconds:g}"
    if seconds >= DAY and seconds % DAY == 0:
        days = int(seconds // DAY)
        return f"{text} seconds ({days} day{'s' if days != 1 else ''})"
    return f"{text} seconds"


def seconds(value: Any, what: str, *, limit: float, positive: bool = False,
            whose: str = "queue-core's") -> float:
    """A finite number of seconds within ``[0, limit]`` (``(0, limit]`` if ``positive``).

    Raises InvalidArgumentError naming ``what``, the value and, when it is too large,
    ``whose`` limit it passed."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value < 0 or (positive and value == 0)):
        kind = "a positive number of seconds" if positive else "a number of seconds >= 0"
        raise InvalidArgumentError(f"{what} must be {kind}, got {value!r}")
    if value > limit:
        raise InvalidArgumentError(f"{what} {value!r} is above {whose} limit of "
                                   f"{span(limit)}")
    return float(value)


def ttr(value: Any, what: str = "ttr") -> float:
    return seconds(value, what, limit=MAX_TTR, positive=True)


def delay_limit(max_delay: float | None) -> float:
    """The longest delay on a driver that declares ``max_delay`` (None: no limit of its own)."""
    return MAX_DELAY if max_delay is None else min(MAX_DELAY, max_delay)


def attempts(value: Any, what: str = "attempts") -> int | None:
    """A whole number of runs from 1 to MAX_ATTEMPTS, or None for no limit."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not (
            1 <= value <= MAX_ATTEMPTS):
        raise InvalidArgumentError(f"{what} must be a whole number from 1 to {MAX_ATTEMPTS} "
                                   f"(or None for no limit), got {value!r}")
    return value


MAX_CONCURRENCY = 10_000
"""The most jobs one worker process may have in flight."""
ASYNC_CONCURRENCY = 100
"""How many ``async def`` jobs a worker at concurrency 1 runs side by side, unless set."""


def concurrency(value: Any, what: str = "concurrency") -> int:
    """How many jobs one worker runs at once: a whole number from 1 to MAX_CONCURRENCY."""
    if isinstance(value, bool) or not isinstance(value, int) or not (
            1 <= value <= MAX_CONCURRENCY):
        raise InvalidArgumentError(f"{what} must be a whole number from 1 to "
                                   f"{MAX_CONCURRENCY}, got {value!r}")
    return value
