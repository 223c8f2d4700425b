"""Unique jobs: the checks on a unique key and its ``unique_for``, and which apply to a push.

A push with a unique key stores nothing while a job with that key is waiting, delayed or
running (or, with ``unique_for``, for that many seconds after the push that took the key):
it returns the id of the job that holds the key. The store decides in the same atomic
step as its insert, so the core only checks the values and refuses them on a driver that
does not declare ``Capabilities.unique``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from . import bounds
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from .job import Job

MAX_KEY = 200
"""The longest unique key, in characters (it becomes part of a Redis key, a file name
once hashed, and an indexed column)."""
MAX_FOR = bounds.MAX_DELAY
"""The longest ``unique_for``."""


def check_key(value: Any, what: str = "unique_key") -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_KEY:
        raise InvalidArgumentError(f"{what} is {len(value)} characters long; the limit is "
                                   f"{MAX_KEY}")
    if "\0" in value:
        raise InvalidArgumentError(f"{what} must not contain a NUL character")
    return value


def check_for(value: Any, what: str = "unique_for") -> float | None:
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value <= 0):
        raise InvalidArgumentError(f"{what} must be a finite number of seconds > 0, "
                                   f"got {value!r}")
    if value > MAX_FOR:
        raise InvalidArgumentError(f"{what} {value!r} is above queue-core's limit of "
                                   f"{bounds.span(MAX_FOR)}")
    return float(value)


def resolve(job: Job, key: str | None, unique_for: float | None
            ) -> tuple[str | None, float | None]:
    """The key and window of one push: the push arguments, else the job's
    ``get_unique_key()`` and class ``unique_for``. No key: (None, None)."""
    if key is None:
        hook = getattr(job, "get_unique_key", None)
        found = hook() if hook is not None else None
        if found is None:
            if unique_for is not None:
                check_for(unique_for)
            return None, None
        key = check_key(found, f"{type(job).__qualname__}.get_unique_key()")
    else:
        key = check_key(key)
    if unique_for is None:
        window = getattr(type(job), "unique_for", None)
        return key, check_for(window, f"{type(job).__qualname__}.unique_for")
    return key, check_for(unique_for)
