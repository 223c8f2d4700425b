"""Pushing and looking up jobs from asyncio code (FastAPI, aiohttp) without blocking its loop.

``Queue.apush``, ``apush_many``, ``astatus`` and ``aget`` come here. Each push is checked
and encoded in the caller, before_push included, then joins its event loop's pending
batch; the batch goes to the store in one call, in a thread of the queue's own small
executor, and each caller gets its own id or the error that concerns it. Many concurrent
pushes so cost a few round trips instead of one each (docs/jobs.md has the figures).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future as ThreadFuture
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from . import events
from .errors import DriverError
from .events import PushEvent
from .model import PushRequest

if TYPE_CHECKING:
    from .job import Job
    from .queue import Queue

logger = logging.getLogger(__name__)

T = TypeVar("T")

THREADS = 4
"""Threads of a queue's executor, shared by its event loops."""
IN_FLIGHT = 2
"""Batches of one event loop in the store at once; pushes arriving meanwhile wait for the
next batch, which is what makes batches."""
BATCH_JOBS = 1000
"""The most jobs in one batch (a single apush_many may be larger: it goes alone). The
Redis driver writes up to 1,000 jobs with one script call, all or nothing."""
BATCH_BYTES = 8 * 1024 * 1024
"""The most payload bytes in one batch, so that one large batch does not hold up the
pushes behind it (a batch always takes at least one call)."""
PREPARE_STEP = 256
"""apush_many gives the loop a turn after encoding this many jobs."""


class _Call:
    """One apush or apush_many: its requests, in order, and the future its caller awaits.

    ``events`` holds the PushEvent of each request when the queue has push handlers.
    ``alone``: the call is one push_many and fails as one, even on a driver without
    bulk push (the rest of a push_many is not tried after its first failure)."""

    __slots__ = ("requests", "events", "future", "size", "alone")

    def __init__(self, requests: list[PushRequest], events: list[PushEvent | None],
                 future: asyncio.Future[list[str]], alone: bool) -> None:
        self.requests = requests
        self.events = events
        self.future = future
        self.size = sum(len(r.payload) for r in requests)
        self.alone = alone


class _Batches:
    """The pending calls of one event loop, and how many of its batches are in the store.

    Only the loop's own thread touches it, so it needs no lock."""

    __slots__ = ("pending", "in_flight", "scheduled", "__weakref__")

    def __init__(self) -> None:
        self.pending: list[_Call] = []
        self.in_flight = 0
        self.scheduled = False


class AsyncProducer:
    """The asyncio side of one queue: its executor, and the batches of each event loop.

    It holds no reference to its queue (the queue is its key in ``_PRODUCERS``), so that a
    queue nobody uses any more is collected, its executor and threads with it."""

    def __init__(self, name: str) -> None:
        self.executor = ThreadPoolExecutor(max_workers=THREADS,
                                           thread_name_prefix=f"queue-core-async-{name}")
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batches] = (
            weakref.WeakKeyDictionary())
        self._lock = threading.Lock()

    def batches(self, loop: asyncio.AbstractEventLoop) -> _Batches:
        with self._lock:
            found = self._loops.get(loop)
            if found is None:
                found = self._loops[loop] = _Batches()
            return found


_PRODUCERS: weakref.WeakKeyDictionary[Queue, AsyncProducer] = weakref.WeakKeyDictionary()
_PRODUCERS_LOCK = threading.Lock()


def producer(queue: Queue) -> AsyncProducer:
    """The queue's AsyncProducer, made on first use."""
    found = _PRODUCERS.get(queue)
    if found is None:
        with _PRODUCERS_LOCK:
            found = _PRODUCERS.get(queue)
            if found is None:
                found = _PRODUCERS[queue] = AsyncProducer(queue.driver.name)
    return found


# -- the calls ----------------------------------------------------------------------


async def apush(queue: Queue, job: Job, delay: float, priority: int | None,
                ttr: float | None, attempts: Any, backoff: Any,
                unique: tuple[str | None, float | None] = (None, None)) -> str | None:
    """Queue.push for a coroutine; see Queue.apush."""
    prepared = queue._prepare(job, delay, priority, ttr, attempts, backoff, unique)
    if prepared is None:
        return None
    request, event = prepared
    ids = await _submit(queue, [request], [event], alone=False)
    return ids[0]


async def apush_many(queue: Queue, jobs: Iterable[Job], delay: float, priority: int | None,
                     ttr: float | None, attempts: Any, backoff: Any,
                     unique_for: float | None = None) -> list[str | None]:
    """Queue.push_many for a coroutine; see Queue.apush_many. The checks and events are
    those of push_many, in the same order."""
    if not (queue.has_handlers(events.BEFORE_PUSH) or queue.has_handlers(events.AFTER_PUSH)):
        requests = await _plain_requests(queue, jobs, delay, priority, ttr, attempts, backoff,
                                         unique_for)
        if not requests:
            return []
        return list(await _submit(queue, requests, [None] * len(requests), alone=True))
    prepared: list[tuple[PushRequest, PushEvent | None] | None] = []
    for job in jobs:
        prepared.append(queue._prepare(job, delay, priority, ttr, attempts, backoff,
                                       (None, unique_for), many=True))
        if len(prepared) % PREPARE_STEP == 0:
            await asyncio.sleep(0)
    wanted = [p for p in prepared if p is not None]
    ids = iter(await _submit(queue, [r for r, _ in wanted], [e for _, e in wanted],
                             alone=True) if wanted else [])
    return [None if item is None else next(ids) for item in prepared]


async def _plain_requests(queue: Queue, jobs: Iterable[Job], delay: float,
                          priority: int | None, ttr: float | None, attempts: Any,
                          backoff: Any, unique_for: float | None = None) -> list[PushRequest]:
    """The requests Queue._push_many_plain builds, with the same checks in the same order
    (a queue without push handlers checks the shared arguments once)."""
    delay = queue._check_delay(delay)
    priority = queue._check_priority(priority)
    fixed_ttr = None if ttr is None else queue._check_ttr(ttr, "ttr")
    meta = queue._push_meta(attempts, backoff)
    dumps = queue.serializer.dumps
    listed = list(jobs)
    requests = []
    for job in listed:
        requests.append(PushRequest(dumps(job, meta), queue._job_ttr(job, fixed_ttr), delay,
                                    priority, *queue.unique_of(job, None, unique_for,
                                                               many=True)))
        if len(requests) % PREPARE_STEP == 0:
            await asyncio.sleep(0)
    if queue.driver.payload_limit() is not None:
        for job, request in zip(listed, requests, strict=True):
            queue._check_size(request.payload, job)
    return requests


async def alookup(queue: Queue, call: Callable[[str], T], job_id: str) -> T:
    """A lookup (Queue.status, Queue.get) in the queue's executor."""
    loop = asyncio.get_running_loop()
    return await asyncio.wrap_future(producer(queue).executor.submit(call, job_id), loop=loop)


# -- the batches --------------------------------------------------------------------


async def _submit(queue: Queue, requests: list[PushRequest], pushed: list[PushEvent | None],
                  alone: bool) -> list[str]:
    loop = asyncio.get_running_loop()
    batches = producer(queue).batches(loop)
    call = _Call(requests, pushed, loop.create_future(), alone)
    batches.pending.append(call)
    _schedule(queue, loop, batches)
    # A caller cancelled before its batch leaves is taken out of it (nothing is pushed);
    # after, its job is pushed all the same and its after_push fires.
    return await call.future


def _schedule(queue: Queue, loop: asyncio.AbstractEventLoop, batches: _Batches) -> None:
    """Send the pending calls on the loop's next turn, so that every task ready in this
    turn joins the batch, if a batch may go now; else the end of one in flight sends it."""
    limit = 1 if queue.driver.capabilities.runs_at_push else IN_FLIGHT
    if not batches.scheduled and batches.pending and batches.in_flight < limit:
        batches.scheduled = True
        loop.call_soon(_flush, queue, loop, batches)


def _flush(queue: Queue, loop: asyncio.AbstractEventLoop, batches: _Batches) -> None:
    batches.scheduled = False
    batch: list[_Call] = []
    jobs = size = 0
    rest: list[_Call] = []
    for index, call in enumerate(batches.pending):
        if call.future.done():  # its caller was cancelled: nothing of it is pushed
            continue
        if batch and (jobs + len(call.requests) > BATCH_JOBS or size + call.size > BATCH_BYTES):
            rest = batches.pending[index:]
            break
        batch.append(call)
        jobs += len(call.requests)
        size += call.size
    batches.pending = rest
    if not batch:
        return
    batches.in_flight += 1
    try:
        sent = producer(queue).executor.submit(_send, queue, batch)
    except RuntimeError as exc:  # the executor is shut down (the interpreter is exiting)
        batches.in_flight -= 1
        _fail(batch, exc)
        return
    sent.add_done_callback(lambda done: _back(queue, loop, batches, batch, done))
    _schedule(queue, loop, batches)


def _send(queue: Queue, batch: list[_Call]) -> list[list[str] | BaseException]:
    """In an executor thread: push the batch; each call's ids, or the error it gets.

    A bulk-push driver takes the whole batch in one push_many, and its failure is every
    call's. Otherwise each call is pushed on its own, as it would have been by push or
    push_many, so that one job's error goes to its caller alone."""
    driver = queue.driver
    if driver.capabilities.bulk_push:
        requests = [r for call in batch for r in call.requests]
        found = driver.push_many(requests)
        if len(found) != len(requests):
            raise DriverError(f"{driver.describe()} gave {len(found)} ids for "
                              f"{len(requests)} jobs")
        ids = iter(found)
        return [[next(ids) for _ in call.requests] for call in batch]
    outcomes: list[list[str] | BaseException] = []
    for call in batch:
        try:
            if call.alone or call.requests[0].unique_key is not None:
                outcomes.append(driver.push_many(call.requests))
            else:
                r = call.requests[0]
                outcomes.append([driver.push(r.payload, ttr=r.ttr, delay=r.delay,
                                             priority=r.priority)])
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


def _back(queue: Queue, loop: asyncio.AbstractEventLoop, batches: _Batches,
          batch: list[_Call], done: ThreadFuture[list[list[str] | BaseException]]) -> None:
    """In the executor thread, when the store has answered: hand the answer to the loop."""
    try:
        loop.call_soon_threadsafe(_settle, queue, loop, batches, batch, done)
    except RuntimeError:  # the loop is closed: its callers are gone
        if done.exception() is None:
            logger.warning("%d job(s) were pushed by apush after their event loop closed; "
                           "their after_push events do not fire",
                           sum(len(call.requests) for call in batch))


def _settle(queue: Queue, loop: asyncio.AbstractEventLoop, batches: _Batches,
            batch: list[_Call], done: ThreadFuture[list[list[str] | BaseException]]) -> None:
    """On the loop: after_push for each pushed job, then each caller's answer."""
    error = done.exception()
    outcomes: Sequence[list[str] | BaseException] = (
        [error] * len(batch) if error is not None else done.result())
    pushed = False
    for call, outcome in zip(batch, outcomes, strict=True):
        if not isinstance(outcome, BaseException):
            pushed = True
            for event, job_id in zip(call.events, outcome, strict=True):
                queue._after_push(event, job_id)  # a handler that raises is only logged
    if pushed and queue.driver.capabilities.runs_at_push:
        # As push does: the jobs run once their after_push has fired, before the callers
        # hear back; the batch counts as in flight until then.
        try:
            ran = producer(queue).executor.submit(queue._run_at_push)
        except RuntimeError as exc:  # the executor is shut down (the interpreter is exiting)
            _finish(queue, loop, batches, batch,
                    [o if isinstance(o, BaseException) else exc for o in outcomes])
            return
        ran.add_done_callback(lambda finished: _after_run(queue, loop, batches, batch,
                                                          outcomes, finished))
        return
    _finish(queue, loop, batches, batch, outcomes)


def _after_run(queue: Queue, loop: asyncio.AbstractEventLoop, batches: _Batches,
               batch: list[_Call], outcomes: Sequence[list[str] | BaseException],
               finished: ThreadFuture[None]) -> None:
    """In the executor thread, when the jobs pushed have run: what push would have raised
    goes to the callers whose jobs were pushed."""
    error = finished.exception()
    if error is not None:
        outcomes = [o if isinstance(o, BaseException) else error for o in outcomes]
    try:
        loop.call_soon_threadsafe(_finish, queue, loop, batches, batch, outcomes)
    except RuntimeError:
        pass  # the loop is closed: its callers are gone


def _finish(queue: Queue, loop: asyncio.AbstractEventLoop, batches: _Batches,
            batch: list[_Call], outcomes: Sequence[list[str] | BaseException]) -> None:
    batches.in_flight -= 1
    for call, outcome in zip(batch, outcomes, strict=True):
        if call.future.done():
            continue  # its caller was cancelled after the batch left: the job is pushed
        if isinstance(outcome, BaseException):
            call.future.set_exception(outcome)
        else:
            call.future.set_result(outcome)
    _schedule(queue, loop, batches)


def _fail(batch: list[_Call], error: BaseException) -> None:
    for call in batch:
        if not call.future.done():
            call.future.set_exception(error)
