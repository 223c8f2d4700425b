"""Queue rate limits with App Engine's queue.yaml meaning: the settings, and the contract a
driver's limiter keeps.

``rate`` ("20/s", "100/m", "5000/h", "2/d", or a number of jobs per second) fills a token
bucket of ``bucket_size`` tokens (the burst; by default a fifth of a second's rate, from 5
to 500, see ``default_bucket_size``); a job begins only
with a token. ``max_concurrent`` bounds the jobs running at once: each holds a slot,
leased like the job itself so that a worker killed mid-job does not keep its slot. The
same three are class attributes of a job type. The core decides which job may begin
(throttle.py); a driver that declares ``Capabilities.rate_limit`` keeps the buckets and
slots where every worker of every host sees them (``Store.limiter``), and ``take_tokens``
here is the algorithm the in-process, file and SQL limiters share.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .errors import ConfigError

DEFAULT_BUCKET_SIZE = 5
"""The smallest default ``bucket_size`` (App Engine queue.yaml's default)."""
DEFAULT_BURST_MAX = 500
"""The largest default ``bucket_size`` (Cloud Tasks' largest burst)."""
MAX_BUCKET_SIZE = 1_000_000
MAX_RATE = 1e9
"""Jobs per second; above it a rate is no limit worth a round trip anyway."""
MAX_CONCURRENT = 1_000_000
SLOT_POLL = 0.05
"""Seconds a worker waits before asking again for a slot that no lease frees sooner."""

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RATE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*/\s*([smhd])\s*$")
LIMIT_KEYS = ("rate", "bucket_size", "max_concurrent")


def parse_rate(value: Any, key: str = "rate") -> float | None:
    """Jobs per second from "20/s", "100/m", "5000/h", "2/d" or a number (per second);
    None stays None. ConfigError naming ``key`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be like '20/s', '100/m', '5000/h' or a number of jobs "
                          f"per second, got {value!r}", key=key)
    if isinstance(value, (int, float)):
        rate = float(value)
    elif isinstance(value, str) and (found := _RATE_RE.match(value)):
        rate = float(found.group(1)) / _UNITS[found.group(2)]
    else:
        raise ConfigError(f"{key} must be like '20/s', '100/m', '5000/h' or a number of jobs "
                          f"per second, got {value!r}", key=key)
    if not math.isfinite(rate) or rate <= 0 or rate > MAX_RATE:
        raise ConfigError(f"{key} must be above 0 and at most {MAX_RATE:g} jobs per second, "
                          f"got {value!r}", key=key)
    return rate


def _whole(value: Any, key: str, upper: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper:
        raise ConfigError(f"{key} must be a whole number from 1 to {upper}, got {value!r}",
                          key=key)
    return value


@dataclass(frozen=True)
class Limit:
    """One limit: a token bucket, a bound on jobs running at once, or both."""

    name: str
    """Where it is kept: ``queue`` for the queue's own, ``job:<job name>`` for a type's."""
    rate: float | None = None
    """Tokens added per second (None: no rate limit)."""
    bucket_size: int = DEFAULT_BUCKET_SIZE
    max_concurrent: int | None = None

    @property
    def limited(self) -> bool:
        return self.rate is not None or self.max_concurrent is not None


def parse_limit(name: str, rate: Any, bucket_size: Any, max_concurrent: Any,
                where: str = "") -> Limit | None:
    """The limit the three settings make (None when none is set); ConfigError naming the
    key (``where`` goes before it: a class name)."""
    prefix = f"{where}." if where else ""
    per_second = parse_rate(rate, f"{prefix}rate")
    burst = _whole(bucket_size, f"{prefix}bucket_size", MAX_BUCKET_SIZE)
    concurrent = _whole(max_concurrent, f"{prefix}max_concurrent", MAX_CONCURRENT)
    if burst is not None and per_second is None:
        raise ConfigError(f"{prefix}bucket_size is the burst of a rate: set {prefix}rate too",
                          key=f"{prefix}bucket_size")
    if per_second is None and concurrent is None:
        return None
    return Limit(name, per_second, default_bucket_size(per_second) if burst is None else burst,
                 concurrent)


def default_bucket_size(per_second: float | None) -> int:
    """The burst of a rate given without ``bucket_size``: a fifth of a second's rate, at
    least App Engine's 5 and at most 500. Cloud Tasks, App Engine queues' successor, also
    picks the burst from the rate: a fixed 5 would make a high rate cost one call to the
    back end per 5 jobs, while bounding nothing a rate that high means to bound."""
    if per_second is None:
        return DEFAULT_BUCKET_SIZE
    return min(DEFAULT_BURST_MAX, max(DEFAULT_BUCKET_SIZE, math.ceil(per_second / 5)))


def job_limit(kind: type) -> Limit | None:
    """The limit a job class declares with its ``rate``, ``bucket_size`` and
    ``max_concurrent`` class attributes; ConfigError naming the class when one is bad.
    A dataclass field of the same name is the job's data, not a limit."""
    data = {f.name for f in dataclasses.fields(kind)} if dataclasses.is_dataclass(kind) else set()
    values = {key: None if key in data else getattr(kind, key, None) for key in LIMIT_KEYS}
    name = getattr(kind, "job_name", None) or f"{kind.__module__}.{kind.__qualname__}"
    return parse_limit(f"job:{name}", values["rate"], values["bucket_size"],
                       values["max_concurrent"], where=kind.__qualname__)


class Want(NamedTuple):
    """One job asking to begin: the limits it must pass (indexes into the call's limits),
    the slot token it holds while it runs, and the lease of that slot in seconds."""

    limits: tuple[int, ...]
    slot: str
    lease: float


class Limiter(ABC):
    """A driver's shared buckets and slots (``Store.limiter``). Both calls are atomic
    across every worker of every host that shares the back end."""

    @abstractmethod
    def acquire(self, limits: Sequence[Limit], wants: Sequence[Want]) -> tuple[list[bool], float]:
        """For each want in order: grant it when every limit it names has a token and a
        free slot, and take them (a slot under the want's token, until its lease ends).
        Returns a grant per want and, when any was refused, the seconds until a refused
        one could pass (a token's refill, or ``SLOT_POLL``); 0 when all were granted."""

    @abstractmethod
    def release(self, slots: Sequence[tuple[str, str]]) -> None:
        """Free slots: (limit name, slot token) pairs of runs that settled."""


@dataclass
class Bucket:
    """The state of one limit: tokens at ``at`` (seconds) and held slots (token -> lease
    end)."""

    tokens: float = -1.0
    """Below 0: never filled (a new bucket starts full)."""
    at: float = 0.0
    slots: dict[str, float] = field(default_factory=dict)

    def as_data(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "at": self.at, "slots": self.slots}

    @classmethod
    def from_data(cls, data: Any) -> Bucket:
        """A bucket read back from a store; anything unusable reads as a new bucket (full,
        no slots held): a damaged row loosens a limit for a moment, never stops a queue."""
        if not isinstance(data, Mapping):
            return cls()
        tokens: Any = data.get("tokens")
        at: Any = data.get("at")
        slots: Any = data.get("slots")
        if not _finite(tokens) or not _finite(at):
            return cls()
        held = {str(k): float(v) for k, v in slots.items() if _finite(v)} if isinstance(
            slots, Mapping) else {}
        return cls(float(tokens), float(at), held)


def _finite(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def take_tokens(buckets: Mapping[str, Bucket], limits: Sequence[Limit], wants: Sequence[Want],
                now: float) -> tuple[list[bool], float]:
    """``Limiter.acquire`` on ``buckets`` (one per limit name, changed in place) at time
    ``now`` (seconds, the back end's clock)."""
    for limit in limits:
        bucket = buckets[limit.name]
        if limit.rate is not None:
            if bucket.tokens < 0:
                bucket.tokens = float(limit.bucket_size)  # a new bucket starts full
            elif now > bucket.at:
                # (A clock behind the last call's refills nothing: never a burst.)
                bucket.tokens = min(float(limit.bucket_size),
                                    bucket.tokens + (now - bucket.at) * limit.rate)
            bucket.at = max(bucket.at, now)
        if bucket.slots:
            for token in [t for t, end in bucket.slots.items() if end <= now]:
                del bucket.slots[token]
    granted = []
    wait = math.inf
    for want in wants:
        ok = True
        for index in want.limits:
            limit = limits[index]
            bucket = buckets[limit.name]
            if limit.rate is not None and bucket.tokens < 1.0:
                ok = False
                wait = min(wait, (1.0 - bucket.tokens) / limit.rate)
            if limit.max_concurrent is not None and len(bucket.slots) >= limit.max_concurrent:
                ok = False
                soonest = min(bucket.slots.values(), default=now) - now
                wait = min(wait, max(0.0, min(soonest, SLOT_POLL)))
        if ok:
            for index in want.limits:
                limit = limits[index]
                bucket = buckets[limit.name]
                if limit.rate is not None:
                    bucket.tokens -= 1.0
                if limit.max_concurrent is not None:
                    bucket.slots[want.slot] = now + want.lease
        granted.append(ok)
    return granted, (0.0 if all(granted) else wait)


class LocalLimiter(Limiter):
    """Buckets in this process (the memory driver): a lock makes each call atomic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clock = time.monotonic
        self._buckets: dict[str, Bucket] = {}

    def acquire(self, limits: Sequence[Limit], wants: Sequence[Want]) -> tuple[list[bool], float]:
        with self._lock:
            buckets = {limit.name: self._buckets.setdefault(limit.name, Bucket())
                       for limit in limits}
            return take_tokens(buckets, limits, wants, self._clock())

    def release(self, slots: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            for name, token in slots:
                bucket = self._buckets.get(name)
                if bucket is not None:
                    bucket.slots.pop(token, None)
