"""The file driver: a directory per channel, one file per job, the state is the directory.

::

    <path>/<channel>/
        new/        ready jobs nobody has looked at yet (pushes, retries, due delays)
        waiting/    ready jobs a worker moved out of new/ in bulk
        delayed/    not ready yet; the file's mtime is when it becomes ready
        reserved/   running; named <id>~<reserve time in ns>
        done/       kept completed jobs (keep_completed)
        failed/     failed jobs with their error (keep_failed)
        tmp/        files being written; renamed into place when complete

Every state change is an atomic ``rename``: two workers racing for a job both try to
rename it into ``reserved/`` and exactly one succeeds. A job id is its sort key
(``priority``, push sequence, random) in fixed-width hex, so lower priority, then older,
sorts first by name alone, and a job is found by id without an index.

A job file starts with a fixed-width header (attempt, running flag, start time), then one
JSON line of metadata, then the payload. ``reserve`` bumps the attempt and sets the running
flag in place; a file that comes back from an expired lease with the flag still set is
a run whose worker was lost.

Workers keep the names they have seen in memory (a heap of ready ids, a heap of delayed
ones) and only rescan a directory when its mtime says it changed, so the per-job cost
does not grow with the backlog. Safe for several worker processes on one host; not for
network file systems whose rename is not atomic.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from queue_core.driver import (
    DEFAULT_PRIORITY,
    Capabilities,
    Driver,
    ErrorInfo,
    JobInfo,
    JobStatus,
    Message,
)
from queue_core.errors import ConfigError, DriverError, JobNotFoundError, JobNotInStateError

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_HEADER = "QCF1 {attempt:010d} {running:d} {started:019d}\n"
_HEADER_LEN = len(_HEADER.format(attempt=0, running=0, started=0))
_NS = 1_000_000_000

_STATES = ("new", "waiting", "delayed", "reserved", "done", "failed")
_STATUS_OF_DIR = {"new": JobStatus.WAITING, "waiting": JobStatus.WAITING,
                  "delayed": JobStatus.DELAYED, "reserved": JobStatus.RESERVED,
                  "done": JobStatus.DONE, "failed": JobStatus.FAILED}
_DIRS_OF_STATUS = {JobStatus.WAITING: ("new", "waiting"), JobStatus.DELAYED: ("delayed",),
                   JobStatus.RESERVED: ("reserved",), JobStatus.DONE: ("done",),
                   JobStatus.FAILED: ("failed",)}

BULK_ADOPT = 64
"""Above this many names in new/, a worker moves them all to waiting/ and its heap rather
than rescanning new/ on every reserve."""
LEASE_SCAN_EVERY = 1.0
WAITING_RESCAN_EVERY = 5.0
DELAYED_RESCAN_EVERY = 30.0
SCAN_COST_FACTOR = 20
"""A periodic rescan waits at least this many times its own last duration."""
TMP_ORPHAN_AGE = 3600.0


def _header(attempt: int, running: bool, started_ns: int) -> bytes:
    return _HEADER.format(attempt=attempt, running=int(running), started=started_ns).encode()


def _os_errors(func: Callable[..., _T]) -> Callable[..., _T]:
    """Storage failures (disk full, permissions) surface as DriverError."""
    def wrapper(self: FileDriver, *args: Any, **kwargs: Any) -> _T:
        try:
            return func(self, *args, **kwargs)
        except OSError as exc:
            raise DriverError(f"file queue {self.root}: {exc}") from exc
    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


class _DirWatch:
    """Tells whether a directory may have changed since it was last listed.

    Directory mtimes come from the kernel's coarse clock, so a change in the same tick as
    our listing would keep the same mtime. A listing only counts as clean if the directory
    had been quiet for longer than any tick before the listing began."""

    QUIET_NS = 50_000_000

    def __init__(self, path: str) -> None:
        self.path = path
        self.seen = -1
        self.clean = False

    def _mtime(self) -> int:
        try:
            return os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return -1

    def changed(self) -> bool:
        return not self.clean or self._mtime() != self.seen

    def begin(self) -> tuple[int, int]:
        return self._mtime(), time.time_ns()

    def done(self, token: tuple[int, int]) -> None:
        self.seen, started = token
        self.clean = started - self.seen > self.QUIET_NS


@dataclass
class _Handle:
    path: str
    meta: dict[str, Any]
    attempt: int
    started_ns: int


@dataclass
class _Parsed:
    attempt: int
    running: bool
    started_ns: int
    meta: dict[str, Any]
    payload: bytes


def _parse(data: bytes) -> _Parsed:
    if len(data) < _HEADER_LEN or not data.startswith(b"QCF1 "):
        raise ValueError("not a queue-core job file")
    attempt = int(data[5:15])
    running = data[16:17] == b"1"
    started = int(data[18:37])
    end = data.index(b"\n", _HEADER_LEN)
    meta = json.loads(data[_HEADER_LEN:end])
    if not isinstance(meta, dict):
        raise ValueError("job metadata is not an object")
    return _Parsed(attempt, running, started, meta, data[end + 1:])


def _read_fd(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
        if len(chunk) < 1 << 16:
            break
    return b"".join(chunks)


class FileDriver(Driver):
    name = "file"
    capabilities = Capabilities(
        delay=True, priority=True, priority_range=(0, 2**32 - 1), ttr_lease=True, retry=True,
        attempt_count=True, status=True, failed_store=True, keep_completed=True,
        manual_retry=True, remove=True, clear=True, info=True, listing=True)

    def __init__(self, path: str | os.PathLike[str], *, channel: str = "queue",
                 fsync: bool = False, poll_interval: float = 0.1,
                 lease_grace: float = 1.0) -> None:
        super().__init__(channel=channel)
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or (
                poll_interval <= 0):
            raise ConfigError(f"poll_interval must be a positive number of seconds, "
                              f"got {poll_interval!r}", key="driver.poll_interval")
        self.root = Path(path) / channel
        self.fsync = bool(fsync)
        self.poll_interval = float(poll_interval)
        self.lease_grace = float(lease_grace)
        try:
            for state in (*_STATES, "tmp"):
                (self.root / state).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DriverError(f"cannot create the file queue at {self.root}: {exc}") from exc
        self._dirs = {state: str(self.root / state) for state in (*_STATES, "tmp")}
        self._ready: list[str] = []
        self._delayed: list[tuple[int, str]] = []
        self._watch = {state: _DirWatch(self._dirs[state])
                       for state in ("new", "waiting", "delayed")}
        self._last_seq = 0
        self._tmp_names = itertools.count()
        self._next_lease_scan = 0
        self._next_waiting_rescan = 0
        self._next_delayed_rescan = 0
        self._delayed_scanned = 0
        self._delayed_gap = 0
        self._tmp_swept = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> FileDriver:
        parts = urlsplit(url)
        host = parts.netloc if parts.netloc not in ("", "localhost") else ""
        path = host + parts.path
        if not path:
            raise ConfigError(f"file URL {url!r} names no directory "
                              "(use file:///absolute/path or file://./relative)", key="driver")
        for key, value in parse_qsl(parts.query):
            if key == "fsync":
                options.setdefault(key, value.lower() in ("1", "true", "yes", "on"))
            elif key in ("poll_interval", "lease_grace"):
                try:
                    options.setdefault(key, float(value))
                except ValueError:
                    raise ConfigError(f"driver URL option {key}={value!r} is not a number",
                                      key=f"driver.{key}") from None
            else:
                raise ConfigError(f"file driver URL has unknown option {key!r}",
                                  key=f"driver.{key}")
        return cls(path, **options)

    def describe(self) -> str:
        return f"file:{self.root}"

    # -- writing files ---------------------------------------------------------------

    def _new_id(self, priority: int) -> str:
        seq = max(time.time_ns(), self._last_seq + 1)
        self._last_seq = seq
        return f"{priority:08x}{seq:016x}{secrets.randbits(32):08x}"

    def _write_tmp(self, content: bytes, mtime_ns: int | None = None) -> str:
        path = os.path.join(self._dirs["tmp"], f"{os.getpid()}.{next(self._tmp_names)}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view):]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if mtime_ns is not None:
            os.utime(path, ns=(mtime_ns, mtime_ns))
        return path

    def _sync_dir(self, state: str) -> None:
        if self.fsync:
            fd = os.open(self._dirs[state], os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _path(self, state: str, name: str) -> str:
        return os.path.join(self._dirs[state], name)

    # -- push ------------------------------------------------------------------------

    @_os_errors
    def push(self, payload: bytes, *, ttr: float, delay: float = 0.0,
             priority: int | None = None) -> str:
        job_id = self._new_id(DEFAULT_PRIORITY if priority is None else priority)
        now = time.time()
        meta = {"ttr": ttr, "pushed_at": now}
        content = _header(0, False, 0) + json.dumps(meta).encode() + b"\n" + payload
        if delay > 0:
            ready_ns = int((now + delay) * _NS)
            tmp = self._write_tmp(content, ready_ns)
            os.rename(tmp, self._path("delayed", job_id))
            heapq.heappush(self._delayed, (ready_ns, job_id))
            self._sync_dir("delayed")
        else:
            tmp = self._write_tmp(content)
            os.rename(tmp, self._path("new", job_id))
            self._sync_dir("new")
        return job_id

    # -- reserve ---------------------------------------------------------------------

    @_os_errors
    def reserve(self, timeout: float = 0.0) -> Message | None:
        deadline = time.monotonic() + timeout
        pause = 0.002
        while True:
            message = self._reserve_once()
            if message is not None:
                return message
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            nap = min(pause, left)
            if self._delayed:
                nap = min(nap, max(0.0, (self._delayed[0][0] - time.time_ns()) / _NS))
            time.sleep(nap)
            pause = min(pause * 2, self.poll_interval)

    def _reserve_once(self) -> Message | None:
        now_ns = time.time_ns()
        self._maintain(now_ns)
        self._promote_due(now_ns)
        fresh = self._scan_new() if self._watch["new"].changed() else []
        if not self._ready and self._watch["waiting"].changed():
            self._relist_waiting()
        position = 0
        while position < len(fresh) or self._ready:
            if self._ready and (position >= len(fresh) or self._ready[0] < fresh[position]):
                message = self._claim("waiting", heapq.heappop(self._ready), now_ns)
            else:
                message = self._claim("new", fresh[position], now_ns)
                position += 1
            if message is not None:
                return message
        return None

    def _scan_new(self) -> list[str]:
        watch = self._watch["new"]
        token = watch.begin()
        names = [n for n in os.listdir(self._dirs["new"]) if _ID_RE.match(n)]
        watch.done(token)
        if len(names) <= BULK_ADOPT:
            names.sort()
            return names
        for name in names:
            try:
                os.rename(self._path("new", name), self._path("waiting", name))
            except FileNotFoundError:
                continue
            heapq.heappush(self._ready, name)
        return []

    def _relist_waiting(self) -> None:
        watch = self._watch["waiting"]
        token = watch.begin()
        self._ready = [n for n in os.listdir(self._dirs["waiting"]) if _ID_RE.match(n)]
        heapq.heapify(self._ready)
        watch.done(token)

    def _claim(self, state: str, job_id: str, now_ns: int) -> Message | None:
        path = self._path("reserved", f"{job_id}~{now_ns}")
        try:
            os.rename(self._path(state, job_id), path)
        except FileNotFoundError:
            return None
        fd = os.open(path, os.O_RDWR)
        try:
            data = _read_fd(fd)
            try:
                parsed = _parse(data)
            except ValueError as exc:
                self._quarantine(path, job_id, exc)
                return None
            attempt = parsed.attempt + 1
            os.pwrite(fd, _header(attempt, True, now_ns), 0)
        finally:
            os.close(fd)
        meta = parsed.meta
        return Message(job_id, parsed.payload, attempt, float(meta.get("ttr", 300)),
                       priority=int(job_id[:8], 16), pushed_at=meta.get("pushed_at"),
                       redelivered=parsed.running,
                       handle=_Handle(path, meta, attempt, now_ns))

    def _quarantine(self, path: str, job_id: str, exc: Exception) -> None:
        logger.error("job file %s is damaged (%s); moved to failed/", path, exc)
        try:
            os.rename(path, self._path("failed", job_id))
        except FileNotFoundError:
            pass

    # -- background chores, done by whichever worker reserves ------------------------

    def _maintain(self, now_ns: int) -> None:
        if now_ns >= self._next_lease_scan:
            self._next_lease_scan = now_ns + int(LEASE_SCAN_EVERY * _NS)
            self._recover_leases(now_ns)
            if not self._tmp_swept:
                self._sweep_tmp(now_ns)
        if now_ns >= self._next_delayed_rescan or (
                now_ns >= self._delayed_scanned + self._delayed_gap
                and self._watch["delayed"].changed()):
            self._rescan_delayed(now_ns)
        if self._ready and now_ns >= self._next_waiting_rescan:
            started = time.monotonic()
            self._relist_waiting()
            cost = time.monotonic() - started
            self._next_waiting_rescan = now_ns + int(
                max(WAITING_RESCAN_EVERY, SCAN_COST_FACTOR * cost) * _NS)

    def _rescan_delayed(self, now_ns: int) -> None:
        started = time.monotonic()
        watch = self._watch["delayed"]
        token = watch.begin()
        found = []
        with os.scandir(self._dirs["delayed"]) as entries:
            for entry in entries:
                if _ID_RE.match(entry.name):
                    try:
                        found.append((entry.stat().st_mtime_ns, entry.name))
                    except FileNotFoundError:
                        continue
        watch.done(token)
        heapq.heapify(found)
        self._delayed = found
        cost = time.monotonic() - started
        self._delayed_scanned = now_ns
        self._delayed_gap = int(max(0.05, SCAN_COST_FACTOR * cost) * _NS)
        self._next_delayed_rescan = now_ns + int(
            max(DELAYED_RESCAN_EVERY, SCAN_COST_FACTOR * cost) * _NS)

    def _promote_due(self, now_ns: int) -> None:
        while self._delayed and self._delayed[0][0] <= now_ns:
            _, job_id = heapq.heappop(self._delayed)
            path = self._path("delayed", job_id)
            try:
                # Released again with a later time since we listed it: not due yet.
                if os.stat(path).st_mtime_ns > now_ns:
                    continue
                os.rename(path, self._path("new", job_id))
            except FileNotFoundError:
                continue

    def _recover_leases(self, now_ns: int) -> None:
        with os.scandir(self._dirs["reserved"]) as entries:
            names = [entry.name for entry in entries]
        for name in names:
            job_id, _, started = name.partition("~")
            if not _ID_RE.match(job_id) or not started.isdigit():
                continue
            path = self._path("reserved", name)
            try:
                with open(path, "rb") as handle:
                    meta = _parse(handle.read(_HEADER_LEN + 4096)).meta
                ttr = float(meta.get("ttr", 300))
            except FileNotFoundError:
                continue
            except ValueError:
                ttr = 300.0
            if now_ns < int(started) + int(self.lease_seconds(ttr) * _NS):
                continue
            try:
                os.rename(path, self._path("new", job_id))
            except FileNotFoundError:
                continue
            logger.warning("job %s: lease expired (worker lost); back to waiting", job_id)

    def _sweep_tmp(self, now_ns: int) -> None:
        # A file left in tmp/ is a push or rewrite that crashed before its rename; a push
        # that never returned an id was never accepted.
        self._tmp_swept = True
        limit = now_ns - int(TMP_ORPHAN_AGE * _NS)
        with os.scandir(self._dirs["tmp"]) as entries:
            for entry in entries:
                try:
                    if entry.stat().st_mtime_ns < limit:
                        os.unlink(entry.path)
                except FileNotFoundError:
                    continue

    # -- outcomes --------------------------------------------------------------------

    def _rewrite(self, message: Message, target: str, *, running: bool = False,
                 mtime_ns: int | None = None, **changes: Any) -> None:
        """Replace the reserved file's content, then move it to ``target`` in one rename."""
        handle: _Handle = message.handle
        meta = {**handle.meta, **changes}
        content = (_header(handle.attempt, running, handle.started_ns)
                   + json.dumps(meta).encode() + b"\n" + message.payload)
        if not os.path.exists(handle.path):
            logger.warning("job %s: its lease ended before the outcome was saved; it will "
                           "run again", message.id)
            return
        tmp = self._write_tmp(content, mtime_ns)
        os.replace(tmp, handle.path)
        try:
            os.rename(handle.path, self._path(target, message.id))
        except FileNotFoundError:
            logger.warning("job %s: moved by another worker while saving its outcome",
                           message.id)
        self._sync_dir(target)

    @_os_errors
    def ack(self, message: Message, *, result: bytes | None = None, keep: bool = False) -> None:
        if not keep:
            try:
                os.unlink(message.handle.path)
            except FileNotFoundError:
                logger.warning("job %s: its lease ended before it finished; it may run again",
                               message.id)
            return
        encoded = None if result is None else base64.b64encode(result).decode()
        self._rewrite(message, "done", finished_at=time.time(), result=encoded, error=None)

    @_os_errors
    def release(self, message: Message, *, delay: float, error: ErrorInfo | None) -> None:
        stored = None if error is None else error.as_dict()
        if delay > 0:
            ready_ns = time.time_ns() + int(delay * _NS)
            self._rewrite(message, "delayed", mtime_ns=ready_ns, error=stored)
            heapq.heappush(self._delayed, (ready_ns, message.id))
        else:
            self._rewrite(message, "new", error=stored)

    @_os_errors
    def fail(self, message: Message, *, error: ErrorInfo, keep: bool = True) -> None:
        if not keep:
            self.ack(message, keep=False)
            return
        self._rewrite(message, "failed", finished_at=time.time(), error=error.as_dict())

    # -- lookups and admin -----------------------------------------------------------

    def _locate(self, job_id: str) -> tuple[str, str] | None:
        """(state, path) of a job, or None. Looks twice: a job may move while we look."""
        if not isinstance(job_id, str) or not _ID_RE.match(job_id):
            return None
        for _ in range(2):
            for state in _STATES:
                if state == "reserved":
                    prefix = job_id + "~"
                    for name in os.listdir(self._dirs["reserved"]):
                        if name.startswith(prefix):
                            return state, self._path(state, name)
                    continue
                path = self._path(state, job_id)
                if os.path.exists(path):
                    return state, path
        return None

    @_os_errors
    def status(self, job_id: str) -> JobStatus | None:
        found = self._locate(job_id)
        return None if found is None else _STATUS_OF_DIR[found[0]]

    def _info(self, job_id: str, state: str, path: str) -> JobInfo | None:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            ready_ns = os.stat(path).st_mtime_ns if state == "delayed" else None
        except FileNotFoundError:
            return None
        info = JobInfo(id=job_id, status=_STATUS_OF_DIR[state],
                       priority=int(job_id[:8], 16))
        try:
            parsed = _parse(data)
        except ValueError as exc:
            info.error = ErrorInfo("DamagedJobFile", str(exc))
            return info
        meta = parsed.meta
        info.attempt = parsed.attempt
        info.ttr = meta.get("ttr")
        info.pushed_at = meta.get("pushed_at")
        info.started_at = parsed.started_ns / _NS if parsed.started_ns else None
        info.finished_at = meta.get("finished_at")
        info.ready_at = None if ready_ns is None else ready_ns / _NS
        info.error = ErrorInfo.from_dict(meta.get("error"))
        if meta.get("result") is not None:
            info.result = base64.b64decode(meta["result"])
        info.payload = parsed.payload
        return info

    @_os_errors
    def get(self, job_id: str) -> JobInfo | None:
        for _ in range(2):
            found = self._locate(job_id)
            if found is None:
                return None
            info = self._info(job_id, *found)
            if info is not None:
                return info
        return None

    def _names(self, state: str) -> Iterator[str]:
        for name in os.listdir(self._dirs[state]):
            job_id = name.partition("~")[0]
            if _ID_RE.match(job_id):
                yield name

    @_os_errors
    def info(self) -> dict[JobStatus, int]:
        counts = {status: 0 for status in JobStatus}
        for state in _STATES:
            counts[_STATUS_OF_DIR[state]] += sum(1 for _ in self._names(state))
        return counts

    @_os_errors
    def jobs(self, status: JobStatus, limit: int = 100) -> list[JobInfo]:
        listed = sorted((name, state) for state in _DIRS_OF_STATUS[status]
                        for name in self._names(state))
        found = []
        for name, state in listed:
            info = self._info(name.partition("~")[0], state, self._path(state, name))
            if info is not None:
                found.append(info)
                if len(found) >= limit:
                    break
        return found

    @_os_errors
    def remove(self, job_id: str) -> bool:
        for _ in range(3):
            found = self._locate(job_id)
            if found is None:
                return False
            try:
                os.unlink(found[1])
                return True
            except FileNotFoundError:
                continue
        return False

    @_os_errors
    def clear(self) -> None:
        for state in (*_STATES, "tmp"):
            for name in os.listdir(self._dirs[state]):
                try:
                    os.unlink(self._path(state, name))
                except FileNotFoundError:
                    pass
        self._ready.clear()
        self._delayed.clear()

    @_os_errors
    def retry(self, job_id: str, *, state: JobStatus, reset_attempts: bool = False) -> None:
        source = "done" if state is JobStatus.DONE else "failed"
        path = self._path(source, job_id) if _ID_RE.match(str(job_id)) else ""
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except (FileNotFoundError, IsADirectoryError):
            found = self._locate(job_id)
            if found is None:
                raise JobNotFoundError(f"no job {job_id!r} in {self.describe()}") from None
            raise JobNotInStateError(
                f"job {job_id} is {_STATUS_OF_DIR[found[0]]}, not {state}") from None
        parsed = _parse(data)
        meta = {key: value for key, value in parsed.meta.items()
                if key not in ("error", "result", "finished_at")}
        attempt = 0 if reset_attempts else parsed.attempt
        content = _header(attempt, False, 0) + json.dumps(meta).encode() + b"\n" + parsed.payload
        tmp = self._write_tmp(content)
        os.replace(tmp, path)
        try:
            os.rename(path, self._path("new", job_id))
        except FileNotFoundError:
            raise JobNotFoundError(f"job {job_id} was removed during the retry") from None
        self._sync_dir("new")
