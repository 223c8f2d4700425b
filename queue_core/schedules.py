"""Periodic schedules as settings: their checks, and when each one fires.

``schedules`` is a list of ``{"name", "job", "args", "cron", "timezone"}`` or
``{"name", "job", "args", "every"}``; ``catch_up`` says what becomes of firings missed
while no scheduler ran ("none", "latest" or ``{"all": limit}``). Everything is checked
when the queue is built and refused with ConfigError naming the key. The job is named by
settings only ("module:Class", or a registered job name) and resolved when a scheduler
starts, after the worker's imports; nothing read from a store ever names one.

Cron expressions are read by cronsim (the ``schedules`` extra), imported only when a
schedule has one: a small, pure-Python library written for Healthchecks.io that computes
firings across DST changes the way Debian's cron does (a local time skipped in spring
fires at the first minute after it; one repeated in autumn fires once). Time zones come
from zoneinfo (the ``tzdata`` package where the system has none).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .job import Job

UTC = timezone.utc
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
KEYS = frozenset({"name", "job", "args", "cron", "timezone", "every"})
MIN_EVERY = 1.0
"""The shortest interval, in seconds."""
MAX_EVERY = 366 * 86400.0
MAX_CATCH_UP = 1000
"""The most missed firings ``{"all": limit}`` may push at once."""


@dataclass(frozen=True)
class CatchUp:
    """How many of the firings missed while no scheduler ran are pushed: 0 (none), 1
    (the latest) or up to ``limit`` (all, newest first)."""

    count: int

    def __str__(self) -> str:
        return {0: "none", 1: "latest"}.get(self.count, f"all (up to {self.count})")


def parse_catch_up(value: Any, key: str = "catch_up") -> CatchUp:
    if value is None or value == "none":
        return CatchUp(0)
    if value == "latest":
        return CatchUp(1)
    if isinstance(value, Mapping) and set(value) == {"all"}:
        limit = value["all"]
        if isinstance(limit, bool) or not isinstance(limit, int) or not (
                1 <= limit <= MAX_CATCH_UP):
            raise ConfigError(f"{key}.all must be a whole number from 1 to {MAX_CATCH_UP}, "
                              f"got {limit!r}", key=f"{key}.all")
        return CatchUp(limit)
    raise ConfigError(f"{key} must be 'none', 'latest' or {{'all': limit}}, got {value!r}",
                      key=key)


@dataclass(frozen=True)
class Schedule:
    """One schedule, checked. Fire times are aware datetimes in UTC."""

    name: str
    job: str
    """'module:Class' or a registered job name, as the settings give it."""
    args: Mapping[str, Any] = field(default_factory=dict)
    cron: str | None = None
    timezone: str = "UTC"
    every: float | None = None

    # -- when it fires ---------------------------------------------------------------

    def after(self, moment: datetime) -> Iterator[datetime]:
        """The fire times strictly after ``moment``, in order."""
        if self.every is not None:
            step = self.every
            number = math.floor(moment.timestamp() / step) + 1
            while True:
                yield datetime.fromtimestamp(number * step, UTC)
                number += 1
        else:
            from cronsim import CronSim
            zone = _zone(self.timezone)
            for fire in CronSim(str(self.cron), moment.astimezone(zone)):
                found = fire.astimezone(UTC)
                # From the second pass of an hour that autumn repeats, cronsim gives the
                # firing of the first pass, which is already past: skipped, so that a
                # time repeated fires once.
                if found > moment:
                    yield found

    def before(self, moment: datetime) -> Iterator[datetime]:
        """The fire times at or before ``moment``, newest first."""
        if self.every is not None:
            step = self.every
            number = math.floor(moment.timestamp() / step)
            while number >= 0:
                yield datetime.fromtimestamp(number * step, UTC)
                number -= 1
        else:
            from cronsim import CronSim
            zone = _zone(self.timezone)
            # CronSim goes back from strictly before its start; firings fall on whole
            # seconds, so the next whole second includes ``moment`` itself.
            start = moment.replace(microsecond=0) + timedelta(seconds=1)
            for fire in CronSim(str(self.cron), start.astimezone(zone), reverse=True):
                found = fire.astimezone(UTC)
                if found <= moment:  # (an hour autumn repeats, as in ``after``)
                    yield found

    def nth_after(self, fire: datetime, count: int) -> datetime:
        """The ``count``-th fire time after ``fire`` (``fire`` itself for 0)."""
        if count <= 0:
            return fire
        if self.every is not None:
            return fire + timedelta(seconds=self.every * count)
        upcoming = self.after(fire)
        found = fire
        for _ in range(count):
            found = next(upcoming)
        return found


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo
    return ZoneInfo(name)


def parse_schedules(value: Any, key: str = "schedules") -> tuple[Schedule, ...]:
    """The ``schedules`` setting, each checked; ConfigError names the key at fault."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key} must be a list of schedules, got {value!r}", key=key)
    found: list[Schedule] = []
    names: set[str] = set()
    for index, raw in enumerate(value):
        where = f"{key}[{index}]"
        schedule = parse_schedule(raw, where)
        if schedule.name in names:
            raise ConfigError(f"{where}.name: the name {schedule.name!r} is given twice",
                              key=f"{where}.name")
        names.add(schedule.name)
        found.append(schedule)
    return tuple(found)


def parse_schedule(raw: Any, where: str) -> Schedule:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a dict, got {raw!r}", key=where)
    unknown = set(raw) - KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(map(str, unknown))[0]!r}; a schedule "
                          f"has {', '.join(sorted(KEYS))}", key=where)
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(f"{where}.name must be 1 to 100 letters, digits, '_', '.', ':' or "
                          f"'-', starting with a letter or digit, got {name!r}",
                          key=f"{where}.name")
    job = raw.get("job")
    if not isinstance(job, str) or not job.strip():
        raise ConfigError(f"{where}.job must name a job class ('module:Class' or a "
                          f"registered job name), got {job!r}", key=f"{where}.job")
    args = raw.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, Mapping) or not all(isinstance(k, str) for k in args):
        raise ConfigError(f"{where}.args must be a dict of argument name -> value, got "
                          f"{args!r}", key=f"{where}.args")
    has_cron, has_every = "cron" in raw, "every" in raw
    if has_cron == has_every:
        raise ConfigError(f"{where} needs either 'cron' or 'every' (not both)", key=where)
    if has_every:
        if "timezone" in raw:
            raise ConfigError(f"{where}.timezone applies to 'cron' only", key=f"{where}.timezone")
        every = raw["every"]
        if isinstance(every, bool) or not isinstance(every, (int, float)) or not (
                math.isfinite(every) and MIN_EVERY <= every <= MAX_EVERY):
            raise ConfigError(f"{where}.every must be a number of seconds from {MIN_EVERY:g} "
                              f"to {MAX_EVERY:g}, got {every!r}", key=f"{where}.every")
        return Schedule(name, job.strip(), dict(args), every=float(every))
    zone = raw.get("timezone", "UTC")
    if not isinstance(zone, str) or not zone:
        raise ConfigError(f"{where}.timezone must be an IANA time zone name like "
                          f"'Europe/Paris', got {zone!r}", key=f"{where}.timezone")
    try:
        _zone(zone)
    except (ValueError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError... and more
        raise ConfigError(f"{where}.timezone: unknown time zone {zone!r} ({exc})",
                          key=f"{where}.timezone") from None
    except KeyError:
        raise ConfigError(f"{where}.timezone: unknown time zone {zone!r} (install the "
                          "tzdata package where the system has no zone files)",
                          key=f"{where}.timezone") from None
    cron = raw["cron"]
    if not isinstance(cron, str) or not cron.strip():
        raise ConfigError(f"{where}.cron must be a cron expression like '*/5 * * * *', got "
                          f"{cron!r}", key=f"{where}.cron")
    try:
        from cronsim import CronSim, CronSimError
    except ImportError:
        raise ConfigError(f"{where}.cron: cron schedules need cronsim: pip install "
                          "'queue-core[schedules]'", key=f"{where}.cron") from None
    try:
        next(CronSim(cron.strip(), datetime.now(_zone(zone))))
    except (CronSimError, StopIteration, ValueError) as exc:
        raise ConfigError(f"{where}.cron: {cron!r} is not a cron expression cronsim reads "
                          f"({exc or 'it never fires'})", key=f"{where}.cron") from None
    return Schedule(name, job.strip(), dict(args), cron=cron.strip(), timezone=zone)


def resolve_job(schedule: Schedule, where: str) -> type[Job]:
    """The job class a schedule names: imported from 'module:Class' (settings are code),
    else looked up among the registered job types. Called when a scheduler starts."""
    from .job import Job, lookup
    if ":" in schedule.job:
        from .settings import import_object
        found = import_object(schedule.job, f"{where}.job")
    else:
        found = lookup(schedule.job)
        if found is None:
            raise ConfigError(f"{where}.job: no registered job type {schedule.job!r} (is "
                              "its module in the settings' imports?)", key=f"{where}.job")
    if not isinstance(found, type) or not issubclass(found, Job):
        raise ConfigError(f"{where}.job: {schedule.job!r} is not a Job subclass",
                          key=f"{where}.job")
    return found
