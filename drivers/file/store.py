"""The file driver's store: ``FileDriver`` pushes jobs, answers lookups and admin calls,
and opens a consumer (consumer.py) for each worker.

It is shared by the threads of a process: records go to this process's segment through
one ``Appender``, markers are made with single renames, and every push or manual retry
rings the doorbell of the queue's idle workers (local_wakeup).
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from queue_core import beats, progress
from queue_core.consumer import Consumer
from queue_core.errors import ConfigError, DriverError, JobNotFoundError, JobNotInStateError
from queue_core.limits import Limiter
from queue_core.model import (
    DEFAULT_PRIORITY,
    UNREADABLE,
    Capabilities,
    ErrorInfo,
    JobInfo,
    JobStatus,
    Progress,
    PushRequest,
    WorkerInfo,
)
from queue_core.options import (
    ADDRESS,
    CHANNEL,
    FLAG,
    LEASE_GRACE,
    Option,
    anything,
    check_options,
    documented,
    octal_mode,
    seconds,
    url_and_options,
)
from queue_core.records import as_time
from queue_core.store import Store

from ..local_wakeup import Doorbell
from . import limits
from .consumer import FileConsumer
from .layout import (
    DEFAULT_MODE,
    DIRS,
    DIRS_OF_STATUS,
    ID_RE,
    STATES,
    STATUS_OF_DIR,
    create,
    dir_mode,
    make_dirs,
    unlink,
    write_all,
)
from .marks import PROGRESS, Marks
from .records import NS, Target, encode, parse
from .segments import Appender, Files
from .unique import UniqueKeys

logger = logging.getLogger(__name__)

WORKERS = "workers"
"""The folder of heartbeat records, made at the first beat."""
PURGE_EVERY = 10
"""Beats of one process between two looks for records of workers long gone."""

_T = TypeVar("_T")


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


OPTIONS = (
    Option("path", anything("a directory path"), None,
           "The directory; each channel is a subdirectory of it. A URL gives it: "
           "file:///absolute/path or file://./relative.", ADDRESS),
    CHANNEL,
    Option("fsync", FLAG, False,
           "fsync every record and directory change (survives a power loss; "
           "slower)."),
    Option("poll_interval", seconds(0, above=True), 0.1,
           "The longest sleep of an idle worker between looks, in seconds."),
    LEASE_GRACE,
    Option("mode", octal_mode(
        lambda mode: not mode & ~0o666 and mode & 0o600 == 0o600,
        "file permissions such as 0o600 or 0o660 that let the owner read and write"),
        DEFAULT_MODE,
        "Permissions of the files the queue creates (owner only by default, since "
        "payloads may hold personal data); 0o660 shares the queue with the group. Folders "
        "get the same bits plus search (x) where reading is allowed. Octal digits in a "
        "URL: mode=660."),
)


@documented(OPTIONS)
class FileDriver(Store):
    """Jobs as files in a local directory, safe for several workers on one machine."""

    name = "file"
    options = OPTIONS
    capabilities = Capabilities(
        delay=True, priority=True, priority_range=(0, 2**32 - 1), ttr_lease=True, retry=True,
        attempt_count=True, status=True, failed_store=True, last_error=True,
        keep_completed=True, retention=True,
        manual_retry=True, remove=True, clear=True, info=True,
        listing=frozenset(JobStatus), reset_attempts=True, bulk_push=True, heartbeats=True,
        waiting_age=True, unique=True, rate_limit=limits.AVAILABLE, cancel=True, progress=True)
    transient_errors = (OSError,)
    """Storage failures (disk full, permissions) of a consumer; the store's own calls
    wrap them (``_os_errors``)."""

    def __init__(self, path: str | os.PathLike[str], *, channel: str = "queue",
                 fsync: bool = False, poll_interval: float = 0.1,
                 lease_grace: float = 1.0, mode: int = DEFAULT_MODE) -> None:
        super().__init__(channel=channel)
        checked = check_options(self.name, self.options, {
            "fsync": fsync, "poll_interval": poll_interval, "lease_grace": lease_grace,
            "mode": mode})
        self.root = Path(path) / channel
        self.fsync: bool = checked["fsync"]
        self.poll_interval: float = checked["poll_interval"]
        self.lease_grace = checked["lease_grace"]
        self.mode: int = checked["mode"]
        self._dir_mode = dir_mode(self.mode)
        try:
            make_dirs(self.root, self._dir_mode)
            for state in DIRS:
                make_dirs(self.root / state, self._dir_mode)
        except OSError as exc:
            raise DriverError(f"cannot create the file queue at {self.root}: {exc}") from exc
        self._files = Files(self.root, self.mode, self.fsync)
        self._appender = Appender(self._files)
        self._ids = threading.Lock()
        """Guards the push sequence."""
        self._last_seq = 0
        self._doorbell = Doorbell(self.root / "wake", mode=self.mode)
        """Rung by pushes and retries; each consumer waits on its own."""
        self._beats = 0
        try:
            self._unique = UniqueKeys(self.root, self.mode, self._dir_mode, self._state_of)
        except OSError as exc:
            raise DriverError(f"cannot create the file queue at {self.root}: {exc}") from exc
        self._marks = Marks(self.root, self.mode, self._dir_mode, self.fsync)

    def _state_of(self, job_id: str) -> str | None:
        found = self._files.locate(job_id)
        return None if found is None else found[0]

    @classmethod
    def from_url(cls, url: str, **given: Any) -> FileDriver:
        base, values = url_and_options(cls.name, cls.options, url, given)
        parts = urlsplit(base)
        host = parts.netloc if parts.netloc not in ("", "localhost") else ""
        path = host + parts.path
        if not path:
            raise ConfigError(f"file URL {url!r} names no directory "
                              "(use file:///absolute/path or file://./relative)", key="driver")
        return cls(path, **values)

    def describe(self) -> str:
        return f"file:{self.root}"

    def open_consumer(self) -> Consumer:
        return FileConsumer(self)

    def limiter(self) -> Limiter:
        return limits.FileLimiter(self.root, self.mode, self.fsync)

    # -- push ------------------------------------------------------------------------

    def _new_id(self, priority: int) -> str:
        """The job's sort key: priority, push sequence, random, in fixed-width hex."""
        with self._ids:
            seq = max(time.time_ns(), self._last_seq + 1)
            self._last_seq = seq
        return f"{priority:08x}{seq:016x}{secrets.randbits(32):08x}"

    @_os_errors
    def push(self, payload: bytes, *, ttr: float, delay: float = 0.0,
             priority: int | None = None) -> str:
        return self._push_all([(payload, ttr, delay, priority)])[0]

    @_os_errors
    def push_many(self, requests: Sequence[PushRequest]) -> list[str]:
        if any(r.unique_key is not None for r in requests):
            return self._push_unique(requests)
        return self._push_all([(r.payload, r.ttr, r.delay, r.priority) for r in requests])

    def _push_unique(self, requests: Sequence[PushRequest]) -> list[str]:
        """Under the unique lock: a held key gives its holder's id; a free one is taken by
        the new job's id (its key file first, then the job; see unique.py)."""
        ids: list[str] = []
        fresh: list[tuple[bytes, float, float, int | None]] = []
        fresh_ids: list[str] = []
        taken: dict[str, str] = {}
        """Keys taken by this call: their jobs are not stored yet, so not live."""
        with self._unique.lock():
            for r in requests:
                if r.unique_key is not None:
                    held = taken.get(r.unique_key) or self._unique.holder(r.unique_key)
                    if held is not None:
                        ids.append(held)
                        continue
                job_id = self._new_id(DEFAULT_PRIORITY if r.priority is None else r.priority)
                if r.unique_key is not None:
                    self._unique.take(r.unique_key, job_id, r.unique_for)
                    taken[r.unique_key] = job_id
                fresh.append((r.payload, r.ttr, r.delay, r.priority))
                fresh_ids.append(job_id)
                ids.append(job_id)
            if fresh:
                self._push_all(fresh, fresh_ids)
        return ids

    def _push_all(self, items: list[tuple[bytes, float, float, int | None]],
                  given: list[str] | None = None) -> list[str]:
        now = time.time()
        ids, records = [], []
        for index, (payload, ttr, _, priority) in enumerate(items):
            job_id = given[index] if given is not None else self._new_id(
                DEFAULT_PRIORITY if priority is None else priority)
            ids.append(job_id)
            records.append(encode({"id": job_id, "ttr": ttr, "pushed_at": now}, payload))
        # One write for the whole batch; a crash before the markers exist leaves records no
        # marker points to, which the segment collector reclaims.
        segment, offset = self._appender.append(b"".join(records))
        delayed = False
        made: list[tuple[str, Target]] = []
        try:
            for job_id, record, (_, _, delay, _) in zip(ids, records, items, strict=True):
                target = Target(segment, offset, len(record))
                offset += len(record)
                if delay > 0:
                    path = self._files.path("delayed", job_id)
                    os.symlink(target.text(int((now + delay) * NS)), path)
                    delayed = True
                else:
                    path = self._files.path("new", job_id)
                    os.symlink(target.text(), path)
                made.append((path, target))
        except OSError:
            # The caller is told nothing was queued: take back the markers already made.
            for path, target in made:
                if unlink(path):
                    self._files.bury_record(os.path.basename(path), target)
            raise
        self._files.sync_dir("delayed" if delayed else "new")
        # Delayed pushes ring too: a waiter rereads delayed/ and sleeps until the job is due.
        self._doorbell.ring()
        return ids

    # -- lookups and admin -----------------------------------------------------------

    def _read(self, job_id: str, target: Target) -> bytes:
        return self._files.read(job_id, target)

    @_os_errors
    def status(self, job_id: str) -> JobStatus | None:
        found = self._files.locate(job_id)
        return None if found is None else STATUS_OF_DIR[found[0]]

    def _info(self, job_id: str, state: str, path: str) -> JobInfo | None:
        info = JobInfo(id=job_id, status=STATUS_OF_DIR[state], priority=int(job_id[:8], 16))
        try:
            target = Target.parse(os.readlink(path))
        except FileNotFoundError:
            return None  # moved while we looked; the caller looks again
        except (OSError, ValueError) as exc:
            info.error = ErrorInfo(UNREADABLE, str(exc))
            return info
        try:
            record = parse(self._read(job_id, target))
        except (OSError, ValueError) as exc:
            if not os.path.lexists(path):
                return None
            info.error = ErrorInfo(UNREADABLE, str(exc))
            return info
        meta = record.meta
        info.attempt = record.attempt
        info.ttr = as_time(meta.get("ttr"))
        info.pushed_at = as_time(meta.get("pushed_at"))
        info.started_at = record.started_ns / NS if record.started_ns else None
        info.finished_at = as_time(meta.get("finished_at"))
        info.ready_at = target.ready_ns / NS if state == "delayed" and target.ready_ns else None
        info.error = ErrorInfo.from_dict(meta.get("error"))
        if meta.get("result") is not None:
            try:
                info.result = base64.b64decode(meta["result"])
            except (TypeError, ValueError):
                info.error = info.error or ErrorInfo(UNREADABLE, "the stored result is damaged")
        info.payload = record.payload
        info.progress = progress.decode(self._marks.read(job_id, PROGRESS), job_id)
        return info

    @_os_errors
    def get(self, job_id: str) -> JobInfo | None:
        for _ in range(2):
            found = self._files.locate(job_id)
            if found is None:
                return None
            info = self._info(job_id, *found)
            if info is not None:
                return info
        return None

    def _names(self, state: str) -> Iterator[str]:
        for name in os.listdir(self._files.dirs[state]):
            if ID_RE.match(name.partition("~")[0]):
                yield name

    @_os_errors
    def info(self) -> dict[JobStatus, int]:
        counts = {status: 0 for status in JobStatus}
        for state in STATES:
            counts[STATUS_OF_DIR[state]] += sum(1 for _ in self._names(state))
        return counts

    @_os_errors
    def oldest_waiting(self) -> float | None:
        # A job's id holds its push time (_new_id): no record is read. A delayed job that
        # came due counts once a worker has moved it to waiting/.
        seqs = [int(name[8:24], 16) for state in DIRS_OF_STATUS[JobStatus.WAITING]
                for name in self._names(state)]
        return min(seqs) / 1e9 if seqs else None

    @_os_errors
    def jobs(self, status: JobStatus, limit: int = 100) -> list[JobInfo]:
        listed = sorted((name, state) for state in DIRS_OF_STATUS[status]
                        for name in self._names(state))
        found = []
        for name, state in listed:
            info = self._info(name.partition("~")[0], state, self._files.path(state, name))
            if info is not None:
                found.append(info)
                if len(found) >= limit:
                    break
        return found

    @_os_errors
    def remove(self, job_id: str) -> bool:
        for _ in range(3):
            found = self._files.locate(job_id)
            if found is None:
                return False
            if self._remove_marker(job_id, found[1]):
                self._marks.forget(job_id)
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
        if not unlink(path):
            return False
        try:
            target = Target.parse(text)
        except ValueError:
            return True
        self._files.bury_record(job_id, target)
        return True

    @_os_errors
    def clear(self) -> None:
        """Delete every job, one by one as ``remove`` does: a worker finishing a job at the
        same moment finds its marker gone, never a marker whose record was deleted. Names
        consumers still hold in memory fail their claim and are dropped."""
        for _ in range(3):
            cleared = 0
            for state in STATES:
                for name in os.listdir(self._files.dirs[state]):
                    job_id = name.partition("~")[0]
                    if self._remove_marker(job_id, self._files.path(state, name)):
                        cleared += 1
            if not cleared:
                break
        self._unique.clear()
        self._marks.forget_all()

    @_os_errors
    def retry(self, job_id: str, *, state: JobStatus, reset_attempts: bool = False) -> None:
        source = "done" if state is JobStatus.DONE else "failed"
        path = self._files.path(source, job_id) if ID_RE.match(str(job_id)) else ""
        try:
            text = os.readlink(path)
        except (FileNotFoundError, NotADirectoryError):
            found = self._files.locate(job_id)
            if found is None:
                raise JobNotFoundError(f"no job {job_id!r} in {self.describe()}") from None
            raise JobNotInStateError(
                f"job {job_id} is {STATUS_OF_DIR[found[0]]}, not {state}") from None
        except OSError as exc:
            raise DriverError(f"job {job_id} cannot be read: {exc}") from None
        try:
            target = Target.parse(text)
            record = parse(self._read(job_id, target))
        except (OSError, ValueError) as exc:
            raise DriverError(f"job {job_id} cannot be retried: its record cannot be read "
                              f"({exc}); remove it") from None
        meta = {key: value for key, value in record.meta.items()
                if key not in ("error", "result", "finished_at")}
        attempt = 0 if reset_attempts else record.attempt
        new_target = self._files.write_record_file(job_id, encode(meta, record.payload,
                                                                  attempt))
        if not self._files.repoint(path, new_target):
            self._files.bury_record(job_id, new_target)
            raise JobNotFoundError(f"job {job_id} was removed during the retry")
        self._files.bury_record(job_id, target)
        self._unique.unhold(job_id)
        self._marks.forget(job_id)  # before it can run again: its new progress stays
        try:
            os.rename(path, self._files.path("new", job_id))
        except FileNotFoundError:
            raise JobNotFoundError(f"job {job_id} was removed during the retry") from None
        self._files.sync_dir("new")
        self._doorbell.ring()

    def _collect(self, now_ns: int) -> None:
        """Delete what no job needs any more (``Files.collect``, and marks of jobs that
        are gone); consumers do it between claims."""
        self._files.collect(now_ns, self._appender.current())
        self._marks.purge(self._mark_owner)

    def _mark_owner(self) -> Callable[[str], str | None]:
        """A lookup of the state of a job that has marks (None: gone), for one purge: the
        reserved markers are listed once, the other states are one lstat each."""
        files = self._files
        reserved = {name.partition("~")[0] for name in os.listdir(files.dirs["reserved"])}

        def state(job_id: str) -> str | None:
            if job_id in reserved:
                return "reserved"
            for name in ("new", "waiting", "delayed", "done", "failed"):
                if os.path.lexists(files.path(name, job_id)):
                    return name
            return None
        return state

    # -- cancellation and progress: marks/ (marks.py) ----------------------------------

    @_os_errors
    def cancel(self, job_id: str, *, error: ErrorInfo, keep: bool = True) -> str | None:
        for _ in range(3):
            found = self._files.locate(job_id)
            if found is None:
                return None
            state, path = found
            if state == "reserved":
                self._marks.mark_cancel(job_id)
                return "marked"
            if state in ("done", "failed"):
                return None
            # Claimed as a worker claims it, by a rename into reserved/: of a worker and a
            # cancel racing, exactly one wins. Should this process die before the job is
            # failed, its lease brings it back to waiting.
            claimed = self._files.path("reserved", f"{job_id}~{time.time_ns()}")
            try:
                os.rename(path, claimed)
            except FileNotFoundError:
                continue  # claimed or moved meanwhile: look again
            if not keep:
                self._remove_marker(job_id, claimed)
                self._marks.forget(job_id)
                return "failed"
            try:
                target = Target.parse(os.readlink(claimed))
                record = parse(self._read(job_id, target))
            except (OSError, ValueError) as exc:
                raise DriverError(f"job {job_id} cannot be cancelled: its record cannot be "
                                  f"read ({exc}); its lease brings it back to waiting") from exc
            meta = {**record.meta, "finished_at": time.time(), "error": error.as_dict()}
            new_target = self._files.write_record_file(job_id, encode(
                meta, record.payload, record.attempt, False, record.started_ns))
            if not self._files.repoint(claimed, new_target):
                self._files.bury_record(job_id, new_target)
                return None  # removed meanwhile
            self._files.bury_record(job_id, target)
            os.rename(claimed, self._files.path("failed", job_id))
            self._files.sync_dir("failed")
            return "failed"
        return None

    @_os_errors
    def cancel_requested(self, job_ids: Sequence[str]) -> set[str]:
        return self._marks.cancelled(job_ids)

    @_os_errors
    def set_progress(self, job_id: str, value: Progress) -> None:
        if not ID_RE.match(str(job_id)):
            return
        self._marks.write(job_id, PROGRESS, progress.encode(value).encode("utf-8"))

    # -- heartbeats: workers/<worker id>.json, one file per worker --------------------

    @_os_errors
    def beat(self, record: WorkerInfo) -> None:
        folder = self.root / WORKERS
        make_dirs(folder, self._dir_mode)
        # Written aside, then renamed over the old record: a reader sees one or the other.
        tmp = str(folder / f".{record.id}.tmp")
        fd = create(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.mode)
        try:
            write_all(fd, beats.encode(record), self.fsync)
        finally:
            os.close(fd)
        os.replace(tmp, folder / f"{record.id}.json")
        self._beats += 1
        if self._beats % PURGE_EVERY == 1:
            self._purge_beats(folder, time.time())

    def _purge_beats(self, folder: Path, now: float) -> None:
        """Delete the records (and leftover temporary files) of workers long gone."""
        for name, raw, changed in self._beat_files(folder, with_temporary=True):
            try:
                info = beats.decode(raw)
                gone = info.age(now) > beats.forget_after(info.period)
            except ValueError:
                gone = now - changed > beats.forget_after(0)
            if gone:
                unlink(str(folder / name))

    def _beat_files(self, folder: Path,
                    with_temporary: bool = False) -> Iterator[tuple[str, bytes, float]]:
        """(name, contents, mtime) of each record file; what is not a regular file is
        skipped, and a record is read up to just past the size any record may have."""
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return
        for name in names:
            if not name.endswith(".json") and not (with_temporary and name.endswith(".tmp")):
                continue
            try:
                fd = os.open(folder / name, os.O_RDONLY | os.O_NONBLOCK
                             | getattr(os, "O_NOFOLLOW", 0))
            except OSError:
                continue  # gone meanwhile, or a link: not ours
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    continue
                raw = os.read(fd, beats.MAX_RECORD + 1)
            finally:
                os.close(fd)
            yield name, raw, info.st_mtime

    @_os_errors
    def workers(self) -> list[WorkerInfo]:
        folder = self.root / WORKERS
        return beats.read_records(((name, raw) for name, raw, _ in self._beat_files(folder)),
                            self.describe(), time.time())

    @_os_errors
    def forget_worker(self, worker_id: str) -> bool:
        if not beats.WORKER_ID_RE.match(str(worker_id)):
            return False
        return unlink(str(self.root / WORKERS / f"{worker_id}.json"))

    # -- lifetime --------------------------------------------------------------------

    def after_fork(self) -> None:
        # The parent keeps appending to its segment and owns the cached descriptors; a
        # lock may have been held by a thread that does not exist in the child.
        self._appender.after_fork()
        self._ids = threading.Lock()
        self._files.after_fork()
        self._doorbell.after_fork()

    def close(self) -> None:
        try:
            self._appender.seal()
        except OSError as exc:
            logger.warning("could not seal the segment of %s: %s", self.describe(), exc)
        self._files.close()
        self._doorbell.close()
