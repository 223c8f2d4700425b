"""apush, apush_many, astatus and aget: the sync calls' results, checks, events and errors,
without blocking the event loop, with concurrent pushes batched per event loop.

Server-free on the memory, sync and file drivers; the Redis tests run on the shared
server (skipped without it, a failure under QUEUE_TEST_REQUIRE_ALL=1).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from queue_core.drivers.memory import MemoryDriver

from queue_core import (
    DriverError,
    InvalidArgumentError,
    JobNotFoundError,
    JobStatus,
    NotSupportedError,
    PushEvent,
    Queue,
    create_queue,
)
from queue_core import producing_async as pa
from queue_core.model import PushRequest
from tests.conftest import REQUIRE_ALL
from tests.support.jobs import Noop, Record, read_lines


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def tags(queue: Queue, status: JobStatus = JobStatus.WAITING) -> list[str]:
    """The tags of the Record jobs in ``status``, in the store's order."""
    found = []
    for info in queue.jobs(status, limit=100_000):
        assert info.payload is not None
        job, _ = queue.decode(info.payload)
        assert isinstance(job, Record)
        found.append(job.tag)
    return found


def stored(queue: Queue, job_id: str | None) -> tuple[Any, ...]:
    """What the store keeps of a job, but its id and times."""
    assert job_id is not None
    info = queue.get(job_id)
    return info.status, info.ttr, info.priority, info.payload


def outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("ok", call())
    except Exception as exc:
        return ("error", type(exc), str(exc))


class SlowStore(MemoryDriver):
    """A memory store whose writes take ``pause`` seconds, or wait for ``gate``."""

    def __init__(self, pause: float = 0.0) -> None:
        super().__init__()
        self.pause = pause
        self.gate: threading.Event | None = None
        self.calls: list[int] = []
        self.entered = threading.Event()
        self.windows: list[tuple[float, float]] = []
        """(start, end) of each write's pause, on time.perf_counter."""

    def push_many(self, requests: Sequence[PushRequest]) -> list[str]:
        self.calls.append(len(requests))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        start = time.perf_counter()
        time.sleep(self.pause)
        self.windows.append((start, time.perf_counter()))
        return super().push_many(requests)


class FlakyStore(MemoryDriver):
    """Its first ``failures`` writes raise DriverError and store nothing."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.calls: list[int] = []

    def push_many(self, requests: Sequence[PushRequest]) -> list[str]:
        self.calls.append(len(requests))
        if self.failures:
            self.failures -= 1
            raise DriverError("the back end blinked")
        return super().push_many(requests)


class OneByOneStore(MemoryDriver):
    """A store without bulk push, refusing the jobs tagged "bad"."""

    capabilities = dataclasses.replace(MemoryDriver.capabilities, bulk_push=False)

    def push(self, payload: bytes, *, ttr: float, delay: float = 0.0,
             priority: int | None = None) -> str:
        if b'"bad"' in payload:
            raise DriverError("this one is refused")
        return super().push_many([PushRequest(payload, ttr, delay, priority)])[0]

    def push_many(self, requests: Sequence[PushRequest]) -> list[str]:
        return [self.push(r.payload, ttr=r.ttr, delay=r.delay, priority=r.priority)
                for r in requests]


class PlainStore(MemoryDriver):
    """A store without delays or priorities, whose refusals the core words."""

    capabilities = dataclasses.replace(MemoryDriver.capabilities, delay=False, priority=False)


def mark(journal: str, tag: str, **data: Any) -> Record:
    return Record(journal, tag, **data)


# -- the same as push --------------------------------------------------------------

PUSH_ARGUMENTS: list[dict[str, Any]] = [
    {}, {"delay": 5}, {"priority": 3}, {"ttr": 10}, {"attempts": 3}, {"attempts": None},
    {"backoff": {"type": "fixed", "delay": 2}}, {"delay": 1.5, "priority": 0, "ttr": 2.5},
    {"delay": -1}, {"delay": "soon"}, {"delay": float("nan")}, {"priority": 1.5},
    {"priority": -1}, {"priority": True}, {"ttr": 0}, {"ttr": -5}, {"ttr": "x"},
    {"attempts": 0}, {"backoff": {"type": "nope"}}, {"delay": -1, "ttr": -1},
]


@pytest.mark.parametrize("store", [MemoryDriver, PlainStore], ids=["memory", "plain"])
@pytest.mark.parametrize("kwargs", PUSH_ARGUMENTS, ids=[repr(k) for k in PUSH_ARGUMENTS])
def test_apush_keeps_or_refuses_what_push_does(store: type[MemoryDriver],
                                               kwargs: dict[str, Any]) -> None:
    sync, not_sync = Queue(store()), Queue(store())
    job = mark("unused", "a")
    pushed = outcome(lambda: sync.push(job, **kwargs))
    apushed = outcome(lambda: run(not_sync.apush(job, **kwargs)))
    assert pushed[0] == apushed[0], (pushed, apushed)
    if pushed[0] == "ok":
        assert pushed[1] == apushed[1]
        assert stored(sync, pushed[1]) == stored(not_sync, apushed[1])
    else:
        assert pushed == apushed


@pytest.mark.parametrize("job", [object(), "a job", None, mark("unused", "x", data=object()),
                                 mark("unused", "x", data={1j})],
                         ids=["object", "str", "None", "data-object", "data-complex-set"])
def test_apush_refuses_a_job_as_push_does(job: Any) -> None:
    sync, not_sync = Queue(MemoryDriver()), Queue(MemoryDriver())
    pushed = outcome(lambda: sync.push(job))
    assert pushed[0] == "error"
    assert outcome(lambda: run(not_sync.apush(job))) == pushed
    assert not_sync.info()[JobStatus.WAITING] == 0


def veto_no(event: PushEvent) -> None:
    assert isinstance(event.job, Record)
    event.handled = event.job.tag == "no"
    if event.job.tag == "slow":
        event.ttr, event.delay, event.priority = 60, 3, 9


MANY_CASES: list[tuple[list[str], dict[str, Any]]] = [
    ([], {}), ([], {"delay": -1}), (["a", "b", "c"], {}), (["a", "no", "slow", "b"], {}),
    (["a", "b"], {"delay": 2, "priority": 4, "ttr": 7, "attempts": 2}),
    (["a", "b"], {"priority": "high"}), (["a", "b"], {"ttr": 0}), (["no", "no"], {}),
    (["a", "b"], {"delay": -1, "ttr": -1}), (["a", "b"], {"backoff": 3}),
]


@pytest.mark.parametrize("handlers", [False, True], ids=["no-handlers", "handlers"])
@pytest.mark.parametrize("case", MANY_CASES, ids=[repr(c) for c in MANY_CASES])
def test_apush_many_keeps_or_refuses_what_push_many_does(
        case: tuple[list[str], dict[str, Any]], handlers: bool) -> None:
    names, kwargs = case
    sync, not_sync = Queue(MemoryDriver()), Queue(MemoryDriver())
    if handlers:
        for queue in (sync, not_sync):
            queue.on(Queue.EVENT_BEFORE_PUSH, veto_no)
    pushed = outcome(lambda: sync.push_many((mark("unused", n) for n in names), **kwargs))
    apushed = outcome(lambda: run(not_sync.apush_many((mark("unused", n) for n in names),
                                                      **kwargs)))
    assert pushed == apushed
    if pushed[0] == "ok":
        assert [stored(sync, i) for i in pushed[1] if i is not None] == [
            stored(not_sync, i) for i in apushed[1] if i is not None]


def test_apush_returns_the_ids_push_returns() -> None:
    sync, not_sync = Queue(MemoryDriver()), Queue(MemoryDriver())
    jobs = [mark("unused", f"j{index}") for index in range(30)]

    async def one_by_one() -> list[str | None]:
        return [await not_sync.apush(job) for job in jobs]

    assert run(one_by_one()) == [sync.push(job) for job in jobs]
    assert tags(not_sync) == tags(sync)


def test_concurrent_apushes_share_a_few_store_calls() -> None:
    store = SlowStore()
    queue = Queue(store)

    async def main() -> list[str | None]:
        return await asyncio.gather(*(queue.apush(mark("unused", f"t{index}"))
                                      for index in range(500)))

    ids = run(main())
    assert len(set(ids)) == 500 and None not in ids
    assert sum(store.calls) == 500 and len(store.calls) <= 3, store.calls
    assert sorted(tags(queue)) == sorted(f"t{index}" for index in range(500))
    for job_id, index in zip(ids, range(500), strict=True):
        assert job_id is not None
        job, _ = queue.decode(queue.get(job_id).payload or b"")
        assert isinstance(job, Record) and job.tag == f"t{index}"


def test_a_batch_keeps_within_its_size() -> None:
    store = SlowStore()
    queue = Queue(store)

    async def main() -> None:
        await asyncio.gather(*(queue.apush(mark("unused", f"t{index}"))
                               for index in range(2500)),
                             queue.apush_many(mark("unused", f"m{index}")
                                              for index in range(1500)))

    run(main())
    assert sum(store.calls) == 4000 and 1500 in store.calls
    assert max(store.calls) == 1500 and sorted(store.calls)[-2] <= pa.BATCH_JOBS
    waiting = tags(queue)
    assert [tag for tag in waiting if tag.startswith("m")] == [f"m{i}" for i in range(1500)]


# -- events ------------------------------------------------------------------------


def test_events_fire_per_job_on_the_callers_thread() -> None:
    queue = Queue(MemoryDriver())
    seen: list[tuple[str, str, str | None, int]] = []

    def record(name: str) -> Callable[[PushEvent], None]:
        def handler(event: PushEvent) -> None:
            assert isinstance(event.job, Record)
            seen.append((name, event.job.tag, event.id, threading.get_ident()))
        return handler

    queue.on(Queue.EVENT_BEFORE_PUSH, record("before"))
    queue.on(Queue.EVENT_BEFORE_PUSH, veto_no)
    queue.on(Queue.EVENT_AFTER_PUSH, record("after"))

    async def main() -> tuple[list[Any], list[str | None]]:
        singles = await asyncio.gather(*(queue.apush(mark("unused", tag))
                                         for tag in ("a", "no", "slow")))
        many = await queue.apush_many([mark("unused", tag) for tag in ("b", "no", "c")])
        return singles, many

    singles, many = run(main())
    me = threading.get_ident()
    assert all(thread == me for *_, thread in seen)
    assert singles[1] is None and many[1] is None
    ids = {tag: job_id for tag, job_id in zip(["a", "no", "slow", "b", "no2", "c"],
                                               singles + many, strict=True)}
    befores = [(tag, job_id) for name, tag, job_id, _ in seen if name == "before"]
    afters = [(tag, job_id) for name, tag, job_id, _ in seen if name == "after"]
    assert befores == [(tag, None) for tag in ("a", "no", "slow", "b", "no", "c")]
    assert afters == [(tag, ids[tag]) for tag in ("a", "slow", "b", "c")]
    slow = queue.get(ids["slow"] or "")
    assert (slow.status, slow.ttr, slow.priority) == (JobStatus.DELAYED, 60, 9)


def test_the_sync_driver_runs_the_job_before_apush_returns(tmp_path: Path) -> None:
    journal = str(tmp_path / "journal")
    queue = create_queue("sync://")
    order: list[str] = []
    queue.on(Queue.EVENT_AFTER_PUSH, lambda e: order.append(f"pushed {e.job.tag}"))
    queue.on(Queue.EVENT_BEFORE_EXEC, lambda e: order.append(f"runs {e.job.tag}"))

    async def main() -> None:
        await queue.apush(mark(journal, "a"))
        assert read_lines(journal) == ["a"]
        await asyncio.gather(*(queue.apush(mark(journal, f"c{i}")) for i in range(5)))
        assert await queue.apush_many([mark(journal, "m1"), mark(journal, "m2")])

    run(main())
    assert sorted(read_lines(journal)) == sorted(["a", "m1", "m2"] + [f"c{i}" for i in range(5)])
    assert order[:2] == ["pushed a", "runs a"]
    for tag in ["m1", "m2"] + [f"c{i}" for i in range(5)]:
        assert order.index(f"pushed {tag}") < order.index(f"runs {tag}")


# -- errors ------------------------------------------------------------------------


def test_a_check_fails_in_the_caller_before_anything_is_sent() -> None:
    store = SlowStore()
    queue = Queue(store)

    async def main() -> None:
        good = asyncio.ensure_future(queue.apush(mark("unused", "good")))
        with pytest.raises(InvalidArgumentError, match="delay"):
            await queue.apush(mark("unused", "bad"), delay=-1)
        assert await good

    run(main())
    assert store.calls == [1] and tags(queue) == ["good"]


def test_a_failed_batch_fails_each_of_its_callers_and_nothing_is_retried() -> None:
    store = FlakyStore(failures=1)
    queue = Queue(store)
    after: list[str | None] = []
    queue.on(Queue.EVENT_AFTER_PUSH, lambda e: after.append(e.id))

    async def main() -> list[Any]:
        return await asyncio.gather(*(queue.apush(mark("unused", f"t{i}")) for i in range(20)),
                                    return_exceptions=True)

    first = run(main())
    assert all(isinstance(r, DriverError) and "blinked" in str(r) for r in first)
    assert store.calls == [20] and after == [] and queue.info()[JobStatus.WAITING] == 0
    again = run(main())
    assert all(isinstance(r, str) for r in again) and len(after) == 20
    assert store.calls == [20, 20] and queue.info()[JobStatus.WAITING] == 20


def test_without_bulk_push_each_caller_gets_its_own_error() -> None:
    queue = Queue(OneByOneStore())

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(queue.apush(mark("unused", "bad" if i == 7 else f"t{i}")) for i in range(20)),
            queue.apush_many([mark("unused", "m1"), mark("unused", "bad"),
                              mark("unused", "m3")]),
            return_exceptions=True)

    results = run(main())
    assert isinstance(results[7], DriverError) and isinstance(results[20], DriverError)
    assert all(isinstance(r, str) for i, r in enumerate(results[:20]) if i != 7)
    # push_many stops at its first failure, and so does apush_many.
    assert sorted(tags(queue)) == sorted([f"t{i}" for i in range(20) if i != 7] + ["m1"])


def test_a_store_error_reaches_apush_as_push_raises_it() -> None:
    queue = Queue(FlakyStore(failures=2))
    with pytest.raises(DriverError) as pushed:
        queue.push(mark("unused", "a"))
    with pytest.raises(DriverError) as apushed:
        run(queue.apush(mark("unused", "a")))
    assert str(apushed.value) == str(pushed.value)


# -- the loop stays free -----------------------------------------------------------


async def ticking(work: Callable[[], Coroutine[Any, Any, Any]]) -> tuple[Any, list[float]]:
    """Run ``work`` beside a task ticking every 2 ms: its result, and the ticks' times
    (time.perf_counter)."""
    ticks: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            if stop.is_set():
                return
            await asyncio.sleep(0.002)

    task = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.01)
    try:
        result = await work()
    finally:
        stop.set()
        await task
    return result, ticks


def longest_gap(ticks: list[float]) -> float:
    return max(b - a for a, b in zip(ticks, ticks[1:], strict=False))


def check_the_loop_turned_during(windows: list[tuple[float, float]],
                                 ticks: list[float]) -> None:
    """Each of the store's slow calls saw the loop tick: it did not wait for any of them.
    (A busy machine may stall the whole process for a while; it cannot fake a tick.)"""
    assert windows
    for start, end in windows:
        assert any(start < tick < end for tick in ticks), (
            f"the loop stood still for a whole store call of {(end - start) * 1000:.0f} ms")


def test_the_loop_keeps_turning_while_a_slow_store_takes_1000_apushes() -> None:
    store = SlowStore(pause=0.2)
    queue = Queue(store)

    async def many() -> list[str | None]:
        async def task(number: int) -> list[str | None]:
            return [await queue.apush(mark("unused", f"t{number}.{i}")) for i in range(5)]
        done = await asyncio.gather(*(task(n) for n in range(200)))
        return [job_id for ids in done for job_id in ids]

    async def blocking() -> None:
        await asyncio.sleep(0.01)
        queue.push(mark("unused", "blocking"))

    ids, ticks = run(ticking(many))
    assert len(set(ids)) == 1000 and len(store.calls) >= 5
    check_the_loop_turned_during(store.windows, ticks)
    assert len(ticks) > 100
    # The ticker would have seen it: a blocking push stops the loop for the store's pause.
    store.windows.clear()
    _, ticks = run(ticking(blocking))
    assert longest_gap(ticks) >= 0.2
    with pytest.raises(AssertionError, match="stood still"):
        check_the_loop_turned_during(store.windows, ticks)


def test_lookups_leave_the_loop_free() -> None:
    windows: list[tuple[float, float]] = []

    def pause() -> None:
        start = time.perf_counter()
        time.sleep(0.2)
        windows.append((start, time.perf_counter()))

    class SlowLookups(MemoryDriver):
        def get(self, job_id: str) -> Any:
            pause()
            return super().get(job_id)

        def status(self, job_id: str) -> JobStatus | None:
            pause()
            return super().status(job_id)

    queue = Queue(SlowLookups())
    job_id = queue.push(mark("unused", "a"))
    assert job_id is not None

    async def look() -> tuple[JobStatus, Any]:
        return await asyncio.gather(queue.astatus(job_id), queue.aget(job_id))

    (status, info), ticks = run(ticking(look))
    assert status is JobStatus.WAITING and info.id == job_id
    assert len(windows) == 2
    check_the_loop_turned_during(windows, ticks)


# -- cancellation ------------------------------------------------------------------


def test_a_caller_cancelled_before_its_batch_leaves_pushes_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pa, "IN_FLIGHT", 1)
    store = SlowStore()
    store.gate = threading.Event()
    queue = Queue(store)
    after: list[str] = []
    queue.on(Queue.EVENT_AFTER_PUSH, lambda e: after.append(e.job.tag))

    async def main() -> list[Any]:
        first = asyncio.ensure_future(queue.apush(mark("unused", "first")))
        while not store.entered.is_set():  # the first batch is in the store, held there
            await asyncio.sleep(0.001)
        waiting = {tag: asyncio.ensure_future(queue.apush(mark("unused", tag)))
                   for tag in ("b", "c", "d")}
        await asyncio.sleep(0.01)
        waiting["c"].cancel()
        store.gate.set()
        return await asyncio.gather(first, *waiting.values(), return_exceptions=True)

    results = run(main())
    assert isinstance(results[2], asyncio.CancelledError)
    assert all(isinstance(results[i], str) for i in (0, 1, 3))
    assert store.calls == [1, 2]
    assert sorted(tags(queue)) == ["b", "d", "first"] and sorted(after) == ["b", "d", "first"]


def test_a_caller_cancelled_while_its_batch_is_in_the_store_pushes_once() -> None:
    store = SlowStore()
    store.gate = threading.Event()
    queue = Queue(store)
    after: list[str] = []
    queue.on(Queue.EVENT_AFTER_PUSH, lambda e: after.append(e.job.tag))

    async def main() -> list[Any]:
        calls = [asyncio.ensure_future(queue.apush(mark("unused", f"t{i}"))) for i in range(10)]
        while not store.entered.is_set():
            await asyncio.sleep(0.001)
        calls[3].cancel()
        await asyncio.sleep(0.01)
        store.gate.set()
        results = await asyncio.gather(*calls, return_exceptions=True)
        await queue.apush(mark("unused", "later"))
        return results

    results = run(main())
    assert isinstance(results[3], asyncio.CancelledError)
    assert all(isinstance(r, str) for i, r in enumerate(results) if i != 3)
    assert store.calls == [10, 1]
    expected = sorted([f"t{i}" for i in range(10)] + ["later"])
    assert sorted(tags(queue)) == expected and sorted(after) == expected


# -- several loops, lookups --------------------------------------------------------


def test_several_event_loops_share_a_queue() -> None:
    store = SlowStore(pause=0.01)
    queue = Queue(store)
    found: dict[int, list[str | None]] = {}

    def thread(number: int) -> None:
        async def main() -> list[str | None]:
            return await asyncio.gather(*(queue.apush(mark("unused", f"{number}.{i}"))
                                          for i in range(300)))
        found[number] = asyncio.run(main())

    threads = [threading.Thread(target=thread, args=(n,)) for n in range(4)]
    for started in threads:
        started.start()
    for started in threads:
        started.join(30)
    ids = [job_id for n in range(4) for job_id in found[n]]
    assert len(set(ids)) == 1200 and None not in ids
    assert len(tags(queue)) == 1200


def test_astatus_and_aget_answer_what_status_and_get_do() -> None:
    queue = Queue(MemoryDriver())
    waiting = queue.push(mark("unused", "a"))
    delayed = queue.push(mark("unused", "b"), delay=60)
    assert waiting is not None and delayed is not None

    async def main() -> None:
        for job_id in (waiting, delayed, "nope"):
            assert await queue.astatus(job_id) is queue.status(job_id)
        assert await queue.aget(waiting) == queue.get(waiting)
        with pytest.raises(JobNotFoundError) as found:
            await queue.aget("nope")
        with pytest.raises(JobNotFoundError) as expected:
            queue.get("nope")
        assert str(found.value) == str(expected.value)

    run(main())


def test_lookups_a_driver_cannot_do_are_refused_in_the_caller() -> None:
    class Blind(MemoryDriver):
        capabilities = dataclasses.replace(MemoryDriver.capabilities, status=False)

    queue = Queue(Blind())
    for call in (queue.astatus, queue.aget):
        with pytest.raises(NotSupportedError) as refused:
            run(call("1"))
        assert "does not support job" in str(refused.value)
    assert queue not in pa._PRODUCERS  # refused before any thread was asked


def test_a_queue_nobody_holds_is_collected_with_its_threads() -> None:
    import gc

    queue = Queue(MemoryDriver())
    run(queue.apush(Noop()))
    executor = pa._PRODUCERS[queue].executor
    threads = list(executor._threads)
    assert threads
    del queue, executor
    gc.collect()
    for thread in threads:
        thread.join(5)
        assert not thread.is_alive()


# -- real back ends ----------------------------------------------------------------


def test_the_file_driver(tmp_path: Path) -> None:
    journal = str(tmp_path / "journal")
    queue = create_queue({"driver": f"file://{tmp_path}/queue", "imports": []})

    async def main() -> tuple[list[Any], list[Any]]:
        singles = await asyncio.gather(*(queue.apush(mark(journal, f"t{i}")) for i in range(50)))
        many = await queue.apush_many([mark(journal, f"m{i}") for i in range(50)])
        assert {await queue.astatus(job_id) for job_id in singles + many} == {
            JobStatus.WAITING}
        assert (await queue.aget(many[0])).id == many[0]
        return singles, many

    singles, many = run(main())
    assert len(set(singles + many)) == 100
    while queue.run():
        pass
    assert sorted(read_lines(journal)) == sorted([f"t{i}" for i in range(50)]
                                                 + [f"m{i}" for i in range(50)])
    queue.close()


@pytest.fixture
def redis_queue() -> Iterator[Queue]:
    from tests.support.specs import redis as spec
    problem = spec.available()
    if problem:
        if REQUIRE_ALL:
            pytest.fail(problem)
        pytest.skip(problem)
    queue = create_queue({"driver": spec.URL, "channel": f"t{uuid.uuid4().hex[:12]}"})
    yield queue
    queue.clear()
    queue.close()


def test_redis_apush_from_many_tasks(redis_queue: Queue) -> None:
    queue = redis_queue
    pushed: list[str | None] = []
    queue.on(Queue.EVENT_AFTER_PUSH, lambda e: pushed.append(e.id))

    async def main() -> tuple[list[str | None], list[str | None]]:
        async def task(number: int) -> list[str | None]:
            return [await queue.apush(mark("unused", f"{number}.{i}"), priority=number % 3,
                                      delay=0.5 if i == 0 else 0) for i in range(20)]
        done = await asyncio.gather(*(task(n) for n in range(50)))
        many = await queue.apush_many([mark("unused", f"m{i}") for i in range(100)])
        return [job_id for ids in done for job_id in ids], many

    singles, many = run(main())
    assert len(set(singles + many)) == 1100 and sorted(pushed) == sorted(singles + many)
    info = queue.info()
    assert (info[JobStatus.WAITING], info[JobStatus.DELAYED]) == (1050, 50)
    first = singles[0]
    assert first is not None
    assert run(queue.astatus(first)) is queue.status(first) is JobStatus.DELAYED
    assert run(queue.aget(many[-1] or "")).priority == queue.get(many[-1] or "").priority


def test_redis_unreachable_raises_what_push_raises() -> None:
    queue = create_queue({"driver": {"url": "redis://127.0.0.1:1/0",
                                     "socket_connect_timeout": 1}})
    with pytest.raises(DriverError) as pushed:
        queue.push(Noop())
    with pytest.raises(DriverError) as apushed:
        run(queue.apush(Noop()))
    with pytest.raises(DriverError):
        run(queue.astatus("1"))
    assert str(apushed.value) == str(pushed.value)
    queue.close()
