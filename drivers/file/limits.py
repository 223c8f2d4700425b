"""The file driver's rate limits: one state file per channel (``limits.json``, every
limit's bucket and slots) changed only while holding an exclusive lock on
``limits.lock``, so the workers of one machine take tokens one at a time.

The lock is ``flock``: where the platform has none (Windows) the driver does not declare
rate limits. Times are this machine's clock, which every worker of a file queue shares.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from queue_core.limits import Bucket, Limit, Limiter, Want, take_tokens

from .layout import create, write_all

AVAILABLE = importlib.util.find_spec("fcntl") is not None
"""Whether this platform has the lock the limiter needs."""
STATE = "limits.json"
LOCK = "limits.lock"


class FileLimiter(Limiter):
    def __init__(self, root: Path, mode: int, fsync: bool) -> None:
        self._state = root / STATE
        self._lock = root / LOCK
        self._mode = mode
        self._fsync = fsync

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Bucket]]:
        """Every limit's state, under the lock; written back when the block ends."""
        import fcntl

        fd = create(str(self._lock), os.O_RDWR | os.O_CREAT, self._mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            buckets = _read(self._state)
            yield buckets
            tmp = f"{self._state}.{os.getpid()}.tmp"
            out = create(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self._mode)
            try:
                write_all(out, json.dumps({name: bucket.as_data()
                                           for name, bucket in buckets.items()}).encode(),
                          self._fsync)
            finally:
                os.close(out)
            os.replace(tmp, self._state)
        finally:
            os.close(fd)  # closing lets the lock go

    def acquire(self, limits: Sequence[Limit], wants: Sequence[Want]) -> tuple[list[bool], float]:
        with self._locked() as buckets:
            for limit in limits:
                buckets.setdefault(limit.name, Bucket())
            return take_tokens(buckets, limits, wants, time.time())

    def release(self, slots: Sequence[tuple[str, str]]) -> None:
        with self._locked() as buckets:
            for name, token in slots:
                bucket = buckets.get(name)
                if bucket is not None:
                    bucket.slots.pop(token, None)


def _read(path: Path) -> dict[str, Bucket]:
    """The stored states; a missing or damaged file reads as none (full buckets, no slots
    held): a damaged file loosens the limits for a moment, never stops the queue."""
    try:
        data: Any = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(name): Bucket.from_data(state) for name, state in data.items()}
