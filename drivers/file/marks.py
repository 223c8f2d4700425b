"""The file queue's cancel marks and progress records: ``marks/<id>.cancel`` (the time of
the request) and ``marks/<id>.progress`` (queue_core.progress's stored form), each written
aside and renamed into place, so a reader sees a whole file or none.

They live beside the job, not in its record: a running job's record belongs to its worker,
which rewrites it when the job ends. Marks of a job that is gone are deleted by ``purge``,
which consumers run between claims with the other chores.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from queue_core import progress

from .layout import ID_RE, create, make_dirs, unlink, write_all

MARKS = "marks"
"""The folder of marks, made at the first one."""
CANCEL = ".cancel"
PROGRESS = ".progress"
MAX_READ = progress.MAX_STORED + 1
PURGE_AGE = 60.0
"""Seconds a mark of a job that is gone (or a leftover temporary file) stays."""


class Marks:
    def __init__(self, root: Path, mode: int, dir_mode: int, fsync: bool) -> None:
        self.folder = root / MARKS
        self.mode = mode
        self.dir_mode = dir_mode
        self.fsync = fsync

    def _path(self, job_id: str, kind: str) -> str:
        return str(self.folder / f"{job_id}{kind}")

    def write(self, job_id: str, kind: str, data: bytes) -> None:
        make_dirs(self.folder, self.dir_mode)
        tmp = str(self.folder / f".{job_id}{kind}.{os.getpid()}.tmp")
        fd = create(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.mode)
        try:
            write_all(fd, data, self.fsync)
        finally:
            os.close(fd)
        os.replace(tmp, self._path(job_id, kind))

    def read(self, job_id: str, kind: str) -> bytes | None:
        """The mark's contents (at most ``MAX_READ`` bytes), or None; a link or anything
        not a regular file is not ours and reads as none."""
        try:
            fd = os.open(self._path(job_id, kind),
                         os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return os.read(fd, MAX_READ)
        finally:
            os.close(fd)

    def mark_cancel(self, job_id: str) -> None:
        if self.read(job_id, CANCEL) is None:
            self.write(job_id, CANCEL, repr(time.time()).encode())

    def cancelled(self, job_ids: Iterable[str]) -> set[str]:
        return {job_id for job_id in job_ids
                if progress.cancel_mark(self.read(job_id, CANCEL), job_id)}

    def forget(self, job_id: str) -> None:
        for kind in (CANCEL, PROGRESS):
            unlink(self._path(job_id, kind))

    def forget_all(self) -> None:
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return
        for name in names:
            unlink(str(self.folder / name))

    def purge(self, owner: Callable[[], Callable[[str], str | None]]) -> None:
        """Delete marks of jobs that are gone, cancel marks of finished jobs (a kept job
        keeps its last progress), and old temporary files. ``owner()`` makes the lookup
        of a job's state (None: gone), only when there are marks to look at."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return
        if not names:
            return
        state_of = owner()
        old = time.time() - PURGE_AGE
        for name in names:
            path = str(self.folder / name)
            job_id, _, kind = name.partition(".")
            try:
                if os.lstat(path).st_mtime > old:
                    continue
            except FileNotFoundError:
                continue
            if not ID_RE.match(job_id) or kind not in ("cancel", "progress"):
                unlink(path)  # a leftover temporary file (".<id>...tmp") or junk
                continue
            state = state_of(job_id)
            if state is None or (kind == "cancel" and state in ("done", "failed")):
                unlink(path)
