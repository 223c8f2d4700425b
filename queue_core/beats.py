"""A worker's heartbeat record as drivers store it: encoded as JSON, and read back as
untrusted data.

Every field read back is checked and bounded (a host name, a pid, times, counts, the jobs
running); a record that fails is skipped with a warning by ``read_records``, so one
damaged record never breaks the ``workers`` command or the supervisor. Strings are cut to
a length and stripped of control characters, since they are printed on a terminal.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
from collections.abc import Iterable
from typing import Any

from .model import RunningJob, WorkerInfo

logger = logging.getLogger(__name__)

MAX_RECORD = 64 * 1024
"""The largest record read back, in bytes."""
MAX_JOBS = 200
"""The most running jobs a record lists (a worker at a higher concurrency lists these)."""
MAX_TEXT = 200
"""The longest host, job id or job name kept, in characters."""
MAX_PERIOD = 3600.0
MIN_PERIOD = 0.1
MAX_TIME = 1e11
"""Timestamps above this (year 5138) are no timestamps."""
MAX_COUNT = 2**63 - 1
MAX_MEMORY = 1e9
"""MB: a petabyte of RSS is no reading."""
FORGET_PERIODS = 100
FORGET_MIN = 300.0
WORKER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
"""A worker id: safe as a file name, a hash field and a primary key."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class DamagedRecord(ValueError):
    """A heartbeat record that cannot be trusted; the message says which field."""


def forget_after(period: float) -> float:
    """Seconds after its last beat that a record is deleted: long enough for an operator
    to see the worker listed as stopped beating."""
    return max(FORGET_PERIODS * period, FORGET_MIN)


def new_worker_id(host: str, pid: int) -> str:
    """A fresh id: host, pid and a random part (a pid is reused, a session is not)."""
    safe = _UNSAFE.sub("_", host)[:120].strip("_.-") or "host"
    return f"{safe}-{pid}-{secrets.token_hex(4)}"


def encode(info: WorkerInfo) -> bytes:
    return json.dumps({
        "id": info.id, "host": info.host, "pid": info.pid, "channel": info.channel,
        "started_at": info.started_at, "beat_at": info.beat_at, "period": info.period,
        "jobs": [{"id": job.id, "name": job.name, "started_at": job.started_at}
                 for job in info.jobs[:MAX_JOBS]],
        "done": info.done, "failed": info.failed, "memory_mb": info.memory_mb,
    }, separators=(",", ":")).encode()


def _text(data: dict[str, Any], key: str, empty: bool = False) -> str:
    value = data.get(key)
    if not isinstance(value, str) or (not value and not empty):
        raise DamagedRecord(f"{key} is not text: {_short(value)}")
    return _CONTROL.sub("?", value[:MAX_TEXT])


def _number(data: dict[str, Any], key: str, low: float, high: float) -> float:
    value = data.get(key)
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not low <= value <= high):
        raise DamagedRecord(f"{key} is not a number from {low:g} to {high:g}: "
                            f"{_short(value)}")
    return float(value)


def _whole(data: dict[str, Any], key: str, low: int, high: int) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DamagedRecord(f"{key} is not a whole number from {low} to {high}: "
                            f"{_short(value)}")
    return value


def _short(value: Any) -> str:
    return repr(value)[:60]


def decode(raw: bytes | str) -> WorkerInfo:
    """The record ``raw`` holds, every field checked; DamagedRecord says what is wrong."""
    if len(raw) > MAX_RECORD:
        raise DamagedRecord(f"the record is {len(raw)} bytes, above {MAX_RECORD}")
    try:
        data = json.loads(raw)
    except (ValueError, TypeError, RecursionError) as exc:
        raise DamagedRecord(f"the record is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DamagedRecord("the record is not a JSON object")
    worker_id = data.get("id")
    if not isinstance(worker_id, str) or not WORKER_ID_RE.match(worker_id):
        raise DamagedRecord(f"id is not a worker id: {_short(worker_id)}")
    jobs_data = data.get("jobs", [])
    if not isinstance(jobs_data, list) or len(jobs_data) > MAX_JOBS:
        raise DamagedRecord(f"jobs is not a list of at most {MAX_JOBS} jobs")
    jobs = []
    for item in jobs_data:
        if not isinstance(item, dict):
            raise DamagedRecord(f"a running job is not an object: {_short(item)}")
        jobs.append(RunningJob(_text(item, "id"), _text(item, "name", empty=True),
                               _number(item, "started_at", 0, MAX_TIME)))
    memory = data.get("memory_mb")
    return WorkerInfo(
        id=worker_id, host=_text(data, "host"), pid=_whole(data, "pid", 1, 2**31 - 1),
        channel=_text(data, "channel"),
        started_at=_number(data, "started_at", 0, MAX_TIME),
        beat_at=_number(data, "beat_at", 0, MAX_TIME),
        period=_number(data, "period", MIN_PERIOD, MAX_PERIOD),
        jobs=tuple(jobs),
        done=_whole(data, "done", 0, MAX_COUNT), failed=_whole(data, "failed", 0, MAX_COUNT),
        memory_mb=None if memory is None else _number(data, "memory_mb", 0, MAX_MEMORY))


def read_records(raws: Iterable[tuple[str, bytes | str]], where: str,
                 now: float) -> list[WorkerInfo]:
    """The records of ``raws`` (a name for the log, the raw record) that can be read and
    are not due to be forgotten, sorted by host and pid; each damaged one is skipped with a
    warning naming it."""
    found = []
    for name, raw in raws:
        try:
            info = decode(raw)
        except DamagedRecord as exc:
            logger.warning("%s: heartbeat record %s skipped: %s", where,
                           _CONTROL.sub("?", str(name)[:MAX_TEXT]), exc)
            continue
        if info.age(now) <= forget_after(info.period):
            found.append(info)
    found.sort(key=lambda info: (info.host, info.pid, info.started_at))
    return found
