"""Retention of finished jobs: the ``keep_completed`` / ``keep_failed`` settings read into
a Retention, and the pace at which a driver whose trim costs a scan trims.

A setting is ``True`` / ``False`` (keep every finished job, or none), a whole number (keep
at most that many, the newest) or a dict ``{"max_count": 10000, "max_age": 86400}`` with
either key or both (``max_age`` in seconds). The core reads and checks it here; drivers
are handed the Retention and only store and trim.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError
from .model import KEEP_ALL, Retention

MAX_COUNT = 10**12
"""The largest ``max_count``: far above any store, and exact in a Lua number or a
BIGINT."""
MAX_AGE = 100 * 366 * 86400.0
"""The largest ``max_age`` (about a century): a finish time plus it stays a timestamp."""
KEYS = ("max_count", "max_age")


def parse_keep(value: Any, key: str) -> tuple[bool, Retention]:
    """``(kept, limits)`` for a ``keep_completed`` / ``keep_failed`` value; ConfigError
    naming ``key`` and the problem for anything else."""
    if isinstance(value, bool):
        return value, KEEP_ALL
    if isinstance(value, int):
        return True, Retention(max_count=_count(value, key))
    if isinstance(value, Mapping):
        return True, _from_dict(value, key)
    raise ConfigError(f"{key} must be true, false, a whole number (the most jobs to keep) "
                      f"or a dict with max_count and/or max_age, got {value!r}", key=key)


def _from_dict(value: Mapping[Any, Any], key: str) -> Retention:
    unknown = [name for name in value if name not in KEYS]
    if unknown:
        raise ConfigError(f"{key}: unknown key {unknown[0]!r}; the keys are max_count "
                          "and max_age", key=f"{key}.{unknown[0]}")
    if not value:
        raise ConfigError(f"{key}: an empty dict sets no limit; give max_count and/or "
                          "max_age, or true to keep every job", key=key)
    count = value.get("max_count")
    age = value.get("max_age")
    return Retention(
        max_count=None if count is None else _count(count, f"{key}.max_count"),
        max_age=None if age is None else _age(age, f"{key}.max_age"))


def _count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be a whole number of jobs, got {value!r}", key=key)
    if value < 1:
        raise ConfigError(f"{key} must be at least 1, got {value!r} (to keep no job, set "
                          "the setting to false)", key=key)
    if value > MAX_COUNT:
        raise ConfigError(f"{key} {value!r} is above the limit of {MAX_COUNT}", key=key)
    return value


def _age(value: Any, key: str) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value)):
        raise ConfigError(f"{key} must be a number of seconds, got {value!r}", key=key)
    if value <= 0:
        raise ConfigError(f"{key} must be a positive number of seconds, got {value!r} (to "
                          "keep no job, set the setting to false)", key=key)
    if value > MAX_AGE:
        raise ConfigError(f"{key} {value!r} is above the limit of {MAX_AGE:.0f} seconds",
                          key=key)
    return float(value)


def describe(kept: bool, retention: Retention) -> str:
    """The setting as a sentence fragment, for messages: ``at most 1000, for 60 s``."""
    if not kept:
        return "none"
    parts = []
    if retention.max_count is not None:
        parts.append(f"at most {retention.max_count}")
    if retention.max_age is not None:
        parts.append(f"for {retention.max_age:g} s")
    return ", ".join(parts) or "all"


TRIM_EVERY = 100
"""Kept jobs between two trims when no count sets the pace (an age limit alone)."""
TRIM_INTERVAL = 1.0
"""Seconds after which the next kept job trims anyway, so that a slow queue trims too."""
SCAN_RATE = 10_000
"""Entries a trim may read per second, at most, on average (a long listing or index walk
spaces its trims out)."""


class TrimPacer:
    """When a driver whose trim reads the kept jobs (an index walk of ``max_count``
    entries, a directory listing) trims: after every ``every`` kept jobs, when a kept job
    comes ``interval`` seconds after the last trim, and when the consumer closes.

    ``every`` starts at a tenth of ``max_count`` (TRIM_EVERY with an age limit alone) and
    grows to a tenth of what the last trim read, so that trimming reads about ten entries
    per kept job whatever the size of the store; ``interval`` grows with it so that a trim
    reads at most about SCAN_RATE entries a second. Between two trims a store may hold up
    to ``every`` jobs per consumer beyond ``max_count``, and keep jobs older than
    ``max_age`` for up to ``interval`` seconds or ``every`` jobs."""

    def __init__(self, retention: Retention) -> None:
        self.retention = retention
        count = retention.max_count
        self._base_every = TRIM_EVERY if count is None else max(1, count // 10)
        age = retention.max_age
        self._base_interval = TRIM_INTERVAL if age is None else min(TRIM_INTERVAL, age / 4)
        self.every = self._base_every
        self.interval = self._base_interval
        self.pending = 0
        """Jobs kept since the last trim."""
        self._last = time.monotonic()

    def kept(self, count: int = 1) -> bool:
        """``count`` more jobs were kept; True when the driver should trim now."""
        if not self.retention.limited or count <= 0:
            return False
        self.pending += count
        return (self.pending >= self.every
                or time.monotonic() - self._last >= self.interval)

    def trimmed(self, scanned: int = 0) -> None:
        """A trim ran, reading ``scanned`` entries (directory entries, index entries)."""
        self.pending = 0
        self._last = time.monotonic()
        self.every = max(self._base_every, scanned // 10)
        self.interval = max(self._base_interval, scanned / SCAN_RATE)
