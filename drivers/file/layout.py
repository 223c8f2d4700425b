"""Where a file queue keeps its jobs: the directories of a channel, the permissions of what
it creates, and the file-system moves every state change is made of.

A job's state is the directory its marker is in (``STATES``); ``segments/`` and
``records/`` hold the records markers point to, ``tmp/`` what is being prepared.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
from pathlib import Path
from typing import Any

from queue_core.model import JobStatus

STATES = ("new", "waiting", "delayed", "reserved", "done", "failed")
DIRS = (*STATES, "segments", "records", "tmp")
STATUS_OF_DIR = {"new": JobStatus.WAITING, "waiting": JobStatus.WAITING,
                 "delayed": JobStatus.DELAYED, "reserved": JobStatus.RESERVED,
                 "done": JobStatus.DONE, "failed": JobStatus.FAILED}
DIRS_OF_STATUS = {JobStatus.WAITING: ("new", "waiting"), JobStatus.DELAYED: ("delayed",),
                  JobStatus.RESERVED: ("reserved",), JobStatus.DONE: ("done",),
                  JobStatus.FAILED: ("failed",)}

ID_RE = re.compile(r"^[0-9a-f]{32}$")
"""A job id, which is also its marker's name (``<id>~<ns>`` in reserved/)."""
DEFAULT_MODE = 0o600
"""Files are the owner's alone unless the ``mode`` option shares them."""


def dir_mode(mode: int) -> int:
    """The mode of folders for files of ``mode``: the same bits plus search (x) where
    reading is allowed."""
    return mode | (mode & 0o444) >> 2


def make_dirs(path: Path, mode: int) -> None:
    """Create ``path`` (and missing parents) with exactly ``mode``, whatever the umask;
    a folder that exists keeps its permissions."""
    if path.is_dir():
        return
    if not path.parent.is_dir():
        make_dirs(path.parent, mode)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return
    os.chmod(path, mode)


def create(path: str, flags: int, mode: int) -> int:
    """Open a new file with ``mode``, whatever the umask."""
    fd = os.open(path, flags, mode)
    if mode != DEFAULT_MODE:
        try:
            os.fchmod(fd, mode)
        except OSError:
            os.close(fd)
            raise
    return fd


def write_all(fd: int, data: bytes, fsync: bool) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    if fsync:
        os.fsync(fd)


def unlink(path: str) -> bool:
    """Delete ``path``; False when it was already gone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_renameat2: list[Any] = []
"""libc's renameat2, looked up once: [function] or [None] where there is none."""


def exchange(first: str, second: str) -> bool | None:
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


def swap(new: str, path: str) -> bool:
    """Put ``new`` in place of ``path`` if ``path`` still exists (False when it does not).
    Without an atomic swap, checked then replaced: a marker that goes in between comes
    back, pointing at a record that exists."""
    swapped = exchange(new, path)
    if swapped is not None:
        return swapped
    if not os.path.lexists(path):
        return False
    os.replace(new, path)
    return True
