"""The file driver's unique keys: ``unique/<sha256 of the key>``, a file naming the job
that holds the key and, for a ``unique_for`` key, when the window ends.

Pushes with keys take a lock file (``flock``) for the check and the take, so two
processes cannot both find a key free. A key file is written (a temporary file renamed
into place) before its job's marker exists, so a crash between them leaves a key whose job
does not exist, which counts as free. A key held for a job's life is held while that
job's marker is in new/, waiting/, delayed/ or reserved/: the rename that finishes or
fails the job, or the unlink that removes it, frees the key (ids are never given twice);
the files left behind are deleted by a later push of the key and by a purge now and then.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .layout import create, make_dirs, unlink

LIVE = ("new", "waiting", "delayed", "reserved")
"""The states in which a job holds its key."""
PURGE_EVERY = 200
"""Locked unique pushes of one process between two purges of the keys no longer held."""


class UniqueKeys:
    """The key files of one channel."""

    def __init__(self, root: Path, mode: int, dir_mode: int,
                 state_of: Callable[[str], str | None]) -> None:
        self.dir = root / "unique"
        make_dirs(self.dir, dir_mode)
        self.mode = mode
        self._state_of = state_of
        self._threads = threading.Lock()
        self._takes = 0

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the channel's unique lock: this process's threads, then other processes."""
        with self._threads:
            fd = create(str(self.dir / ".lock"), os.O_RDWR | os.O_CREAT, self.mode)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the flock

    def _path(self, key: str) -> Path:
        return self.dir / hashlib.sha256(key.encode()).hexdigest()

    def _read(self, path: Path) -> tuple[str, int | None] | None:
        """(holder id, window end in ns or None), or None when missing or unreadable."""
        try:
            text = path.read_text()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        job_id, _, until = text.partition("\n")
        if not job_id:
            return None
        try:
            return job_id, int(until) if until else None
        except ValueError:
            return None

    def _held(self, found: tuple[str, int | None] | None, now_ns: int) -> bool:
        if found is None:
            return False
        job_id, until = found
        if until is not None:
            return until > now_ns
        return self._state_of(job_id) in LIVE

    def holder(self, key: str) -> str | None:
        """With the lock held: the id of the job holding ``key``, or None."""
        found = self._read(self._path(key))
        if found is not None and self._held(found, time.time_ns()):
            return found[0]
        return None

    def take(self, key: str, job_id: str, unique_for: float | None) -> None:
        """With the lock held: ``key`` is ``job_id``'s now."""
        until = "" if unique_for is None else str(time.time_ns() + int(unique_for * 1e9))
        tmp = self.dir / f".{secrets.token_hex(8)}.tmp"
        fd = create(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.mode)
        try:
            os.write(fd, f"{job_id}\n{until}".encode())
        finally:
            os.close(fd)
        os.replace(tmp, self._path(key))
        self._takes += 1
        if self._takes % PURGE_EVERY == 0:
            self.purge()

    def purge(self) -> None:
        """With the lock held: delete the key files no longer held."""
        now_ns = time.time_ns()
        for name in os.listdir(self.dir):
            if name.startswith("."):
                continue
            path = self.dir / name
            if not self._held(self._read(path), now_ns):
                unlink(str(path))

    def unhold(self, job_id: str) -> None:
        """Free the key ``job_id`` holds for its life (it is retried by hand: a job
        finished its run, and the retried one does not take its key back)."""
        with self.lock():
            for name in os.listdir(self.dir):
                if name.startswith("."):
                    continue
                found = self._read(self.dir / name)
                if found is not None and found == (job_id, None):
                    unlink(str(self.dir / name))

    def clear(self) -> None:
        with self.lock():
            for name in os.listdir(self.dir):
                if not name.startswith(".lock"):
                    unlink(str(self.dir / name))
