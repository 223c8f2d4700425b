"""The Queue component: push pipeline, ttr and retry policy, events, admin calls.

Every decision lives here; drivers are told what to do. Precedence, lowest to highest:

=============== ============== ============= ============== ======================
what            queue setting  job           push argument  event (last word)
=============== ============== ============= ============== ======================
ttr             ``ttr``        get_ttr()     push(ttr=)     before_push event.ttr
retry or not    attempts,      can_retry()   push(attempts=) after_error event.retry
                age_limit                    (for attempts)
retry delay     ``backoff``    ``backoff``   push(backoff=) after_error event.delay
=============== ============== ============= ============== ======================
"""

from __future__ import annotations

import importlib
import logging
import math
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import bounds, events, producing_async, retention, unique
from .consuming import Consumption
from .driver import Capabilities, ErrorInfo, JobInfo, JobStatus, Message, PushRequest
from .errors import (
    ConfigError,
    DamagedJobError,
    DriverError,
    InvalidArgumentError,
    JobCancelledError,
    JobNotFoundError,
    JobNotInStateError,
    NotSupportedError,
    SerializationError,
    WorkerLostError,
)
from .events import EventHub, ExecEvent, PushEvent, RetryEvent
from .heartbeat import DEFAULT_PERIOD, check_period
from .isolation import parse_mode
from .job import Job, RetryableJob, registered_types
from .limits import Limit, job_limit, parse_limit
from .logfields import job_extra
from .model import WorkerInfo
from .records import usable_ttr
from .retry import Backoff, BackoffFn, RetryLimits, backoff_to_meta, evaluate_backoff
from .schedules import parse_catch_up, parse_schedules
from .serializers import JsonSerializer, Meta, PickleSerializer, Serializer
from .store import Store
from .tracing import check_setting, check_traceparent

if TYPE_CHECKING:
    from .tracing import Tracing
    from .worker import Worker

logger = logging.getLogger(__name__)

_UNSET: Any = object()


def _setting(check: Callable[..., Any], value: Any, key: str, **limits: Any) -> Any:
    """A bounds check on a setting: its failure is a ConfigError naming the key."""
    try:
        return check(value, key, **limits)
    except InvalidArgumentError as exc:
        raise ConfigError(str(exc), key=key) from None


def read_meta(raw: Any) -> Meta:
    """The per-push settings of a payload, checked as data: whole numbers within bounds and
    built-in backoffs described by type and numbers. Keys this version does not know are
    left out (a newer producer may send them); nothing is ever imported or called."""
    if not isinstance(raw, dict):
        raise SerializationError("payload 'meta' is not an object")
    meta: Meta = {}
    if "attempts" in raw:
        try:
            meta["attempts"] = bounds.attempts(raw["attempts"], "payload meta.attempts")
        except InvalidArgumentError as exc:
            raise SerializationError(str(exc)) from None
    if raw.get("backoff") is not None:
        try:
            meta["backoff"] = Backoff.from_data(raw["backoff"], "payload meta.backoff")
        except ConfigError as exc:
            raise SerializationError(f"{exc} (a payload carries only a built-in backoff "
                                     "as data)") from None
    if "trace" in raw:
        # Only an observer's hint: a bad one is dropped, and the job runs as it would.
        trace = check_traceparent(raw["trace"])
        if trace is None:
            logger.debug("payload meta.trace is not a traceparent; ignored")
        else:
            meta["trace"] = trace
    return meta


def error_info(error: BaseException) -> ErrorInfo:
    kind = type(error)
    name = kind.__qualname__ if kind.__module__ == "builtins" else (
        f"{kind.__module__}.{kind.__qualname__}")
    text = "".join(traceback.format_exception(kind, error, error.__traceback__))
    return ErrorInfo(name, str(error), text)


def _resolve_serializer(value: Any) -> Serializer:
    if value is None or value == "json":
        return JsonSerializer()
    if value == "pickle":
        return PickleSerializer()
    if isinstance(value, type) and issubclass(value, Serializer):
        return value()
    if isinstance(value, Serializer):
        return value
    raise ConfigError(f"serializer must be 'json', 'pickle' or a Serializer, got {value!r}",
                      key="serializer")


class Queue:
    """A queue over one driver. See the module docstring for who decides what."""

    EVENT_BEFORE_PUSH = events.BEFORE_PUSH
    EVENT_AFTER_PUSH = events.AFTER_PUSH
    EVENT_BEFORE_EXEC = events.BEFORE_EXEC
    EVENT_AFTER_EXEC = events.AFTER_EXEC
    EVENT_AFTER_ERROR = events.AFTER_ERROR
    EVENT_AFTER_FAIL = events.AFTER_FAIL
    EVENT_AFTER_RETRY = events.AFTER_RETRY
    EVENT_WORKER_START = events.WORKER_START
    EVENT_WORKER_LOOP = events.WORKER_LOOP
    EVENT_WORKER_STOP = events.WORKER_STOP

    def __init__(self, driver: Store | str, ttr: float = 300, attempts: int | None = 1,
                 backoff: Any = None, age_limit: float | None = None,
                 serializer: Serializer | str | None = None,
                 keep_completed: bool | int | Mapping[str, float] = False,
                 keep_failed: bool | int | Mapping[str, float] = True, *,
                 imports: Iterable[str] = (),
                 isolate: bool | str = False, concurrency: int = 1,
                 async_concurrency: int = bounds.ASYNC_CONCURRENCY,
                 heartbeat: float = DEFAULT_PERIOD, tracing: bool = False,
                 schedules: Iterable[Mapping[str, Any]] | None = None,
                 catch_up: str | Mapping[str, int] = "none",
                 rate: str | float | None = None, bucket_size: int | None = None,
                 max_concurrent: int | None = None) -> None:
        if isinstance(driver, str):
            from .settings import driver_from_url
            driver = driver_from_url(driver)
        if not isinstance(driver, Store):
            raise ConfigError(f"driver must be a driver (a Store) or a URL, got {driver!r}",
                              key="driver")
        self.driver = driver
        self.ttr: float = _setting(bounds.ttr, ttr, "ttr")
        self.attempts: int | None = _setting(bounds.attempts, attempts, "attempts")
        self.age_limit: float | None = None if age_limit is None else _setting(
            bounds.seconds, age_limit, "age_limit", limit=math.inf, positive=True)
        self.backoff: BackoffFn | None = Backoff.parse(backoff)
        self.serializer = _resolve_serializer(serializer)
        self.keep_completed, self.retention_completed = retention.parse_keep(
            keep_completed, "keep_completed")
        self.keep_failed, self.retention_failed = retention.parse_keep(
            keep_failed, "keep_failed")
        self.isolate = self.isolation(isolate)
        self.concurrency: int = _setting(bounds.concurrency, concurrency, "concurrency")
        self.async_concurrency: int = _setting(bounds.concurrency, async_concurrency,
                                               "async_concurrency")
        self.heartbeat: float = _setting(check_period, heartbeat, "heartbeat")
        """Seconds between a worker's heartbeats (0: none), where the driver stores them."""
        if isinstance(imports, str):
            imports = [imports]
        self.imports = list(imports)
        self.schedules = parse_schedules(schedules)
        """Periodic schedules, run by ``queue-core scheduler`` or ``listen --scheduler``
        (scheduler.py)."""
        self.catch_up = parse_catch_up(catch_up)
        self._limits = RetryLimits(self.attempts, self.age_limit)
        self.limit: Limit | None = parse_limit("queue", rate, bucket_size, max_concurrent)
        """The queue's rate limits (``rate``, ``bucket_size``, ``max_concurrent``)."""
        self._unlimited_types: set[type] = set()
        self._events = EventHub()
        self._job_backoffs: dict[type, BackoffFn | None] = {}
        self._sync_worker: Worker | None = None
        self._own_consumption: Consumption | None = None
        self._check_settings()
        self.tracing = check_setting(tracing)
        self._tracing: Tracing | None = None
        if tracing:
            from .tracing import Tracing
            self._tracing = Tracing(self)

    # -- capabilities ----------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return self.driver.capabilities

    def _require(self, flag: str, feature: str) -> None:
        if not getattr(self.driver.capabilities, flag):
            raise NotSupportedError(f"the {self.driver.name} driver does not support {feature}")

    def isolation(self, mode: bool | str) -> str | None:
        """The isolation mode ``mode`` names, refused where children cannot reach the jobs."""
        found = parse_mode(mode)
        if found and not self.driver.capabilities.multiprocess:
            raise NotSupportedError(
                f"the {self.driver.name} driver does not support isolated jobs "
                f"(isolate={mode!r}): it keeps its jobs in this process, and a job run in a "
                "child process could not push or report to it")
        return found

    def _check_settings(self) -> None:
        caps = self.driver.capabilities
        if not caps.retry and (self.attempts != 1 or self.age_limit is not None):
            raise NotSupportedError(
                f"the {self.driver.name} driver does not support retries "
                f"(attempts={self.attempts}, age_limit={self.age_limit}): "
                "set attempts=1 and no age_limit")
        # Keeping comes first: a driver that keeps no DONE jobs refuses keep_completed in
        # any form, a count or an age included, even where it can limit FAILED ones.
        if self.keep_completed:
            self._require("keep_completed", "keeping completed jobs (keep_completed: keep "
                          f"{retention.describe(True, self.retention_completed)})")
        if self.keep_failed:
            self._require("failed_store", "keeping failed jobs (keep_failed: keep "
                          f"{retention.describe(True, self.retention_failed)})")
        for key, kept, limits in (("keep_completed", self.keep_completed,
                                   self.retention_completed),
                                  ("keep_failed", self.keep_failed, self.retention_failed)):
            if not limits.limited:
                continue
            self._require("retention", f"limits on kept jobs ({key}: keep "
                          f"{retention.describe(kept, limits)}); set {key} to true "
                          "to keep every job")
            longest = caps.max_retention_age
            if limits.max_age is not None and longest is not None and limits.max_age > longest:
                raise NotSupportedError(
                    f"the {self.driver.name} driver does not support {key}.max_age "
                    f"{limits.max_age:g} s: it keeps jobs for at most {longest:g} s")
        self.driver.set_retention(done=self.retention_completed, failed=self.retention_failed)
        if self.limit is not None and not caps.rate_limit:
            raise NotSupportedError(
                f"the {self.driver.name} driver does not support rate limits "
                f"({_describe_limit(self.limit)}): it cannot hold them across workers")

    # -- events ----------------------------------------------------------------------

    def on(self, name: str, handler: events.Handler) -> None:
        self._events.on(name, handler)

    def off(self, name: str, handler: events.Handler | None = None) -> bool:
        return self._events.off(name, handler)

    def trigger(self, name: str, event: Any) -> Any:
        return self._events.trigger(name, event)

    def has_handlers(self, name: str) -> bool:
        return self._events.has(name)

    # -- push ------------------------------------------------------------------------

    def push(self, job: Job, delay: float = 0, priority: int | None = None,
             ttr: float | None = None, *, attempts: int | None = _UNSET,
             backoff: Any = None, unique_key: str | None = None,
             unique_for: float | None = None, connection: Any = None) -> str | None:
        """Queue a job; returns its id, or None when a before_push handler cancelled it.

        With ``unique_key`` (or a key from the job's ``get_unique_key()``), a push while a
        job holding the key is waiting, delayed or running stores nothing and returns that
        job's id; with ``unique_for`` the key is held that many seconds from the push
        instead (docs/flow.md, "Unique jobs").

        With ``connection`` (the db driver: an SQLAlchemy ``Connection`` or ``Session``, or
        a DB-API connection, to the queue's own database), the job is written in that
        connection's transaction: a rollback leaves no job, and workers see it once the
        caller commits (docs/transactions.md)."""
        keyed = (unique_key, unique_for)
        if self._tracing is not None:
            with self._tracing.sending(1) as span:
                job_id = self._push(job, delay, priority, ttr, attempts, backoff, keyed,
                                    connection)
                self._tracing.sent(span, job_id)
                return job_id
        return self._push(job, delay, priority, ttr, attempts, backoff, keyed, connection)

    def _push(self, job: Job, delay: float, priority: int | None, ttr: float | None,
              attempts: int | None, backoff: Any,
              keyed: tuple[str | None, float | None] = (None, None),
              connection: Any = None) -> str | None:
        if connection is not None:
            self._check_connection_push(keyed[0] is not None)
        prepared = self._prepare(job, delay, priority, ttr, attempts, backoff, keyed)
        if prepared is None:
            return None
        request, event = prepared
        if connection is not None:
            self._check_connection_push(request.unique_key is not None)
            job_id = self.driver.push_in(connection, [request])[0]
        elif request.unique_key is None:
            job_id = self.driver.push(request.payload, ttr=request.ttr, delay=request.delay,
                                      priority=request.priority)
        else:
            job_id = self.driver.push_many([request])[0]
        self._after_push(event, job_id)
        if self.driver.capabilities.runs_at_push:
            self._run_at_push()
        return job_id

    def push_many(self, jobs: Iterable[Job], delay: float = 0, priority: int | None = None,
                  ttr: float | None = None, *, attempts: int | None = _UNSET,
                  backoff: Any = None, unique_for: float | None = None,
                  connection: Any = None) -> list[str | None]:
        """Queue several jobs, in one round trip where the driver allows. Every job is
        encoded before anything is written. A cancelled job's place holds None.

        Each job's unique key comes from its ``get_unique_key()`` (one key for every job
        would store only the first); ``unique_for`` applies to each job that has one. A
        job whose key is held, by an earlier job of the same call too, gets the id of
        the job that holds it. ``connection`` is as for ``push``."""
        if unique_for is not None:
            unique.check_for(unique_for)
        if connection is not None:
            self._check_connection_push(unique_for is not None)
        if self._tracing is not None:
            listed = list(jobs)
            with self._tracing.sending(len(listed)):
                return self._push_many(listed, delay, priority, ttr, attempts, backoff,
                                       unique_for, connection)
        return self._push_many(jobs, delay, priority, ttr, attempts, backoff, unique_for,
                               connection)

    def _push_many(self, jobs: Iterable[Job], delay: float, priority: int | None,
                   ttr: float | None, attempts: int | None, backoff: Any,
                   unique_for: float | None = None,
                   connection: Any = None) -> list[str | None]:
        if not (self._events.has(events.BEFORE_PUSH) or self._events.has(events.AFTER_PUSH)):
            return self._push_many_plain(jobs, delay, priority, ttr, attempts, backoff,
                                         unique_for, connection)
        prepared = [self._prepare(job, delay, priority, ttr, attempts, backoff,
                                  (None, unique_for), many=True) for job in jobs]
        wanted = [p for p in prepared if p is not None]
        ids = iter(self._store_many([request for request, _ in wanted], connection)
                   if wanted else [])
        result: list[str | None] = []
        for item in prepared:
            if item is None:
                result.append(None)
                continue
            job_id = next(ids)
            self._after_push(item[1], job_id)
            result.append(job_id)
        if wanted and self.driver.capabilities.runs_at_push:
            self._run_at_push()
        return result

    def _push_many_plain(self, jobs: Iterable[Job], delay: float, priority: int | None,
                         ttr: float | None, attempts: int | None,
                         backoff: Any, unique_for: float | None = None,
                         connection: Any = None) -> list[str | None]:
        """push_many without push handlers: the arguments are the same for every job, so
        they are checked once."""
        delay = self._check_delay(delay)
        priority = self._check_priority(priority)
        fixed_ttr = None if ttr is None else self._check_ttr(ttr, "ttr")
        meta = self._push_meta(attempts, backoff)
        dumps = self.serializer.dumps
        listed = list(jobs)
        requests = [PushRequest(dumps(job, meta), self._job_ttr(job, fixed_ttr), delay, priority,
                                *self.unique_of(job, None, unique_for, many=True))
                    for job in listed]
        if self.driver.payload_limit() is not None:
            for job, request in zip(listed, requests, strict=True):
                self._check_size(request.payload, job)
        if not requests:
            return []
        ids: list[str | None] = list(self._store_many(requests, connection))
        if self.driver.capabilities.runs_at_push:
            self._run_at_push()
        return ids

    def _store_many(self, requests: list[PushRequest], connection: Any) -> list[str]:
        if connection is None:
            return self.driver.push_many(requests)
        self._check_connection_push(any(r.unique_key is not None for r in requests))
        return self.driver.push_in(connection, requests)

    def _check_connection_push(self, keyed: bool) -> None:
        self._require("transactional_push", "push(connection=...): writing a job in the "
                      "caller's transaction")
        if keyed:
            # A key taken by a concurrent push makes the write fail, and that would abort
            # the caller's whole transaction; a keyed push retries in a transaction of its
            # own instead.
            raise NotSupportedError("a job with a unique key cannot be pushed in the "
                                    "caller's transaction (push(connection=...)); push it "
                                    "without connection=, or after the commit")

    # -- push and look up from asyncio code (producing_async.py) ---------------------

    async def apush(self, job: Job, delay: float = 0, priority: int | None = None,
                    ttr: float | None = None, *, attempts: int | None = _UNSET,
                    backoff: Any = None, unique_key: str | None = None,
                    unique_for: float | None = None) -> str | None:
        """``push`` for asyncio code: the same arguments, checks, events, ids and errors,
        without blocking the event loop. Concurrent calls of one loop share round trips."""
        keyed = (unique_key, unique_for)
        if self._tracing is not None:
            with self._tracing.sending(1) as span:
                job_id = await producing_async.apush(self, job, delay, priority, ttr, attempts,
                                                     backoff, keyed)
                self._tracing.sent(span, job_id)
                return job_id
        return await producing_async.apush(self, job, delay, priority, ttr, attempts, backoff,
                                           keyed)

    async def apush_many(self, jobs: Iterable[Job], delay: float = 0,
                         priority: int | None = None, ttr: float | None = None, *,
                         attempts: int | None = _UNSET, backoff: Any = None,
                         unique_for: float | None = None) -> list[str | None]:
        """``push_many`` for asyncio code, as ``apush`` is ``push``."""
        if unique_for is not None:
            unique.check_for(unique_for)
        if self._tracing is not None:
            listed = list(jobs)
            with self._tracing.sending(len(listed)):
                return await producing_async.apush_many(self, listed, delay, priority, ttr,
                                                        attempts, backoff, unique_for)
        return await producing_async.apush_many(self, jobs, delay, priority, ttr, attempts,
                                                backoff, unique_for)

    async def astatus(self, job_id: str) -> JobStatus:
        """``status`` for asyncio code: the lookup runs in a thread."""
        self._require("status", "job status")
        return await producing_async.alookup(self, self.status, job_id)

    async def aget(self, job_id: str) -> JobInfo:
        """``get`` for asyncio code: the lookup runs in a thread."""
        self._require("status", "job lookup")
        return await producing_async.alookup(self, self.get, job_id)

    def _job_ttr(self, job: Job, ttr: float | None) -> float:
        """push(ttr=), else the job's get_ttr(), else the queue's ttr."""
        if not isinstance(job, Job):
            raise InvalidArgumentError(
                f"push() takes a Job instance, got {type(job).__qualname__}")
        if type(job) not in self._unlimited_types:
            self._check_job_limit(type(job))
        if ttr is not None:
            return ttr
        if isinstance(job, RetryableJob):
            job_ttr = job.get_ttr()
            if job_ttr is not None:
                return self._check_ttr(job_ttr, f"{type(job).__qualname__}.get_ttr()")
        return self.ttr

    def _check_job_limit(self, kind: type) -> None:
        """A job type's rate limits are refused at push where the driver cannot hold them
        (and checked: ConfigError naming the class)."""
        limit = job_limit(kind)
        if limit is not None and not self.driver.capabilities.rate_limit:
            raise NotSupportedError(
                f"the {self.driver.name} driver does not support rate limits "
                f"({kind.__qualname__}: {_describe_limit(limit)}): it cannot hold them "
                "across workers")
        self._unlimited_types.add(kind)

    def _push_meta(self, attempts: int | None, backoff: Any) -> dict[str, Any]:
        """Per-push settings that travel inside the payload."""
        meta: dict[str, Any] = {}
        if self._tracing is not None:
            trace = self._tracing.traceparent()
            if trace is not None:
                meta["trace"] = trace
        if attempts is not _UNSET:
            if not self.driver.capabilities.retry and attempts != 1:
                raise NotSupportedError(f"the {self.driver.name} driver does not support "
                                        f"retries (push(attempts={attempts!r}))")
            meta["attempts"] = bounds.attempts(attempts, "push(attempts=)")
        if backoff is not None:
            try:
                meta["backoff"] = backoff_to_meta(backoff)
            except ConfigError as exc:
                raise InvalidArgumentError(str(exc)) from None
        return meta

    def unique_of(self, job: Job, key: str | None, unique_for: float | None, *,
                  many: bool = False) -> tuple[str | None, float | None]:
        """The unique key and window of one push (unique.resolve), refused on a driver
        that does not declare ``unique``."""
        found, window = unique.resolve(job, key, unique_for)
        if found is None:
            if unique_for is not None and not many:
                raise InvalidArgumentError(
                    "unique_for needs a unique key: give unique_key, or a job whose "
                    "get_unique_key() returns one")
            return None, None
        if not self.driver.capabilities.unique:
            raise NotSupportedError(f"the {self.driver.name} driver does not support unique "
                                    f"jobs (unique_key={found!r})")
        return found, window

    def _prepare(self, job: Job, delay: float, priority: int | None, ttr: float | None,
                 attempts: int | None, backoff: Any,
                 unique_args: tuple[str | None, float | None] = (None, None), *,
                 many: bool = False) -> tuple[PushRequest, PushEvent | None] | None:
        resolved_ttr = self._job_ttr(job, None if ttr is None else self._check_ttr(ttr, "ttr"))
        event: PushEvent | None = None
        if self._events.has(events.BEFORE_PUSH) or self._events.has(events.AFTER_PUSH):
            event = PushEvent(job, resolved_ttr, delay, priority, queue=self)
            self._events.trigger(events.BEFORE_PUSH, event)
            if event.handled:
                logger.debug("push of %s cancelled by a before_push handler",
                             type(job).__qualname__)
                return None
            resolved_ttr = self._check_ttr(event.ttr, "before_push event.ttr")
            delay, priority = event.delay, event.priority
        delay = self._check_delay(delay)
        priority = self._check_priority(priority)
        # After before_push: a handler may change the job, and so its key.
        key, window = self.unique_of(job, *unique_args, many=many)
        payload = self._check_size(self.serializer.dumps(job, self._push_meta(attempts, backoff)),
                                   job)
        return PushRequest(payload, resolved_ttr, delay, priority, key, window), event

    def _after_push(self, event: PushEvent | None, job_id: str) -> None:
        if event is not None:
            event.id = job_id
            self._events.trigger(events.AFTER_PUSH, event)

    @staticmethod
    def _check_ttr(value: Any, what: str) -> float:
        return bounds.ttr(value, what)

    def _check_delay(self, delay: Any) -> float:
        caps = self.driver.capabilities
        limit = bounds.delay_limit(caps.max_delay)
        whose = "queue-core's" if limit == bounds.MAX_DELAY else f"the {self.driver.name} driver's"
        seconds = bounds.seconds(delay, "delay", limit=limit, whose=whose)
        if seconds > 0 and not caps.delay:
            raise NotSupportedError(f"the {self.driver.name} driver does not support delayed "
                                    f"jobs (delay={seconds:g})")
        return seconds

    def _check_size(self, payload: bytes, job: Job) -> bytes:
        limit = self.driver.payload_limit()
        if limit is not None and len(payload) > limit:
            setting = self.driver.payload_limit_setting
            raise InvalidArgumentError(
                f"job {type(job).__qualname__} encodes to {len(payload)} bytes, above the "
                f"{limit} bytes {self.driver.describe()} accepts"
                f"{f' ({setting})' if setting else ''}; nothing was queued")
        return payload

    def _check_priority(self, priority: Any) -> int | None:
        if priority is None:
            return None
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidArgumentError(f"priority must be a whole number, got {priority!r}")
        caps = self.driver.capabilities
        if not caps.priority:
            raise NotSupportedError(
                f"the {self.driver.name} driver does not support priorities (priority={priority})")
        low, high = caps.priority_range
        if not low <= priority <= high:
            raise InvalidArgumentError(f"priority {priority} is out of range for the "
                                       f"{self.driver.name} driver: {low} to {high}, lower first")
        return priority

    # -- the decisions a worker asks for ---------------------------------------------

    def limits_for(self, meta: dict[str, Any]) -> RetryLimits:
        if "attempts" in meta:
            return RetryLimits(meta["attempts"], self.age_limit)
        return self._limits

    def can_retry(self, job: Job | None, meta: dict[str, Any], attempt: int,
                  error: BaseException, pushed_at: float | None,
                  job_id: str | None = None) -> bool:
        """attempts/age_limit, then the job's can_retry (which replaces them)."""
        if not self.driver.capabilities.retry:
            return False
        age = None if pushed_at is None else time.time() - pushed_at
        decision = self.limits_for(meta).allows_retry(attempt, age)
        if isinstance(job, RetryableJob):
            try:
                answer = job.can_retry(attempt, error)
            except Exception:
                logger.exception("%s.can_retry raised; using the queue's limits",
                                 type(job).__qualname__,
                                 extra=self.log_extra(job_id or "", job, attempt))
                answer = None
            if answer is not None:
                decision = bool(answer)
        return decision

    def backoff_for(self, job: Job | None, meta: dict[str, Any]) -> BackoffFn | None:
        """push(backoff=), else the job class's ``backoff``, else the queue's."""
        if meta.get("backoff") is not None:
            return Backoff.from_data(meta["backoff"], "payload meta.backoff")
        if job is not None:
            kind = type(job)
            if kind not in self._job_backoffs:
                self._job_backoffs[kind] = Backoff.parse(
                    kind.backoff, f"{kind.__qualname__}.backoff")
            found = self._job_backoffs[kind]
            if found is not None:
                return found
        return self.backoff

    def handle_error(self, message: Message, job: Job | None, meta: dict[str, Any],
                     error: BaseException, attempt: int | None = None,
                     lost: bool = False, info: ErrorInfo | None = None) -> bool:
        """Decide and carry out what follows a failed attempt. Returns True if retried.

        For a lost run (``lost=True``) nothing is moved when the answer is retry: the caller
        runs the job at once, because its lease already made it wait. A lost run that may
        never have started (``message.may_not_have_started``) is retried whatever the limits
        say; an after_error handler may still say no. ``info`` is what to store when the
        error was raised elsewhere (an isolated child's traceback)."""
        attempt = message.attempt if attempt is None else attempt
        may_not_have_started = lost and message.may_not_have_started
        cancelled = isinstance(error, JobCancelledError)
        retry = (False if cancelled
                 else self.driver.capabilities.retry if may_not_have_started
                 else self.can_retry(job, meta, attempt, error, message.pushed_at, message.id))
        delay = 0.0
        note = ""
        longest = bounds.delay_limit(self.driver.capabilities.max_delay)
        if retry and not lost:
            try:
                found = evaluate_backoff(self.backoff_for(job, meta), attempt, error, job,
                                         longest)
            except Exception as exc:
                logger.error("job %s: %s; failing it", message.id, exc,
                             extra=self.log_extra(message.id, job, attempt))
                found, note = None, f" (backoff failed: {exc})"
            if found is None:
                retry = False
            else:
                delay = found
        if self._events.has(events.AFTER_ERROR):
            began = message.began
            event = ExecEvent(message.id, job, message.ttr, attempt, error=error, retry=retry,
                              delay=delay, queue=self, pushed_at=message.pushed_at,
                              duration=time.monotonic() - began if began and not lost else None,
                              lost=lost)
            self._events.trigger(events.AFTER_ERROR, event)
            retry = bool(event.retry) and not cancelled
            if retry and not lost:
                delay = min(self._handler_delay(event.delay, delay), longest)
                if delay < 0:
                    retry, delay = False, 0.0
        if retry and not self.driver.capabilities.retry:
            logger.warning("job %s: the %s driver cannot retry; failing it", message.id,
                           self.driver.name, extra=self.log_extra(message.id, job, attempt))
            retry = False
        info = info or error_info(error)
        if note:
            info = ErrorInfo(info.type, info.message + note, info.traceback)
        if retry:
            if not lost:
                logger.info("job %s attempt %d failed (%s); retry in %.3gs", message.id,
                            attempt, info, delay,
                            extra=self.log_extra(message.id, job, attempt))
                self.report(self.settler(message).release, message, delay=delay, error=info)
            return True
        logger.warning("job %s failed for good after attempt %d: %s", message.id, attempt, info,
                       extra=self.log_extra(message.id, job, attempt))
        self.report(self.settler(message).fail, message, error=info, keep=self.keep_failed)
        self._after_fail(message, job, error, attempt)
        return False

    def _ttr_of(self, message: Message) -> float:
        """The message's ttr, or the queue's when what the store gave is no ttr (a damaged
        record, failed without a run)."""
        return float(message.ttr) if usable_ttr(message.ttr) else self.ttr

    def log_extra(self, job_id: str, job: object = None,
                  attempt: int | None = None) -> dict[str, Any]:
        """``extra`` for a log record about one of this queue's jobs (logfields.py)."""
        return job_extra(self.driver.channel, job_id, job, attempt)

    def consume(self) -> Consumption:
        """A consumer for one worker, wrapped with the core's consumer machinery (and the
        rate limits' gate, where the queue or a registered job type sets limits)."""
        consumption = Consumption(self.driver, self.driver.open_consumer())
        if self.driver.capabilities.rate_limit:
            limited = [kind for kind in registered_types() if job_limit(kind) is not None]
            if self.limit is not None or limited:
                from .throttle import Throttle
                throttle = Throttle(self.driver.limiter(), self.limit, self._decode_held,
                                    lambda message: self.driver.lease_seconds(
                                        self._ttr_of(message)))
                throttle.watch_types(limited)
                consumption.throttle = throttle
        return consumption

    def _decode_held(self, message: Message) -> Any:
        """``message.decoded`` for a fetched job the limits look at (its type's limits),
        kept for ``prepare`` as the worker's decode_ahead keeps it."""
        try:
            message.decoded = self.decode(message.payload)
        except SerializationError as exc:
            message.decoded = exc
        except Exception:  # noqa: BLE001 - a serializer's own fault, met again in prepare
            return None
        return message.decoded

    def settler(self, message: Message) -> Consumption:
        """The consumption that settles ``message``: the one that fetched it, or for a
        message reserved straight from a driver, one the queue keeps."""
        if message.owner is not None:
            return message.owner
        if self._own_consumption is None:
            self._own_consumption = self.consume()
        return self._own_consumption

    def report(self, call: Callable[..., None], message: Message, **kwargs: Any) -> None:
        """Carry out a driver move for a finished run, retrying a back end that is down
        until the job's lease would have ended anyway."""
        try:
            call(message, **kwargs)
            return  # once per job: the common case keeps no books
        except DriverError as exc:
            if self.driver.lease_seconds(self._ttr_of(message)) < 0.1:
                raise
            logger.warning("job %s: cannot save its outcome (%s: %s); retrying until its "
                           "lease ends", message.id, getattr(call, "__name__", "report"), exc,
                           extra=self.log_extra(message.id, attempt=message.attempt))
        deadline = time.monotonic() + self.driver.lease_seconds(self._ttr_of(message))
        pause = 0.1
        while True:
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
            try:
                call(message, **kwargs)
            except DriverError:
                if time.monotonic() + pause > deadline:
                    raise
                continue
            logger.warning("job %s: outcome saved", message.id,
                           extra=self.log_extra(message.id, attempt=message.attempt))
            return

    @staticmethod
    def _handler_delay(value: Any, fallback: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            logger.error("after_error handler set delay to %r; keeping %.3gs", value, fallback)
            return fallback
        return float(value)

    def handle_lost(self, message: Message, job: Job | None, meta: dict[str, Any]) -> bool:
        """The previous run of ``message`` lost its worker. True: run it now."""
        lost_attempt = max(1, message.attempt - 1)
        error = WorkerLostError(
            f"the worker running attempt {lost_attempt} of job {message.id} vanished "
            "(killed, crashed or past its lease) before reporting a result")
        if message.may_not_have_started:
            logger.warning("job %s: the worker holding it was lost, and nothing tells whether "
                           "it had started the job or only prefetched it; running it again "
                           "as attempt %d", message.id, message.attempt,
                           extra=self.log_extra(message.id, job, message.attempt))
        return self.handle_error(message, job, meta, error, attempt=lost_attempt, lost=True)

    def decode(self, payload: bytes) -> tuple[Job, Meta]:
        """A payload read back from the store as a registered job and its checked per-push
        settings; SerializationError when it cannot be one."""
        job, meta = self.serializer.loads(payload)
        if type(meta) is dict and not meta:
            return job, meta  # once per job: most pushes carry no per-push settings
        return job, read_meta(meta)

    def handle_undecodable(self, message: Message, error: SerializationError) -> None:
        """A payload that cannot become a job is never retried: straight to FAILED."""
        logger.error("job %s cannot be decoded and is failed without retry: %s",
                     message.id, error, extra=self.log_extra(message.id, attempt=message.attempt))
        self.report(self.settler(message).fail, message, error=error_info(error),
                    keep=self.keep_failed)
        self._after_fail(message, None, error, message.attempt)

    def handle_damaged(self, message: Message, problem: str) -> None:
        """A record whose stored values cannot be trusted (see records.damage): FAILED with
        the reason, never retried, and no decision is made on its values."""
        error = DamagedJobError(f"job {message.id} is damaged in the store: {problem}")
        logger.error("%s; it is failed without running", error,
                     extra=self.log_extra(message.id, attempt=message.attempt))
        self.report(self.settler(message).fail, message, error=error_info(error),
                    keep=self.keep_failed)
        attempt = message.attempt
        self._after_fail(message, None, error,
                         attempt if type(attempt) is int and attempt > 0 else 0)

    def _after_fail(self, message: Message, job: Job | None, error: BaseException,
                    attempt: int) -> None:
        if self._events.has(events.AFTER_FAIL):
            self._events.trigger(events.AFTER_FAIL, ExecEvent(
                message.id, job, self._ttr_of(message), attempt, error=error, queue=self,
                pushed_at=message.pushed_at))

    def handle_success(self, message: Message, job: Job, result: Any,
                       event: ExecEvent | None) -> None:
        began = message.began  # the ack below resets it
        data = self.serializer.dumps_result(result) if self.keep_completed else None
        self.report((message.owner or self.settler(message)).ack, message, result=data,
                    keep=self.keep_completed)
        if self._events.has(events.AFTER_EXEC):
            if event is None:
                event = ExecEvent(message.id, job, message.ttr, message.attempt, queue=self,
                                  pushed_at=message.pushed_at)
            event.result = result
            if began:
                event.duration = time.monotonic() - began
            self._events.trigger(events.AFTER_EXEC, event)

    # -- the worker ------------------------------------------------------------------

    def import_job_modules(self) -> None:
        for name in self.imports:
            try:
                importlib.import_module(name)
            except Exception as exc:
                raise ConfigError(f"imports: cannot import {name!r}: "
                                  f"{type(exc).__name__}: {exc}", key="imports") from exc

    def worker(self, **options: Any) -> Worker:
        from .worker import Worker
        return Worker(self, **options)

    def run(self, **options: Any) -> int:
        """Process every job that is ready now, then return how many were processed."""
        return self.worker(**options).run()

    def listen(self, timeout: float = 3, **options: Any) -> int:
        """Process jobs until a signal or an ``exit_code`` stops the worker."""
        return self.worker(timeout=timeout, **options).listen()

    def _run_at_push(self) -> None:
        if self._sync_worker is None:
            from .worker import Worker
            # Inside the caller's push: no signal handlers, no timer, no child processes.
            # An async job runs alone, in the caller's push, not beside others on a loop.
            self._sync_worker = Worker(self, handle_signals=False, enforce_ttr=False,
                                       emit_events=False, isolate=False, async_concurrency=1)
        self._sync_worker.run()

    # -- queries and admin -----------------------------------------------------------

    def status(self, job_id: str) -> JobStatus:
        """The job's state; a finished job that is no longer kept reads DONE."""
        self._require("status", "job status")
        found = self.driver.status(str(job_id))
        return JobStatus.DONE if found is None else found

    def get(self, job_id: str) -> JobInfo:
        self._require("status", "job lookup")
        info = self.driver.get(str(job_id))
        if info is None:
            raise JobNotFoundError(f"no job {job_id!r} in {self.driver.describe()}")
        return self._decoded(info)

    def _decoded(self, info: JobInfo) -> JobInfo:
        if info.job_name is None and info.payload:
            info.job_name = self.serializer.peek_name(info.payload)
        if isinstance(info.result, bytes):
            info.result = self.serializer.loads_result(info.result)
        return info

    def jobs(self, status: JobStatus | str, limit: int = 100) -> list[JobInfo]:
        wanted = JobStatus.parse(status)
        if wanted not in self.driver.capabilities.listing:
            raise NotSupportedError(f"the {self.driver.name} driver does not support listing "
                                    f"{wanted} jobs")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidArgumentError(f"limit must be a whole number >= 1, got {limit!r}")
        return [self._decoded(i) for i in self.driver.jobs(wanted, limit)]

    def failed(self, limit: int = 100) -> list[JobInfo]:
        return self.jobs(JobStatus.FAILED, limit)

    def retry(self, job_id: str, state: JobStatus | str = JobStatus.FAILED,
              reset_attempts: bool = False) -> None:
        """Send a FAILED (or, with ``state=DONE``, a completed) job back to WAITING (BullMQ
        ``Job.retry``). Raises JobNotFoundError (code -1) or JobNotInStateError (code -3)."""
        self._require("manual_retry", "retrying finished jobs")
        wanted = JobStatus.parse(state)
        if wanted not in (JobStatus.FAILED, JobStatus.DONE):
            raise InvalidArgumentError(f"retry(state=) must be failed or done, got {state!r}")
        if wanted is JobStatus.DONE:
            self._require("keep_completed", "retrying completed jobs (they are not kept)")
        if reset_attempts:
            self._require("reset_attempts", "resetting the attempt count of a retried job")
        self.driver.retry(str(job_id), state=wanted, reset_attempts=bool(reset_attempts))
        logger.info("job %s sent back to waiting from %s", job_id, wanted,
                    extra=self.log_extra(str(job_id)))
        if self._events.has(events.AFTER_RETRY):
            self._events.trigger(events.AFTER_RETRY,
                                 RetryEvent(str(job_id), wanted, bool(reset_attempts), self))
        if self.driver.capabilities.runs_at_push:
            self._run_at_push()

    def retry_failed(self, *, reset_attempts: bool = False,
                     on_skip: Callable[[str, DriverError], None] | None = None
                     ) -> tuple[int, int]:
        """Send every job that is FAILED now back to waiting; returns how many were sent
        and how many the back end refused (each reported to ``on_skip``, or logged).

        Each id is tried once, so an entry that cannot be retried (removed meanwhile, or
        damaged) is not listed again and the loop ends once no page holds a new id; and
        no more are tried than were failed at the start, so that failures arriving
        meanwhile cannot keep it going."""
        tried: set[str] = set()
        sent = skipped = 0
        known = self.info().get(JobStatus.FAILED) if self.capabilities.info else None
        while known is None or len(tried) < known:
            fresh = [info.id for info in self.failed(limit=500) if info.id not in tried]
            if not fresh:
                break
            for job_id in fresh:
                tried.add(job_id)
                try:
                    self.retry(job_id, reset_attempts=reset_attempts)
                    sent += 1
                except (JobNotFoundError, JobNotInStateError):
                    pass  # removed or moved meanwhile: not ours to count
                except DriverError as exc:
                    skipped += 1
                    if on_skip is None:
                        logger.warning("job %s could not be retried: %s", job_id, exc,
                                       extra=self.log_extra(job_id))
                    else:
                        on_skip(job_id, exc)
        return sent, skipped

    def cancel(self, job_id: str) -> bool:
        """Cancel a job: a waiting or delayed one never runs, and ends FAILED with
        JobCancelledError (kept as ``keep_failed`` says); a running one is stopped by its
        worker within about a second and ends the same way. Never retried. False when the
        job is unknown or already finished."""
        self._require("cancel", "cancelling jobs")
        job_id = str(job_id)
        error = JobCancelledError(f"job {job_id} was cancelled before it ran")
        outcome = self.driver.cancel(job_id, error=error_info(error),
                                     keep=bool(self.keep_failed))
        if outcome is not None:
            logger.info("job %s cancelled (%s)", job_id,
                        "it was running" if outcome == "marked" else "it had not run",
                        extra=self.log_extra(job_id))
        return outcome is not None

    def remove(self, job_id: str) -> bool:
        self._require("remove", "removing jobs")
        return self.driver.remove(str(job_id))

    def clear(self) -> None:
        self._require("clear", "clearing the queue")
        self.driver.clear()

    def info(self) -> dict[JobStatus, int]:
        self._require("info", "counting jobs")
        uncounted = self.driver.capabilities.uncounted
        counts = {status: 0 for status in JobStatus if status not in uncounted}
        counts.update(self.driver.info())
        return counts

    def oldest_waiting_age(self) -> float | None:
        """Seconds since the WAITING job pushed first was pushed (how far the workers lag
        behind), or None when no job waits. A time read back from the store that is not a
        number is reported as None, with a warning."""
        self._require("waiting_age", "telling the oldest waiting job")
        pushed = self.driver.oldest_waiting()
        if pushed is None:
            return None
        if (isinstance(pushed, bool) or not isinstance(pushed, (int, float))
                or not math.isfinite(pushed)):
            logger.warning("%s gave %r as the oldest waiting job's push time; ignoring it",
                           self.driver.describe(), pushed)
            return None
        return max(0.0, time.time() - pushed)

    def workers(self) -> list[WorkerInfo]:
        """The heartbeat records of this channel's workers, live ones and those that
        stopped beating (``WorkerInfo.stopped_beating``) until they are forgotten."""
        self._require("heartbeats", "worker heartbeats")
        return self.driver.workers()

    def close(self) -> None:
        own, self._own_consumption = self._own_consumption, None
        try:
            if own is not None:
                own.close()
            self.driver.flush()
        finally:
            self.driver.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Queue {self.driver.describe()} ttr={self.ttr:g} attempts={self.attempts}>"


def _describe_limit(limit: Limit) -> str:
    parts = []
    if limit.rate is not None:
        parts.append(f"rate={limit.rate:g}/s, bucket_size={limit.bucket_size}")
    if limit.max_concurrent is not None:
        parts.append(f"max_concurrent={limit.max_concurrent}")
    return ", ".join(parts)
