"""The file driver: a directory per channel; a job's state is the directory its marker
is in, and every state change is one atomic ``rename``.

::

    <path>/<channel>/
        new/        ready jobs nobody has looked at yet (pushes, retries, due delays)
        waiting/    ready jobs a worker moved out of new/ in bulk
        delayed/    not ready yet
        reserved/   running; named <id>~<reserve time in ns>
        done/       kept completed jobs (keep_completed)
        failed/     failed jobs with their error (keep_failed)
        segments/   append-only files of job records, one writer process each
        records/    single-record files for jobs whose record was rewritten (an error,
                    a result, a manual retry)
        tmp/        markers being prepared; renamed into place when complete

A marker is a symbolic link whose target says where the job's record is
(``<segment>:<offset>:<length>``, or ``@`` for ``records/<id>``) and, for a delayed job,
when it becomes ready (``|<ns>``). A target that short lives inside the inode, so making,
moving and deleting markers never allocates or frees a data block: the per-job cost does
not grow when a large backlog has been written back to disk. Two workers racing for a job
both rename its marker into ``reserved/``; exactly one succeeds.

A job id is its sort key (priority, push sequence, random) in fixed-width hex, so lower
priority, then older, sorts first by name alone, and a job is found by id without an
index. A record starts with a fixed-width header (length, attempt, running flag, start
time, dead flag), then one JSON line of metadata, then the payload. ``reserve`` bumps the
attempt and sets the running flag in place; a job that comes back from an expired lease
with the flag still set is a run whose worker was lost. A finished job's record is marked
dead; a segment whose records are all dead is deleted.

Workers keep the names they have seen in memory (a heap of ready ids, a heap of delayed
ones) and only rescan a directory when its mtime says it changed. Safe for several worker
processes on one host; not for network file systems whose rename is not atomic.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import heapq
import itertools
import json
import logging
import os
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from queue_core.driver import (
    DEFAULT_PRIORITY,
    UNREADABLE,
    Capabilities,
    Driver,
    ErrorInfo,
    JobInfo,
    JobStatus,
    Message,
)
from queue_core.errors import ConfigError, DriverError, JobNotFoundError, JobNotInStateError
from queue_core.records import as_float, as_time, usable_ttr

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_SEGMENT_RE = re.compile(r"^[0-9a-f]{16}$")
_RECORD_KEY_RE = re.compile(r"^@[0-9a-f]{0,16}$")
_HEADER = "QCF2 {length:010d} {attempt:010d} {running:d} {started:019d} {dead:d}\n"
_HEADER_LEN = len(_HEADER.format(length=0, attempt=0, running=0, started=0, dead=0))
_ATTEMPT_AT = 16
_DEAD_AT = _HEADER_LEN - 2
_SEALED = b"QCF2 END\n"
_NS = 1_000_000_000
_IN_RECORDS = "@"

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
SEGMENT_GC_EVERY = 10.0
SCAN_COST_FACTOR = 20
"""A periodic rescan waits at least this many times its own last duration."""
SEGMENT_BYTES = 4 << 20
SEGMENT_SECONDS = 30.0
"""A writer starts a new segment after this many bytes or seconds, sealing the old one."""
ABANDONED_AGE = 3600.0
"""A segment untouched this long counts as sealed (its writer died), and a live record in
it without a marker is an orphan of a push that crashed before making its marker."""
OPEN_SEGMENTS = 32
UNREADABLE_LEASE = 300.0
"""The lease of a reserved job whose record cannot be read when its lease is checked."""
DEFAULT_MODE = 0o600
"""Files are the owner's alone unless the ``mode`` option shares them."""


def _header(length: int, attempt: int, running: bool, started_ns: int, dead: bool = False) -> bytes:
    return _HEADER.format(length=length, attempt=attempt, running=int(running),
                          started=started_ns, dead=int(dead)).encode()


def _mutable(attempt: int, running: bool, started_ns: int) -> bytes:
    """The part of a header that changes after the push, as written at ``_ATTEMPT_AT``."""
    return f"{attempt:010d} {int(running):d} {started_ns:019d}".encode()


def _make_dirs(path: Path, mode: int) -> None:
    """Create ``path`` (and missing parents) with exactly ``mode``, whatever the umask;
    a folder that exists keeps its permissions."""
    if path.is_dir():
        return
    if not path.parent.is_dir():
        _make_dirs(path.parent, mode)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return
    os.chmod(path, mode)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_renameat2: list[Any] = []
"""libc's renameat2, looked up once: [function] or [None] where there is none."""


def _exchange(first: str, second: str) -> bool | None:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE). True when swapped,
    False when one of them does not exist, None where the system cannot swap."""
    if not _renameat2:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            _renameat2.append(libc.renameat2)
        except (AttributeError, OSError, TypeError):  # TypeError: CDLL(None) on Windows
            _renameat2.append(None)
    call = _renameat2[0]
    if call is None:
        return None
    if call(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second),
            _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.ENOENT:
        return False
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        _renameat2[0] = None  # a file system that cannot swap: never ask again
        return None
    raise OSError(code, os.strerror(code), second)


def _swap(new: str, path: str) -> bool:
    """Put ``new`` in place of ``path`` if ``path`` still exists (False when it does not).
    Without an atomic swap, checked then replaced: a marker that goes in between comes
    back, pointing at a record that exists."""
    swapped = _exchange(new, path)
    if swapped is not None:
        return swapped
    if not os.path.lexists(path):
        return False
    os.replace(new, path)
    return True


def _write_all(fd: int, data: bytes, fsync: bool) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    if fsync:
        os.fsync(fd)


def _unlink(path: str) -> bool:
    """Delete ``path``; False when it was already gone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


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
class _Record:
    attempt: int
    running: bool
    started_ns: int
    meta: dict[str, Any]
    payload: bytes


def _parse(data: bytes) -> _Record:
    if len(data) < _HEADER_LEN or not data.startswith(b"QCF2 "):
        raise ValueError("not a queue-core job record")
    attempt = int(data[_ATTEMPT_AT:_ATTEMPT_AT + 10])
    running = data[27:28] == b"1"
    started = int(data[29:48])
    end = data.index(b"\n", _HEADER_LEN)
    try:
        meta = json.loads(data[_HEADER_LEN:end])
    except RecursionError:
        raise ValueError("job metadata is nested too deeply") from None
    if not isinstance(meta, dict):
        raise ValueError("job metadata is not an object")
    return _Record(attempt, running, started, meta, data[end + 1:])


def _record(meta: dict[str, Any], payload: bytes, attempt: int = 0, running: bool = False,
            started_ns: int = 0) -> bytes:
    body = json.dumps(meta, separators=(",", ":")).encode() + b"\n" + payload
    return _header(_HEADER_LEN + len(body), attempt, running, started_ns) + body


@dataclass(frozen=True)
class _Target:
    """Where a marker says the record is, and when a delayed job becomes ready."""

    segment: str
    offset: int = 0
    length: int = 0
    ready_ns: int = 0

    @classmethod
    def parse(cls, text: str) -> _Target:
        location, _, ready = text.partition("|")
        ready_ns = int(ready, 16) if ready else 0
        if location.startswith(_IN_RECORDS):
            if not _RECORD_KEY_RE.match(location):
                raise ValueError(f"marker names no record file: {location[:40]!r}")
            return cls(location, ready_ns=ready_ns)
        segment, offset, length = location.split(":")
        if not _SEGMENT_RE.match(segment):
            # Only names the driver made: a marker never leads outside segments/.
            raise ValueError(f"marker names no segment: {segment[:40]!r}")
        return cls(segment, int(offset, 16), int(length, 16), ready_ns)

    @property
    def in_records(self) -> bool:
        return self.segment.startswith(_IN_RECORDS)

    def record_file(self, job_id: str) -> str:
        """The name in records/ of a rewritten record: ``<id>.<key>`` (a bare ``<id>`` was
        written by an earlier version)."""
        key = self.segment[len(_IN_RECORDS):]
        return f"{job_id}.{key}" if key else job_id

    def text(self, ready_ns: int = 0) -> str:
        location = (self.segment if self.in_records
                    else f"{self.segment}:{self.offset:x}:{self.length:x}")
        return f"{location}|{ready_ns:x}" if ready_ns else location


@dataclass
class _Handle:
    path: str
    target: _Target
    meta: dict[str, Any]
    attempt: int
    started_ns: int


class FileDriver(Driver):
    name = "file"
    capabilities = Capabilities(
        delay=True, priority=True, priority_range=(0, 2**32 - 1), ttr_lease=True, retry=True,
        attempt_count=True, status=True, failed_store=True, last_error=True,
        keep_completed=True,
        manual_retry=True, remove=True, clear=True, info=True, listing=True, bulk_push=True)

    def __init__(self, path: str | os.PathLike[str], *, channel: str = "queue",
                 fsync: bool = False, poll_interval: float = 0.1,
                 lease_grace: float = 1.0, mode: int = DEFAULT_MODE) -> None:
        """
        Parameters
        ----------
        path: the directory; each channel is a subdirectory of it.
        fsync: fsync every record and directory change (survives a power loss; slower).
        poll_interval: the longest sleep of an idle worker between looks, in seconds.
        lease_grace: seconds a lease outlives the ttr.
        mode: permissions of the files the queue creates (owner only by default, since
            payloads may hold personal data); ``0o660`` shares the queue with the group.
            Folders get the same bits plus search (x) where reading is allowed.
        """
        super().__init__(channel=channel)
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or (
                poll_interval <= 0):
            raise ConfigError(f"poll_interval must be a positive number of seconds, "
                              f"got {poll_interval!r}", key="driver.poll_interval")
        if isinstance(mode, bool) or not isinstance(mode, int) or mode & ~0o666 or (
                mode & 0o600 != 0o600):
            raise ConfigError(f"mode must be file permissions such as 0o600 or 0o660 that let "
                              f"the owner read and write, got {mode!r}", key="driver.mode")
        self.root = Path(path) / channel
        self.fsync = bool(fsync)
        self.poll_interval = float(poll_interval)
        self.lease_grace = float(lease_grace)
        self.mode = mode
        self._dir_mode = mode | (mode & 0o444) >> 2
        dirs = (*_STATES, "segments", "records", "tmp")
        try:
            _make_dirs(self.root, self._dir_mode)
            for state in dirs:
                _make_dirs(self.root / state, self._dir_mode)
        except OSError as exc:
            raise DriverError(f"cannot create the file queue at {self.root}: {exc}") from exc
        self._dirs = {state: str(self.root / state) for state in dirs}
        self._ready: list[str] = []
        # Names from the last listing of new/ not yet claimed: new/ may not change again
        # to say they are there, so they are kept until claimed or listed afresh.
        self._fresh: list[str] = []
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
        self._next_gc = 0
        self._writer: tuple[int, str, int, int, float] | None = None
        """(pid, segment, fd, size, opened at) of the segment this process appends to."""
        self._open: OrderedDict[str, int] = OrderedDict()

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
            elif key == "mode":
                try:
                    options.setdefault(key, int(value, 8))
                except ValueError:
                    raise ConfigError(f"driver URL option mode={value!r} is not octal "
                                      "permissions such as 600 or 660",
                                      key="driver.mode") from None
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

    def _path(self, state: str, name: str) -> str:
        return os.path.join(self._dirs[state], name)

    def _sync_dir(self, state: str) -> None:
        if self.fsync:
            fd = os.open(self._dirs[state], os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # -- records -----------------------------------------------------------------------

    def _append(self, data: bytes) -> tuple[str, int]:
        """Append to this process's segment; returns (segment, offset of the data)."""
        pid = os.getpid()
        writer = self._writer
        if writer is not None and (writer[0] != pid or writer[3] >= SEGMENT_BYTES
                                   or time.monotonic() - writer[4] > SEGMENT_SECONDS):
            self._seal()
            writer = None
        if writer is None:
            segment = secrets.token_hex(8)
            fd = self._create(self._path("segments", segment),
                              os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL)
            writer = (pid, segment, fd, 0, time.monotonic())
            self._writer = writer
        _, segment, fd, size, opened = writer
        try:
            _write_all(fd, data, self.fsync)
        except OSError:
            # A part of the data may be in the file (a full disk): offsets after it would
            # be wrong, so this segment takes no more records.
            self._abandon_writer(size)
            raise
        self._writer = (pid, segment, fd, size + len(data), opened)
        return segment, size

    def _abandon_writer(self, size: int) -> None:
        """Cut the segment back to ``size`` (its last complete record) and stop writing to
        it; the next push opens a new one."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        fd = writer[2]
        try:
            os.ftruncate(fd, size)
            os.write(fd, _SEALED)
        except OSError as exc:
            logger.warning("could not seal segment %s after a failed write (%s); it is "
                           "collected once abandoned", writer[1], exc)
        finally:
            os.close(fd)

    def _create(self, path: str, flags: int) -> int:
        """Open a new file with the queue's mode, whatever the umask."""
        fd = os.open(path, flags, self.mode)
        if self.mode != DEFAULT_MODE:
            try:
                os.fchmod(fd, self.mode)
            except OSError:
                os.close(fd)
                raise
        return fd

    def _seal(self) -> None:
        """Mark our segment complete: once its records are all dead it may be deleted."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        pid, _, fd, _, _ = writer
        if pid != os.getpid():
            return  # a forked child inherited the descriptor; the parent seals it
        try:
            os.write(fd, _SEALED)
        finally:
            os.close(fd)

    def _segment_fd(self, segment: str) -> int:
        fd = self._open.get(segment)
        if fd is not None:
            self._open.move_to_end(segment)
            return fd
        fd = os.open(self._path("segments", segment), os.O_RDWR)
        self._open[segment] = fd
        if len(self._open) > OPEN_SEGMENTS:
            _, old = self._open.popitem(last=False)
            os.close(old)
        return fd

    def _forget_segment(self, segment: str) -> None:
        fd = self._open.pop(segment, None)
        if fd is not None:
            os.close(fd)

    def _read(self, job_id: str, target: _Target) -> bytes:
        if target.in_records:
            with open(self._path("records", target.record_file(job_id)), "rb") as handle:
                return handle.read()
        return os.pread(self._segment_fd(target.segment), target.length, target.offset)

    def _update_header(self, job_id: str, target: _Target, data: bytes) -> None:
        """Rewrite attempt, running flag and start time of a record in place."""
        if target.in_records:
            fd = os.open(self._path("records", target.record_file(job_id)), os.O_WRONLY)
            try:
                os.pwrite(fd, data, _ATTEMPT_AT)
            finally:
                os.close(fd)
        else:
            os.pwrite(self._segment_fd(target.segment), data, target.offset + _ATTEMPT_AT)

    def _bury_record(self, job_id: str, target: _Target) -> None:
        """The job is gone: free its record (a segment goes when all its records have)."""
        try:
            if target.in_records:
                os.unlink(self._path("records", target.record_file(job_id)))
            else:
                os.pwrite(self._segment_fd(target.segment), b"1",
                          target.offset + _DEAD_AT)
        except FileNotFoundError:
            pass

    def _write_record_file(self, job_id: str, data: bytes) -> _Target:
        """Write a record to a new file of records/ (never over the one a marker may point
        to) and return its target."""
        target = _Target(_IN_RECORDS + secrets.token_hex(4))
        tmp = self._path("tmp", f"r{os.getpid()}.{next(self._tmp_names)}")
        fd = self._create(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            _write_all(fd, data, self.fsync)
        except OSError:
            os.close(fd)
            _unlink(tmp)
            raise
        os.close(fd)
        os.replace(tmp, self._path("records", target.record_file(job_id)))
        return target

    def _new_marker(self, text: str) -> str:
        tmp = self._path("tmp", f"m{os.getpid()}.{next(self._tmp_names)}")
        os.symlink(text, tmp)
        return tmp

    def _repoint(self, path: str, target: _Target, ready_ns: int = 0) -> bool:
        """Point the marker at ``path`` to ``target``, only if it is still there (a job
        removed, cleared or taken back by its lease meanwhile must not come back).
        False, with nothing changed, when it is gone."""
        new = self._new_marker(target.text(ready_ns))
        try:
            swapped = _swap(new, path)
        except OSError:
            _unlink(new)
            raise
        _unlink(new)  # after the swap: the old marker
        return swapped

    # -- push ------------------------------------------------------------------------

    def _new_id(self, priority: int) -> str:
        seq = max(time.time_ns(), self._last_seq + 1)
        self._last_seq = seq
        return f"{priority:08x}{seq:016x}{secrets.randbits(32):08x}"

    @_os_errors
    def push(self, payload: bytes, *, ttr: float, delay: float = 0.0,
             priority: int | None = None) -> str:
        return self._push_all([(payload, ttr, delay, priority)])[0]

    @_os_errors
    def push_many(self, requests: Any) -> list[str]:
        return self._push_all([(r.payload, r.ttr, r.delay, r.priority) for r in requests])

    def _push_all(self, items: list[tuple[bytes, float, float, int | None]]) -> list[str]:
        now = time.time()
        ids, records = [], []
        for payload, ttr, _, priority in items:
            job_id = self._new_id(DEFAULT_PRIORITY if priority is None else priority)
            ids.append(job_id)
            records.append(_record({"id": job_id, "ttr": ttr, "pushed_at": now}, payload))
        # One write for the whole batch; a crash before the markers exist leaves records no
        # marker points to, which the segment collector reclaims.
        segment, offset = self._append(b"".join(records))
        delayed = False
        made: list[tuple[str, _Target]] = []
        try:
            for job_id, record, (_, _, delay, _) in zip(ids, records, items, strict=True):
                target = _Target(segment, offset, len(record))
                offset += len(record)
                if delay > 0:
                    ready_ns = int((now + delay) * _NS)
                    path = self._path("delayed", job_id)
                    os.symlink(target.text(ready_ns), path)
                    heapq.heappush(self._delayed, (ready_ns, job_id))
                    delayed = True
                else:
                    path = self._path("new", job_id)
                    os.symlink(target.text(), path)
                made.append((path, target))
        except OSError:
            # The caller is told nothing was queued: take back the markers already made.
            for path, target in made:
                if _unlink(path):
                    self._bury_record(os.path.basename(path), target)
            raise
        self._sync_dir("delayed" if delayed else "new")
        return ids

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
        if self._watch["new"].changed():
            self._fresh = self._scan_new()
        fresh = self._fresh
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
                del fresh[:position]
                return message
        fresh.clear()
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
        try:
            target = _Target.parse(os.readlink(path))
            record = _parse(self._read(job_id, target))
        except (OSError, ValueError) as exc:
            self._quarantine(path, job_id, exc)
            return None
        attempt = record.attempt + 1
        self._update_header(job_id, target, _mutable(attempt, True, now_ns))
        meta = record.meta
        return Message(job_id, record.payload, attempt, as_float(meta.get("ttr")),
                       priority=int(job_id[:8], 16), pushed_at=as_float(meta.get("pushed_at")),
                       redelivered=record.running,
                       handle=_Handle(path, target, meta, attempt, now_ns))

    def _quarantine(self, path: str, job_id: str, exc: Exception) -> None:
        """A marker whose record cannot be read: keep it where an operator will see it."""
        logger.error("job %s cannot be read (%s); moved to failed/", job_id, exc)
        try:
            os.rename(path, self._path("failed", job_id))
        except FileNotFoundError:
            pass
    # -- background chores, done by whichever worker reserves ------------------------

    def _maintain(self, now_ns: int) -> None:
        if now_ns >= self._next_lease_scan:
            self._next_lease_scan = now_ns + int(LEASE_SCAN_EVERY * _NS)
            self._recover_leases(now_ns)
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
        if now_ns >= self._next_gc:
            started = time.monotonic()
            self._collect(now_ns)
            cost = time.monotonic() - started
            self._next_gc = now_ns + int(max(SEGMENT_GC_EVERY, SCAN_COST_FACTOR * cost) * _NS)

    def _rescan_delayed(self, now_ns: int) -> None:
        started = time.monotonic()
        watch = self._watch["delayed"]
        token = watch.begin()
        found = []
        for name in os.listdir(self._dirs["delayed"]):
            if not _ID_RE.match(name):
                continue
            try:
                found.append((_Target.parse(os.readlink(self._path("delayed", name))).ready_ns,
                              name))
            except (OSError, ValueError):
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
                if _Target.parse(os.readlink(path)).ready_ns > now_ns:
                    continue
                os.rename(path, self._path("new", job_id))
            except (OSError, ValueError):
                continue

    def _recover_leases(self, now_ns: int) -> None:
        for name in os.listdir(self._dirs["reserved"]):
            job_id, _, started = name.partition("~")
            if not _ID_RE.match(job_id) or not started.isdigit():
                continue
            path = self._path("reserved", name)
            try:
                target = _Target.parse(os.readlink(path))
                ttr = as_float(_parse(self._read(job_id, target)).meta.get("ttr"))
            except FileNotFoundError:
                continue
            except (OSError, ValueError):
                ttr = UNREADABLE_LEASE  # perhaps read while being rewritten: look later
            if not usable_ttr(ttr):
                ttr = 0.0  # no worker runs a job with such a ttr: back at once, to be failed
            if now_ns < int(started) + int(self.lease_seconds(ttr) * _NS):
                continue
            try:
                os.rename(path, self._path("new", job_id))
            except FileNotFoundError:
                continue
            logger.warning("job %s: lease expired (worker lost); back to waiting", job_id)

    def _collect(self, now_ns: int) -> None:
        """Delete sealed segments whose records are all dead, and temporary files left by
        a crash. A segment untouched for ABANDONED_AGE counts as sealed, and its live
        records that no marker points to (a push that died before its marker) as dead."""
        current = self._writer[1] if self._writer is not None else None
        abandoned = now_ns - int(ABANDONED_AGE * _NS)
        for name in os.listdir(self._dirs["segments"]):
            if name == current:
                continue
            path = self._path("segments", name)
            try:
                old = os.stat(path).st_mtime_ns < abandoned
                with open(path, "rb") as handle:
                    data = handle.read()
            except FileNotFoundError:
                continue
            if not (data.endswith(_SEALED) or old):
                continue
            if all(dead for dead in self._liveness(name, data, old)):
                self._forget_segment(name)
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        for name in os.listdir(self._dirs["tmp"]):
            path = self._path("tmp", name)
            try:
                if os.lstat(path).st_mtime_ns < abandoned:
                    os.unlink(path)
            except FileNotFoundError:
                continue

    def _liveness(self, segment: str, data: bytes, old: bool) -> Iterator[bool]:
        """For each record of a segment: True if it is dead (or an orphan in an old one)."""
        offset = 0
        while offset + _HEADER_LEN <= len(data) and data.startswith(b"QCF2 ", offset):
            if data.startswith(_SEALED, offset):
                return
            try:
                length = int(data[offset + 5:offset + 15])
            except ValueError:
                return
            dead = data[offset + _DEAD_AT:offset + _DEAD_AT + 1] == b"1"
            if not dead and old:
                try:
                    job_id = _parse(data[offset:offset + length]).meta.get("id", "")
                except ValueError:
                    job_id = ""
                found = self._locate(job_id) if job_id else None
                dead = found is None or _Target.parse(
                    os.readlink(found[1])).segment != segment
            yield dead
            offset += length

    # -- outcomes --------------------------------------------------------------------

    def _finish(self, message: Message, state: str, changes: dict[str, Any] | None = None, *,
                running: bool = False, ready_ns: int = 0) -> None:
        """Move a reserved job to ``state``. With ``changes`` (an error, a result) its
        record is rewritten to records/<id> first and its old record freed."""
        handle: _Handle = message.handle
        target = handle.target
        if not os.path.lexists(handle.path):
            logger.warning("job %s: its lease ended before the outcome was saved; it will "
                           "run again", message.id)
            return
        if changes:
            new_target = self._write_record_file(message.id, _record(
                {**handle.meta, **changes}, message.payload, handle.attempt, running,
                handle.started_ns))
        else:
            self._update_header(message.id, target,
                                _mutable(handle.attempt, running, handle.started_ns))
            new_target = target
        if changes or ready_ns:
            if not self._repoint(handle.path, new_target, ready_ns):
                if changes:
                    self._bury_record(message.id, new_target)
                logger.warning("job %s: removed, or back from its lease, before the outcome "
                               "was saved", message.id)
                return
            if changes:
                self._bury_record(message.id, target)
        try:
            os.rename(handle.path, self._path(state, message.id))
        except FileNotFoundError:
            logger.warning("job %s: moved by another worker while saving its outcome",
                           message.id)
        self._sync_dir(state)

    def _drop(self, message: Message) -> None:
        handle: _Handle = message.handle
        try:
            os.unlink(handle.path)
        except FileNotFoundError:
            logger.warning("job %s: its lease ended before it finished; it may run again",
                           message.id)
            return
        self._bury_record(message.id, handle.target)

    @_os_errors
    def ack(self, message: Message, *, result: bytes | None = None, keep: bool = False) -> None:
        if not keep:
            self._drop(message)
            return
        encoded = None if result is None else base64.b64encode(result).decode()
        self._finish(message, "done", {"finished_at": time.time(), "result": encoded,
                                       "error": None})

    @_os_errors
    def release(self, message: Message, *, delay: float, error: ErrorInfo | None) -> None:
        changes = None if error is None else {"error": error.as_dict()}
        if delay > 0:
            ready_ns = time.time_ns() + int(delay * _NS)
            self._finish(message, "delayed", changes, ready_ns=ready_ns)
            heapq.heappush(self._delayed, (ready_ns, message.id))
        else:
            self._finish(message, "new", changes)

    @_os_errors
    def fail(self, message: Message, *, error: ErrorInfo, keep: bool = True) -> None:
        if not keep:
            self._drop(message)
            return
        self._finish(message, "failed", {"finished_at": time.time(), "error": error.as_dict()})

    # -- lookups and admin -----------------------------------------------------------

    def _locate(self, job_id: str) -> tuple[str, str] | None:
        """(state, marker path) of a job, or None. Looks twice: a job may move meanwhile."""
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
                if os.path.lexists(path):
                    return state, path
        return None

    @_os_errors
    def status(self, job_id: str) -> JobStatus | None:
        found = self._locate(job_id)
        return None if found is None else _STATUS_OF_DIR[found[0]]

    def _info(self, job_id: str, state: str, path: str) -> JobInfo | None:
        info = JobInfo(id=job_id, status=_STATUS_OF_DIR[state], priority=int(job_id[:8], 16))
        try:
            target = _Target.parse(os.readlink(path))
        except FileNotFoundError:
            return None  # moved while we looked; the caller looks again
        except (OSError, ValueError) as exc:
            info.error = ErrorInfo(UNREADABLE, str(exc))
            return info
        try:
            record = _parse(self._read(job_id, target))
        except (OSError, ValueError) as exc:
            if not os.path.lexists(path):
                return None
            info.error = ErrorInfo(UNREADABLE, str(exc))
            return info
        meta = record.meta
        info.attempt = record.attempt
        info.ttr = as_time(meta.get("ttr"))
        info.pushed_at = as_time(meta.get("pushed_at"))
        info.started_at = record.started_ns / _NS if record.started_ns else None
        info.finished_at = as_time(meta.get("finished_at"))
        info.ready_at = target.ready_ns / _NS if state == "delayed" and target.ready_ns else None
        info.error = ErrorInfo.from_dict(meta.get("error"))
        if meta.get("result") is not None:
            try:
                info.result = base64.b64decode(meta["result"])
            except (TypeError, ValueError):
                info.error = info.error or ErrorInfo(UNREADABLE, "the stored result is damaged")
        info.payload = record.payload
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
            if _ID_RE.match(name.partition("~")[0]):
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
            if self._remove_marker(job_id, found[1]):
                return True
        return False

    def _remove_marker(self, job_id: str, path: str) -> bool:
        """Delete a job: its marker first, then its record, so that no marker is ever left
        pointing at a record that is gone. False when the marker moved meanwhile."""
        try:
            text = os.readlink(path)
        except FileNotFoundError:
            return False
        except OSError:
            text = ""  # not a marker: nothing to free but the entry itself
        if not _unlink(path):
            return False
        try:
            target = _Target.parse(text)
        except ValueError:
            return True
        self._bury_record(job_id, target)
        return True

    @_os_errors
    def clear(self) -> None:
        """Delete every job, one by one as ``remove`` does: a worker finishing a job at the
        same moment finds its marker gone, never a marker whose record was deleted."""
        for _ in range(3):
            cleared = 0
            for state in _STATES:
                for name in os.listdir(self._dirs[state]):
                    job_id = name.partition("~")[0]
                    if self._remove_marker(job_id, self._path(state, name)):
                        cleared += 1
            if not cleared:
                break
        self._ready.clear()
        self._fresh.clear()
        self._delayed.clear()

    @_os_errors
    def retry(self, job_id: str, *, state: JobStatus, reset_attempts: bool = False) -> None:
        source = "done" if state is JobStatus.DONE else "failed"
        path = self._path(source, job_id) if _ID_RE.match(str(job_id)) else ""
        try:
            text = os.readlink(path)
        except (FileNotFoundError, NotADirectoryError):
            found = self._locate(job_id)
            if found is None:
                raise JobNotFoundError(f"no job {job_id!r} in {self.describe()}") from None
            raise JobNotInStateError(
                f"job {job_id} is {_STATUS_OF_DIR[found[0]]}, not {state}") from None
        except OSError as exc:
            raise DriverError(f"job {job_id} cannot be read: {exc}") from None
        try:
            target = _Target.parse(text)
            record = _parse(self._read(job_id, target))
        except (OSError, ValueError) as exc:
            raise DriverError(f"job {job_id} cannot be retried: its record cannot be read "
                              f"({exc}); remove it") from None
        meta = {key: value for key, value in record.meta.items()
                if key not in ("error", "result", "finished_at")}
        attempt = 0 if reset_attempts else record.attempt
        new_target = self._write_record_file(job_id, _record(meta, record.payload, attempt))
        if not self._repoint(path, new_target):
            self._bury_record(job_id, new_target)
            raise JobNotFoundError(f"job {job_id} was removed during the retry")
        self._bury_record(job_id, target)
        try:
            os.rename(path, self._path("new", job_id))
        except FileNotFoundError:
            raise JobNotFoundError(f"job {job_id} was removed during the retry") from None
        self._sync_dir("new")

    def after_fork(self) -> None:
        # The parent keeps appending to its segment and owns the cached descriptors.
        self._writer = None
        self._open = OrderedDict()

    def close(self) -> None:
        try:
            self._seal()
        except OSError as exc:
            logger.warning("could not seal the segment of %s: %s", self.describe(), exc)
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()
