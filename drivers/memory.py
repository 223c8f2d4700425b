"""The memory driver: jobs kept in this process, for users' own tests and scripts.

Unlike the sync driver it queues: a worker (``queue.run()``, or threads calling
``listen``) runs the jobs, with retries, delays, priorities, ttr leases, status and the
failed store, exactly as a server would. ``memory://name`` names a store that every queue
of the process naming it shares; jobs end with the process.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar
from urllib.parse import urlsplit

from queue_core import progress
from queue_core.beats import decode, encode, forget_after, read_records
from queue_core.consumer import Consumer, Settlement, Verdict
from queue_core.errors import InvalidArgumentError, JobNotFoundError, JobNotInStateError
from queue_core.limits import Limiter, LocalLimiter
from queue_core.model import (
    DEFAULT_PRIORITY,
    Capabilities,
    ErrorInfo,
    JobInfo,
    JobStatus,
    Message,
    Progress,
    PushRequest,
    Retention,
    WorkerInfo,
)
from queue_core.options import (
    ADDRESS,
    CHANNEL,
    LEASE_GRACE,
    Option,
    check_options,
    documented,
    text,
    url_and_options,
)
from queue_core.store import Store


@dataclass
class _Job:
    info: JobInfo
    token: int = 0
    """Which reservation may settle the job: a new one, or a lease that ran out, changes it."""
    lost: bool = False
    unique_key: str | None = None
    """The key this job holds for its life (not a ``unique_for`` window's)."""
    cancel_mark: float = 0.0
    """When ``cancel`` asked its running worker to stop it (0: never)."""
    progress: str = ""
    """Its latest progress, in the stored form (queue_core.progress)."""


class _Jobs:
    """The jobs of one store, behind one lock; the heaps hold (key, seq, id, token) and are
    checked against the job when popped, which is cheaper than removing from them."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.jobs: dict[str, _Job] = {}
        self.ready: list[tuple[int, int, str, int]] = []
        self.timed: list[tuple[float, int, str, int]] = []
        """Delayed jobs by ready_at, and reserved ones by the end of their lease."""
        self.seq = itertools.count(1)
        self.ids = itertools.count(1)
        self.limiter = LocalLimiter()
        """The rate limits' buckets of the queues sharing these jobs."""
        self.kept: dict[JobStatus, OrderedDict[str, float]] = {
            JobStatus.DONE: OrderedDict(), JobStatus.FAILED: OrderedDict()}
        """The ids of kept DONE and FAILED jobs, oldest finish first, with their finish
        times: retention trims from the front."""
        self.unique: dict[str, tuple[str, float | None]] = {}
        """Unique keys held: key -> (job id, end of its unique_for window or None while
        the job lives)."""
        self.ahead = 0.0
        """Seconds this store's clock runs ahead of time.time(): tests move it forward
        (MemoryDriver.advance) to bring delayed jobs and retries due without waiting."""

    def now(self) -> float:
        return time.time() + self.ahead

    def holder(self, key: str, now: float) -> str | None:
        """The id of the job holding ``key``, or None when the key is free."""
        held = self.unique.get(key)
        if held is None:
            return None
        job_id, until = held
        if (job_id in self.jobs) if until is None else until > now:
            return job_id
        del self.unique[key]
        return None

    def unhold(self, job: _Job) -> None:
        """Free the key ``job`` holds for its life (it finished, failed or went)."""
        key = job.unique_key
        if key is not None and self.unique.get(key, ("", None))[0] == job.info.id:
            del self.unique[key]

    def keep(self, job: _Job, status: JobStatus, now: float, retention: Retention) -> None:
        """Keep a finished job, then drop the oldest kept beyond ``retention``."""
        self.put(job, status, now)
        kept = self.kept[status]
        kept[job.info.id] = now
        if not retention.limited:
            return
        if retention.max_count is not None:
            while len(kept) > retention.max_count:
                self.jobs.pop(kept.popitem(last=False)[0], None)
        if retention.max_age is not None:
            cut = now - retention.max_age
            while kept and next(iter(kept.values())) < cut:
                self.jobs.pop(kept.popitem(last=False)[0], None)

    def forget(self, job_id: str) -> _Job | None:
        """Drop a job, kept or not."""
        for kept in self.kept.values():
            kept.pop(job_id, None)
        job = self.jobs.pop(job_id, None)
        if job is not None:
            self.unhold(job)
        return job

    def put(self, job: _Job, status: JobStatus, ready_at: float) -> None:
        job.token += 1
        job.info.status, job.info.ready_at = status, ready_at
        entry = (ready_at, next(self.seq), job.info.id, job.token)
        if status is JobStatus.WAITING:
            heapq.heappush(self.ready, (job.info.priority or 0, *entry[1:]))
        elif status in (JobStatus.DELAYED, JobStatus.RESERVED):
            heapq.heappush(self.timed, entry)
        self.changed.notify_all()

    def live(self, job_id: str, token: int) -> _Job | None:
        job = self.jobs.get(job_id)
        return job if job is not None and job.token == token else None

    def due(self, now: float) -> float | None:
        """Wake delayed jobs and reclaim lapsed leases; the time of the next such event."""
        while self.timed and self.timed[0][0] <= now:
            _, _, job_id, token = heapq.heappop(self.timed)
            if (job := self.live(job_id, token)) is not None:
                job.lost = job.info.status is JobStatus.RESERVED
                self.put(job, JobStatus.WAITING, now)
        return self.timed[0][0] if self.timed else None


_NAMED: dict[tuple[str, str], _Jobs] = {}
_BEATS: dict[tuple[str, str], dict[str, bytes]] = {}
"""Heartbeat records of named stores, by (name, channel), then by worker id."""
_NAMED_LOCK = threading.Lock()


OPTIONS = (
    Option("name", text(empty=True), "",
           "Queues of this process built with the same name and channel share their jobs; "
           "without a name every driver has its own. memory://name gives it.", ADDRESS),
    CHANNEL,
    LEASE_GRACE,
)


@documented(OPTIONS)
class MemoryDriver(Store):
    """Jobs in this process's memory."""

    name = "memory"
    options: ClassVar[tuple[Option, ...]] = OPTIONS
    capabilities = Capabilities(
        delay=True, priority=True, ttr_lease=True, retry=True, attempt_count=True, status=True,
        failed_store=True, last_error=True, keep_completed=True, retention=True,
        manual_retry=True, remove=True,
        clear=True, info=True, listing=frozenset(JobStatus), reset_attempts=True,
        bulk_push=True, multiprocess=False, heartbeats=True, waiting_age=True, unique=True,
        rate_limit=True, cancel=True, progress=True)

    def __init__(self, name: str = "", *, channel: str = "queue", lease_grace: float = 1.0) -> None:
        super().__init__(channel=channel)
        self.lease_grace = check_options(self.name, OPTIONS,
                                         {"lease_grace": lease_grace})["lease_grace"]
        self.store_name = name
        with _NAMED_LOCK:
            self._jobs = _NAMED.setdefault((name, self.channel), _Jobs()) if name else _Jobs()
            self._beats: dict[str, bytes] = (
                _BEATS.setdefault((name, self.channel), {}) if name else {})

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryDriver:
        base, values = url_and_options(cls.name, cls.options, url, options)
        parts = urlsplit(base)
        return cls((parts.netloc + parts.path).strip("/"), **values)

    def describe(self) -> str:
        return f"memory://{self.store_name}:{self.channel}"

    def open_consumer(self) -> Consumer:
        return _MemoryConsumer(self)

    def now(self) -> float:
        """This store's clock: time.time(), plus what ``advance`` added."""
        return self._jobs.now()

    def advance(self, seconds: float) -> None:
        """Move this store's clock ``seconds`` forward, for tests (queue_core.testing.drain):
        delayed jobs, retries and lapsed leases come due as if the time had passed. Only the
        store's own times move; the core's age_limit still counts real seconds."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not (
                0 <= seconds < math.inf):
            raise InvalidArgumentError(f"advance takes seconds >= 0, got {seconds!r}")
        with self._jobs.changed:
            self._jobs.ahead += seconds
            self._jobs.changed.notify_all()

    def limiter(self) -> Limiter:
        return self._jobs.limiter

    def push(self, payload: bytes, *, ttr: float, delay: float = 0.0,
             priority: int | None = None) -> str:
        return self.push_many([PushRequest(payload, ttr, delay, priority)])[0]

    def push_many(self, requests: Sequence[PushRequest]) -> list[str]:
        now, ids = self._jobs.now(), []
        with self._jobs.changed:
            for r in requests:
                if r.unique_key is not None:
                    held = self._jobs.holder(r.unique_key, now)
                    if held is not None:
                        ids.append(held)
                        continue
                job_id = str(next(self._jobs.ids))
                info = JobInfo(job_id, JobStatus.WAITING, priority=(
                    DEFAULT_PRIORITY if r.priority is None else r.priority), ttr=r.ttr,
                    pushed_at=now, payload=bytes(r.payload))
                self._jobs.jobs[job_id] = job = _Job(info)
                if r.unique_key is not None:
                    self._jobs.unique[r.unique_key] = (
                        job_id, None if r.unique_for is None else now + r.unique_for)
                    if r.unique_for is None:
                        job.unique_key = r.unique_key
                self._jobs.put(job, JobStatus.DELAYED if r.delay > 0 else JobStatus.WAITING,
                               now + r.delay)
                ids.append(job_id)
        return ids

    def _look(self, job_id: str | None = None) -> list[JobInfo]:
        """Copies of the jobs (of one id), as they are now."""
        with self._jobs.changed:
            self._jobs.due(self._jobs.now())
            jobs = self._jobs.jobs
            found = jobs.values() if job_id is None else filter(None, [jobs.get(job_id)])
            return [replace(job.info, progress=progress.decode(job.progress, job.info.id)
                            if job.progress else None) for job in found]

    def status(self, job_id: str) -> JobStatus | None:
        return next((info.status for info in self._look(job_id)), None)

    def get(self, job_id: str) -> JobInfo | None:
        return next(iter(self._look(job_id)), None)

    def info(self) -> dict[JobStatus, int]:
        counts = dict.fromkeys(JobStatus, 0)
        for info in self._look():
            counts[info.status] += 1
        return counts

    def oldest_waiting(self) -> float | None:
        with self._jobs.changed:
            self._jobs.due(self._jobs.now())
            return min((job.info.pushed_at for job in self._jobs.jobs.values()
                        if job.info.status is JobStatus.WAITING
                        and job.info.pushed_at is not None), default=None)

    def jobs(self, status: JobStatus, limit: int = 100) -> list[JobInfo]:
        return [info for info in self._look() if info.status is status][:limit]

    def remove(self, job_id: str) -> bool:
        with self._jobs.changed:
            return self._jobs.forget(job_id) is not None

    def clear(self) -> None:
        with self._jobs.changed:
            self._jobs.jobs.clear()
            self._jobs.unique.clear()
            for kept in self._jobs.kept.values():
                kept.clear()

    def retry(self, job_id: str, *, state: JobStatus, reset_attempts: bool = False) -> None:
        with self._jobs.changed:
            job = self._jobs.jobs.get(job_id)
            if job is None:
                raise JobNotFoundError(f"no job {job_id!r} in {self.describe()}")
            if job.info.status is not state:
                raise JobNotInStateError(f"job {job_id} is {job.info.status}, not {state}")
            self._jobs.kept[state].pop(job_id, None)
            info = job.info
            info.error = info.result = info.started_at = info.finished_at = None
            info.attempt = 0 if reset_attempts else info.attempt
            job.cancel_mark, job.progress = 0.0, ""
            self._jobs.put(job, JobStatus.WAITING, self._jobs.now())

    def cancel(self, job_id: str, *, error: ErrorInfo, keep: bool = True) -> str | None:
        now = self._jobs.now()
        with self._jobs.changed:
            self._jobs.due(now)
            job = self._jobs.jobs.get(job_id)
            if job is None:
                return None
            status = job.info.status
            if status is JobStatus.RESERVED:
                job.cancel_mark = job.cancel_mark or now
                return "marked"
            if status not in (JobStatus.WAITING, JobStatus.DELAYED):
                return None
            self._jobs.unhold(job)
            if keep:
                job.info.error, job.info.finished_at = error, now
                self._jobs.keep(job, JobStatus.FAILED, now, self.retention_failed)
            else:
                self._jobs.forget(job_id)
            return "failed"

    def cancel_requested(self, job_ids: Sequence[str]) -> set[str]:
        with self._jobs.changed:
            jobs = self._jobs.jobs
            return {job_id for job_id in job_ids
                    if (job := jobs.get(job_id)) is not None and job.cancel_mark
                    and job.info.status is JobStatus.RESERVED}

    def set_progress(self, job_id: str, value: Progress) -> None:
        with self._jobs.changed:
            job = self._jobs.jobs.get(job_id)
            if job is not None:
                job.progress = progress.encode(value)

    # -- heartbeats: encoded as the other drivers store them, so the same checks apply --

    def beat(self, record: WorkerInfo) -> None:
        now = time.time()
        with self._jobs.changed:
            self._beats[record.id] = encode(record)
            for worker_id, raw in list(self._beats.items()):
                try:
                    old = decode(raw)
                except ValueError:
                    continue
                if old.age(now) > forget_after(old.period):
                    del self._beats[worker_id]

    def workers(self) -> list[WorkerInfo]:
        with self._jobs.changed:
            raws = list(self._beats.items())
        return read_records(raws, self.describe(), time.time())

    def forget_worker(self, worker_id: str) -> bool:
        with self._jobs.changed:
            return self._beats.pop(worker_id, None) is not None


class _MemoryConsumer(Consumer):
    prefetch = 1

    def __init__(self, store: MemoryDriver) -> None:
        self.store = store
        self.jobs = store._jobs

    def fetch(self, max_n: int, timeout: float,
              settle: Sequence[Settlement] = ()) -> list[Message]:
        self.settle(settle)
        deadline = time.monotonic() + timeout
        taken: list[Message] = []
        with self.jobs.changed:
            while True:
                now = self.jobs.now()
                wake = self.jobs.due(now)
                while self.jobs.ready and len(taken) < max_n:
                    _, _, job_id, token = heapq.heappop(self.jobs.ready)
                    if (job := self.jobs.live(job_id, token)) is not None:
                        taken.append(self._reserve(job, now))
                left = deadline - time.monotonic()
                if taken or left <= 0:
                    return taken
                self.jobs.changed.wait(left if wake is None else min(left, wake - now))

    def _reserve(self, job: _Job, now: float) -> Message:
        info = job.info
        info.attempt += 1
        info.started_at = now
        lost, job.lost = job.lost, False
        self.jobs.put(job, JobStatus.RESERVED, now + self.store.lease_seconds(info.ttr or 0))
        return Message(info.id, info.payload, info.attempt, info.ttr or 0, info.priority,
                       info.pushed_at, redelivered=lost, handle=job.token)

    def give_back(self, messages: Sequence[Message]) -> None:
        """Back to waiting as they were before the fetch: the attempt it counted goes."""
        now = self.jobs.now()
        with self.jobs.changed:
            for message in messages:
                job = self.jobs.live(message.id, message.handle)  # type: ignore[arg-type]
                if job is None:
                    continue  # its lease ran out: another reservation's now
                job.info.attempt = max(0, job.info.attempt - 1)
                job.lost = message.redelivered
                self.jobs.put(job, JobStatus.WAITING, now)

    def settle(self, settlements: Sequence[Settlement]) -> None:
        now = self.jobs.now()
        with self.jobs.changed:
            for s in settlements:
                job = self.jobs.live(s.message.id, s.message.handle)  # type: ignore[arg-type]
                if job is None:
                    continue  # its lease ran out: the job is another reservation's now
                if s.verdict is Verdict.RELEASE:
                    job.info.error = s.error
                    self.jobs.put(job, JobStatus.DELAYED if s.delay > 0 else JobStatus.WAITING,
                                  now + s.delay)
                elif not s.keep:
                    del self.jobs.jobs[job.info.id]
                    self.jobs.unhold(job)
                else:
                    self.jobs.unhold(job)
                    job.info.result, job.info.error, job.info.finished_at = s.result, s.error, now
                    if s.verdict is Verdict.ACK:
                        self.jobs.keep(job, JobStatus.DONE, now, self.store.retention_done)
                    else:
                        self.jobs.keep(job, JobStatus.FAILED, now,
                                       self.store.retention_failed)
