"""The sync driver: the queue runs each job inside ``push``, in the caller's process.

For tests and development. Jobs live in memory; there are no retries, delays or
priorities (declared, so the core refuses them), and ttr is not enforced.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from queue_core.driver import (
    Capabilities,
    Driver,
    ErrorInfo,
    JobInfo,
    JobStatus,
    Message,
    PushRequest,
)
from queue_core.errors import JobNotFoundError, JobNotInStateError


@dataclass
class _Record:
    id: str
    payload: bytes
    ttr: float
    pushed_at: float
    status: JobStatus = JobStatus.WAITING
    attempt: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    error: ErrorInfo | None = None
    result: bytes | None = None

    def info(self) -> JobInfo:
        return JobInfo(id=self.id, status=self.status, attempt=self.attempt, ttr=self.ttr,
                       pushed_at=self.pushed_at, started_at=self.started_at,
                       finished_at=self.finished_at, error=self.error, result=self.result,
                       payload=self.payload)


class SyncDriver(Driver):
    name = "sync"
    capabilities = Capabilities(
        attempt_count=True, status=True, failed_store=True, keep_completed=True,
        manual_retry=True, remove=True, clear=True, info=True, listing=True,
        runs_at_push=True)

    def __init__(self, *, channel: str = "queue") -> None:
        super().__init__(channel=channel)
        self._records: dict[str, _Record] = {}
        self._waiting: deque[str] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SyncDriver:
        return cls(**options)

    def push(self, payload: bytes, *, ttr: float, delay: float = 0.0,
             priority: int | None = None) -> str:
        with self._lock:
            job_id = str(next(self._ids))
            self._records[job_id] = _Record(job_id, payload, ttr, time.time())
            self._waiting.append(job_id)
        return job_id

    def push_many(self, requests: Sequence[PushRequest]) -> list[str]:
        return [self.push(r.payload, ttr=r.ttr) for r in requests]

    def reserve(self, timeout: float = 0.0) -> Message | None:
        with self._lock:
            while self._waiting:
                record = self._records.get(self._waiting.popleft())
                if record is None or record.status is not JobStatus.WAITING:
                    continue
                record.status = JobStatus.RESERVED
                record.attempt += 1
                record.started_at = time.time()
                return Message(record.id, record.payload, record.attempt, record.ttr,
                               pushed_at=record.pushed_at, handle=record)
        return None

    def _finish(self, message: Message, status: JobStatus, keep: bool, **fields: Any) -> None:
        with self._lock:
            if not keep:
                self._records.pop(message.id, None)
                return
            record = self._records.get(message.id)
            if record is None:
                return
            record.status = status
            record.finished_at = time.time()
            for key, value in fields.items():
                setattr(record, key, value)

    def ack(self, message: Message, *, result: bytes | None = None, keep: bool = False) -> None:
        self._finish(message, JobStatus.DONE, keep, result=result)

    def fail(self, message: Message, *, error: ErrorInfo, keep: bool = True) -> None:
        self._finish(message, JobStatus.FAILED, keep, error=error)

    def status(self, job_id: str) -> JobStatus | None:
        record = self._records.get(job_id)
        return None if record is None else record.status

    def get(self, job_id: str) -> JobInfo | None:
        record = self._records.get(job_id)
        return None if record is None else record.info()

    def info(self) -> dict[JobStatus, int]:
        counts = {status: 0 for status in JobStatus}
        for record in list(self._records.values()):
            counts[record.status] += 1
        return counts

    def jobs(self, status: JobStatus, limit: int = 100) -> list[JobInfo]:
        found = [r.info() for r in list(self._records.values()) if r.status is status]
        return found[:limit]

    def remove(self, job_id: str) -> bool:
        with self._lock:
            return self._records.pop(job_id, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._waiting.clear()

    def retry(self, job_id: str, *, state: JobStatus, reset_attempts: bool = False) -> None:
        with self._lock:
            record = self._records.get(job_id)
            if record is None:
                raise JobNotFoundError(f"no job {job_id!r} in {self.describe()}")
            if record.status is not state:
                raise JobNotInStateError(f"job {job_id} is {record.status}, not {state}")
            record.status = JobStatus.WAITING
            record.error = record.result = record.started_at = record.finished_at = None
            if reset_attempts:
                record.attempt = 0
            self._waiting.append(job_id)
