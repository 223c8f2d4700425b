"""Backoff strategies and retry limits.

A backoff is any callable ``(attempt, error, job) -> seconds``: ``0`` retries at once,
``-1`` (any negative number) gives up and fails the job now. The built-ins are such
callables, with a settings-dict form so they can be configured and travel with a job.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import bounds
from .errors import ConfigError

BackoffFn = Callable[[int, "BaseException | None", Any], float]

GIVE_UP = -1.0


MAX_DOUBLINGS = 1000
"""Past this many doublings any delay is far beyond every cap."""


def _number(value: Any, key: str, *, minimum: float = 0.0, integer: bool = False,
            maximum: float = bounds.MAX_DELAY) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number, got {value!r}", key=key)
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{key} must be a finite number >= {minimum:g}, got {value!r}", key=key)
    if integer and value != int(value):
        raise ConfigError(f"{key} must be a whole number, got {value!r}", key=key)
    if value > maximum:
        limit = f"{maximum:g}" if integer else bounds.span(maximum)
        raise ConfigError(f"{key} must be at most {limit}, got {value!r}", key=key)
    return float(value)


def _jitter(value: Any, key: str) -> float:
    jitter = _number(value, key)
    if jitter > 1:
        raise ConfigError(f"{key} must be between 0 and 1, got {value!r}", key=key)
    return jitter


class Backoff:
    """Built-in strategies. Each instance is a backoff callable."""

    jitter: float = 0.0

    def base_delay(self, attempt: int) -> float:
        raise NotImplementedError

    def __call__(self, attempt: int, error: BaseException | None = None,
                 job: Any = None) -> float:
        delay = self.base_delay(max(1, attempt))
        if self.jitter:
            delay = random.uniform(delay * (1 - self.jitter), delay)
        return delay

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.to_dict().items())))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "type")
        return f"Backoff.{self.to_dict()['type']}({args})"

    @staticmethod
    def fixed(delay: float, jitter: float = 0.0) -> Backoff:
        """The same delay before every retry."""
        return _fixed(delay, jitter, "backoff")

    @staticmethod
    def exponential(delay: float, jitter: float = 0.0,
                    max_delay: float | None = None) -> Backoff:
        """``2**(attempt-1) * delay`` (BullMQ), optionally capped at ``max_delay``."""
        return _exponential(delay, jitter, max_delay, "backoff")

    @staticmethod
    def doubling(min_backoff: float = 0.1, max_backoff: float = 3600.0,
                 max_doublings: int = 16, jitter: float = 0.0) -> Backoff:
        """App Engine: start at ``min_backoff``, double ``max_doublings`` times, then grow
        linearly by the last step, never beyond ``max_backoff``."""
        return _doubling(min_backoff, max_backoff, max_doublings, jitter, "backoff")

    @staticmethod
    def parse(value: Any, key: str = "backoff") -> BackoffFn | None:
        """A backoff from settings or code: None, seconds, a dict, a Backoff, a callable or
        a ``module:attr`` path to one. Never for data read from a payload: see
        :meth:`from_data`."""
        if isinstance(value, str):
            from .settings import import_object
            return Backoff.parse(import_object(value, key), key)
        if callable(value) and not isinstance(value, Backoff):
            return value  # type: ignore[no-any-return]
        return Backoff.from_data(value, key)

    @staticmethod
    def from_data(value: Any, key: str = "backoff") -> Backoff | None:
        """A built-in backoff described as data (None, seconds or a dict), as it travels in
        a payload: nothing is imported or called."""
        if value is None or isinstance(value, Backoff):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _Fixed(_number(value, key))
        if isinstance(value, Mapping):
            return _from_dict(value, key)
        raise ConfigError(f"{key} must be seconds, a dict or a callable, got {value!r}", key=key)


@dataclass(eq=False, repr=False)
class _Fixed(Backoff):
    delay: float
    jitter: float = 0.0

    def base_delay(self, attempt: int) -> float:
        return self.delay

    def to_dict(self) -> dict[str, Any]:
        return {"type": "fixed", "delay": self.delay, "jitter": self.jitter}


@dataclass(eq=False, repr=False)
class _Exponential(Backoff):
    delay: float
    jitter: float = 0.0
    max_delay: float | None = None

    def base_delay(self, attempt: int) -> float:
        # Past 2**1023 the float overflows; any cap is reached long before.
        delay = self.delay * 2.0 ** min(attempt - 1, 1000)
        return delay if self.max_delay is None else min(delay, self.max_delay)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "exponential", "delay": self.delay, "jitter": self.jitter,
                "max_delay": self.max_delay}


@dataclass(eq=False, repr=False)
class _Doubling(Backoff):
    min_backoff: float
    max_backoff: float
    max_doublings: int
    jitter: float = 0.0

    def base_delay(self, attempt: int) -> float:
        retries = attempt - 1
        if retries <= self.max_doublings:
            delay = self.min_backoff * 2.0 ** min(retries, 1000)
        else:
            step = self.min_backoff * 2.0 ** min(self.max_doublings, 1000)
            delay = step * (retries - self.max_doublings + 1)
        return min(delay, self.max_backoff)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "doubling", "min_backoff_seconds": self.min_backoff,
                "max_backoff_seconds": self.max_backoff, "max_doublings": self.max_doublings,
                "jitter": self.jitter}


def _fixed(delay: Any, jitter: Any, key: str) -> Backoff:
    return _Fixed(_number(delay, f"{key}.delay"), _jitter(jitter, f"{key}.jitter"))


def _exponential(delay: Any, jitter: Any, max_delay: Any, key: str) -> Backoff:
    cap = None if max_delay is None else _number(max_delay, f"{key}.max_delay")
    return _Exponential(_number(delay, f"{key}.delay"), _jitter(jitter, f"{key}.jitter"), cap)


def _doubling(min_backoff: Any, max_backoff: Any, max_doublings: Any, jitter: Any,
              key: str) -> Backoff:
    low = _number(min_backoff, f"{key}.min_backoff_seconds")
    high = _number(max_backoff, f"{key}.max_backoff_seconds")
    if high < low:
        raise ConfigError(f"{key}.max_backoff_seconds ({high:g}) is below "
                          f"min_backoff_seconds ({low:g})", key=f"{key}.max_backoff_seconds")
    doublings = int(_number(max_doublings, f"{key}.max_doublings", integer=True,
                            maximum=MAX_DOUBLINGS))
    return _Doubling(low, high, doublings, _jitter(jitter, f"{key}.jitter"))


_APP_ENGINE_KEYS = {"min_backoff_seconds", "max_backoff_seconds", "max_doublings"}
_DICT_KEYS = {
    "fixed": {"type", "delay", "jitter"},
    "exponential": {"type", "delay", "jitter", "max_delay"},
    "doubling": {"type", "jitter", "min", "max", "max_doublings"} | _APP_ENGINE_KEYS,
}


def _from_dict(spec: Mapping[str, Any], key: str) -> Backoff:
    kind = spec.get("type")
    if kind is None:
        kind = "doubling" if _APP_ENGINE_KEYS & set(spec) else None
    if kind not in _DICT_KEYS:
        raise ConfigError(f"{key}.type must be one of fixed, exponential, doubling "
                          f"(or give App Engine keys), got {kind!r}", key=f"{key}.type")
    unknown = set(spec) - _DICT_KEYS[kind]
    if unknown:
        raise ConfigError(f"{key} has unknown key {sorted(unknown)[0]!r} for type {kind!r}",
                          key=f"{key}.{sorted(unknown)[0]}")
    jitter = spec.get("jitter", 0.0)
    if kind in ("fixed", "exponential") and "delay" not in spec:
        raise ConfigError(f"{key}.delay is required for a {kind} backoff", key=f"{key}.delay")
    if kind == "fixed":
        return _fixed(spec["delay"], jitter, key)
    if kind == "exponential":
        return _exponential(spec["delay"], jitter, spec.get("max_delay"), key)
    return _doubling(
        spec.get("min_backoff_seconds", spec.get("min", 0.1)),
        spec.get("max_backoff_seconds", spec.get("max", 3600.0)),
        spec.get("max_doublings", 16), jitter, key)


def backoff_to_meta(value: Any) -> Any:
    """The JSON form of a per-push backoff, which travels inside the payload."""
    parsed = Backoff.parse(value, "push(backoff=)")
    if parsed is None:
        return None
    if isinstance(parsed, Backoff):
        return parsed.to_dict()
    raise ConfigError("push(backoff=) takes seconds, a dict or a built-in Backoff; a custom "
                      "callable cannot travel with one job: set it as the job class's "
                      "'backoff' attribute or the queue's 'backoff' setting", key="backoff")


def evaluate_backoff(backoff: BackoffFn | None, attempt: int, error: BaseException | None,
                     job: Any, limit: float = bounds.MAX_DELAY) -> float | None:
    """Seconds to wait before the retry (at most ``limit``: a strategy that grows past the
    longest delay the driver can hold waits that long), or None to give up.

    Raises ValueError when a custom backoff returns something that is not a number."""
    if backoff is None:
        return 0.0
    delay = backoff(attempt, error, job)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or math.isnan(delay):
        raise ValueError(f"backoff {backoff!r} returned {delay!r}; expected seconds, "
                         "0 to retry now or -1 to give up")
    if delay < 0:
        return None
    return float(min(delay, limit))


@dataclass(frozen=True)
class RetryLimits:
    """Yii ``attempts`` and App Engine ``task_age_limit``.

    With both set, a job stops retrying only when both are exceeded. ``attempts=None``
    means no limit on runs."""

    attempts: int | None = 1
    age_limit: float | None = None

    def allows_retry(self, attempt: int, age: float | None) -> bool:
        runs_left = self.attempts is None or attempt < self.attempts
        if self.age_limit is None:
            return runs_left
        young = age is None or age < self.age_limit
        if self.attempts is None:
            return young
        return runs_left or young
