"""The records of a file queue on disk: the append-only segments pushes write, the
single-record files of rewritten records, and the markers pointing to them.

``Appender`` is the segment this process appends to (one writer process per segment, so
offsets need no coordination between processes). ``Files`` reads and rewrites records and
markers; the store and each consumer have their own, so that none closes a descriptor
another is using. ``Files.collect`` deletes what no job needs any more.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from .layout import DIRS, ID_RE, STATES, create, swap, unlink, write_all
from .records import ATTEMPT_AT, DEAD_AT, NS, SEALED, Target, parse, walk

logger = logging.getLogger(__name__)

SEGMENT_BYTES = 4 << 20
SEGMENT_SECONDS = 30.0
"""A writer starts a new segment after this many bytes or seconds, sealing the old one."""
ABANDONED_AGE = 3600.0
"""A segment untouched this long counts as sealed (its writer died), and a live record in
it without a marker is an orphan of a push that crashed before making its marker."""
OPEN_SEGMENTS = 32

_TMP_NAMES = itertools.count()
"""Numbers the temporary files of this process, for the store and its consumers alike
(taking the next number is atomic)."""


class Files:
    """Reading and writing one channel's records and markers (a lock guards the open
    segments, since a store serves several threads)."""

    def __init__(self, root: Path, mode: int, fsync: bool) -> None:
        self.root = root
        self.mode = mode
        self.fsync = fsync
        self.dirs = {state: str(root / state) for state in DIRS}
        self._open: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def path(self, state: str, name: str) -> str:
        return os.path.join(self.dirs[state], name)

    def sync_dir(self, state: str) -> None:
        if self.fsync:
            fd = os.open(self.dirs[state], os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def create(self, path: str, flags: int) -> int:
        return create(path, flags, self.mode)

    # -- segments --------------------------------------------------------------------

    def _segment_fd(self, segment: str) -> int:
        """An open descriptor of ``segment``; the caller holds the lock."""
        fd = self._open.get(segment)
        if fd is not None:
            self._open.move_to_end(segment)
            return fd
        fd = os.open(self.path("segments", segment), os.O_RDWR)
        self._open[segment] = fd
        if len(self._open) > OPEN_SEGMENTS:
            _, old = self._open.popitem(last=False)
            os.close(old)
        return fd

    def forget_segment(self, segment: str) -> None:
        with self._lock:
            fd = self._open.pop(segment, None)
            if fd is not None:
                os.close(fd)

    # -- records ---------------------------------------------------------------------

    def read(self, job_id: str, target: Target) -> bytes:
        if target.in_records:
            with open(self.path("records", target.record_file(job_id)), "rb") as handle:
                return handle.read()
        with self._lock:
            return os.pread(self._segment_fd(target.segment), target.length, target.offset)

    def update_header(self, job_id: str, target: Target, data: bytes) -> None:
        """Rewrite attempt, running flag and start time of a record in place."""
        if target.in_records:
            fd = os.open(self.path("records", target.record_file(job_id)), os.O_WRONLY)
            try:
                os.pwrite(fd, data, ATTEMPT_AT)
            finally:
                os.close(fd)
        else:
            with self._lock:
                os.pwrite(self._segment_fd(target.segment), data, target.offset + ATTEMPT_AT)

    def bury_record(self, job_id: str, target: Target) -> None:
        """The job is gone: free its record (a segment goes when all its records have)."""
        try:
            if target.in_records:
                os.unlink(self.path("records", target.record_file(job_id)))
            else:
                with self._lock:
                    os.pwrite(self._segment_fd(target.segment), b"1",
                              target.offset + DEAD_AT)
        except FileNotFoundError:
            pass

    def write_record_file(self, job_id: str, data: bytes) -> Target:
        """Write a record to a new file of records/ (never over the one a marker may point
        to) and return its target."""
        target = Target.new_record_file(secrets.token_hex(4))
        tmp = self.path("tmp", f"r{os.getpid()}.{next(_TMP_NAMES)}")
        fd = self.create(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            write_all(fd, data, self.fsync)
        except OSError:
            os.close(fd)
            unlink(tmp)
            raise
        os.close(fd)
        os.replace(tmp, self.path("records", target.record_file(job_id)))
        return target

    # -- markers ---------------------------------------------------------------------

    def repoint(self, path: str, target: Target, ready_ns: int = 0) -> bool:
        """Point the marker at ``path`` to ``target``, only if it is still there (a job
        removed, cleared or taken back by its lease meanwhile must not come back).
        False, with nothing changed, when it is gone."""
        new = self.path("tmp", f"m{os.getpid()}.{next(_TMP_NAMES)}")
        os.symlink(target.text(ready_ns), new)
        try:
            swapped = swap(new, path)
        except OSError:
            unlink(new)
            raise
        unlink(new)  # after the swap: the old marker
        return swapped

    def locate(self, job_id: str) -> tuple[str, str] | None:
        """(state, marker path) of a job, or None. Looks twice: a job may move meanwhile."""
        if not isinstance(job_id, str) or not ID_RE.match(job_id):
            return None
        for _ in range(2):
            for state in STATES:
                if state == "reserved":
                    prefix = job_id + "~"
                    for name in os.listdir(self.dirs["reserved"]):
                        if name.startswith(prefix):
                            return state, self.path(state, name)
                    continue
                path = self.path(state, job_id)
                if os.path.lexists(path):
                    return state, path
        return None

    # -- collection ------------------------------------------------------------------

    def collect(self, now_ns: int, current: str | None) -> None:
        """Delete sealed segments whose records are all dead (never ``current``, the one
        this process appends to), and temporary files left by a crash. A segment untouched
        for ABANDONED_AGE counts as sealed, and its live records that no marker points to
        (a push that died before its marker) as dead."""
        abandoned = now_ns - int(ABANDONED_AGE * NS)
        for name in os.listdir(self.dirs["segments"]):
            if name == current:
                continue
            path = self.path("segments", name)
            try:
                old = os.stat(path).st_mtime_ns < abandoned
                with open(path, "rb") as handle:
                    data = handle.read()
            except FileNotFoundError:
                continue
            if not (data.endswith(SEALED) or old):
                continue
            if all(dead for dead in self._liveness(name, data, old)):
                self.forget_segment(name)
                unlink(path)
        for name in os.listdir(self.dirs["tmp"]):
            path = self.path("tmp", name)
            try:
                if os.lstat(path).st_mtime_ns < abandoned:
                    os.unlink(path)
            except FileNotFoundError:
                continue

    def _liveness(self, segment: str, data: bytes, old: bool) -> Iterator[bool]:
        """For each record of a segment: True if it is dead (or an orphan in an old one)."""
        for offset, length, dead in walk(data):
            if not dead and old:
                try:
                    job_id = parse(data[offset:offset + length]).meta.get("id", "")
                except ValueError:
                    job_id = ""
                found = self.locate(job_id) if job_id else None
                dead = found is None or Target.parse(
                    os.readlink(found[1])).segment != segment
            yield dead

    # -- lifetime --------------------------------------------------------------------

    def after_fork(self) -> None:
        # The descriptors are shared with the parent, which closes them; the lock may have
        # been held by a thread that does not exist in the child.
        self._open = OrderedDict()
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            for fd in self._open.values():
                os.close(fd)
            self._open.clear()


class Appender:
    """The segment this process appends pushed records to, shared by its threads."""

    def __init__(self, files: Files) -> None:
        self.files = files
        self.lock = threading.Lock()
        self.writer: tuple[int, str, int, int, float] | None = None
        """(pid, segment, fd, size, opened at) of the segment this process appends to."""

    def current(self) -> str | None:
        """The segment being appended to, which no collector may delete."""
        writer = self.writer
        return writer[1] if writer is not None else None

    def append(self, data: bytes) -> tuple[str, int]:
        """Append ``data`` in one write; returns (segment, offset of the data)."""
        with self.lock:
            pid = os.getpid()
            writer = self.writer
            if writer is not None and (writer[0] != pid or writer[3] >= SEGMENT_BYTES
                                       or time.monotonic() - writer[4] > SEGMENT_SECONDS):
                self._seal()
                writer = None
            if writer is None:
                segment = secrets.token_hex(8)
                fd = self.files.create(self.files.path("segments", segment),
                                       os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL)
                writer = (pid, segment, fd, 0, time.monotonic())
                self.writer = writer
            _, segment, fd, size, opened = writer
            try:
                write_all(fd, data, self.files.fsync)
            except OSError:
                # A part of the data may be in the file (a full disk): offsets after it
                # would be wrong, so this segment takes no more records.
                self._abandon(size)
                raise
            self.writer = (pid, segment, fd, size + len(data), opened)
            return segment, size

    def _abandon(self, size: int) -> None:
        """Cut the segment back to ``size`` (its last complete record) and stop writing to
        it; the next append opens a new one."""
        writer, self.writer = self.writer, None
        if writer is None:
            return
        fd = writer[2]
        try:
            os.ftruncate(fd, size)
            os.write(fd, SEALED)
        except OSError as exc:
            logger.warning("could not seal segment %s after a failed write (%s); it is "
                           "collected once abandoned", writer[1], exc)
        finally:
            os.close(fd)

    def seal(self) -> None:
        """Mark our segment complete: once its records are all dead it may be deleted."""
        with self.lock:
            self._seal()

    def _seal(self) -> None:
        writer, self.writer = self.writer, None
        if writer is None:
            return
        pid, _, fd, _, _ = writer
        if pid != os.getpid():
            return  # a forked child inherited the descriptor; the parent seals it
        try:
            os.write(fd, SEALED)
        finally:
            os.close(fd)

    def after_fork(self) -> None:
        # The parent keeps appending to its segment; the lock may have been held by a
        # thread that does not exist in the child.
        self.writer = None
        self.lock = threading.Lock()
