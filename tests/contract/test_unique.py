"""Unique jobs: a push whose key a live job holds stores nothing and returns that job's
id; the key is freed when its job finishes or fails for good (not when it is released
for a retry), when it is removed or cleared, and a unique_for window when it ends."""

from __future__ import annotations

import asyncio
import time

import pytest

from queue_core import Backoff, InvalidArgumentError, JobStatus, PushEvent, Queue
from tests.support.jobs import Fail, Record, UniqueRecord, WindowRecord, read_lines
from tests.support.run import run_until

pytestmark = pytest.mark.needs("unique")


def _stored(queue: Queue) -> int | None:
    """How many jobs wait, are delayed or reserved (None where the driver cannot count)."""
    if not queue.capabilities.info:
        return None
    counts = queue.info()
    return sum(counts.get(s, 0) for s in (JobStatus.WAITING, JobStatus.DELAYED,
                                          JobStatus.RESERVED))


def _pushed_anew(queue: Queue, journal: str, tag: str) -> None:
    """The job ``tag`` was stored and runs (an id alone cannot tell: SQLite gives a new
    job the id of a deleted one)."""
    run_until(queue, lambda: tag in read_lines(journal), what=f"job {tag}")


def test_a_second_push_of_a_key_returns_the_first_id(queue: Queue, journal: str) -> None:
    first = queue.push(Record(journal, "a"), unique_key="k")
    second = queue.push(Record(journal, "b"), unique_key="k")
    other = queue.push(Record(journal, "c"), unique_key="other")
    assert first is not None and second == first and other != first
    assert _stored(queue) in (None, 2)
    run_until(queue, lambda: len(read_lines(journal)) >= 2)
    time.sleep(0.1)
    queue.run()
    assert sorted(read_lines(journal)) == ["a", "c"]


def test_the_job_hook_gives_the_default_key(queue: Queue, journal: str) -> None:
    first = queue.push(UniqueRecord(journal, "a", key="hook"))
    assert queue.push(UniqueRecord(journal, "b", key="hook")) == first
    # A push argument wins over the hook.
    assert queue.push(UniqueRecord(journal, "c", key="hook"), unique_key="arg") != first
    # No key from the hook: not unique.
    plain = [queue.push(UniqueRecord(journal, "p")) for _ in range(2)]
    assert plain[0] != plain[1]
    run_until(queue, lambda: len(read_lines(journal)) >= 4)
    assert sorted(read_lines(journal)) == ["a", "c", "p", "p"]


def test_push_many_takes_each_jobs_key(queue: Queue, journal: str) -> None:
    held = queue.push(Record(journal, "held"), unique_key="x")
    ids = queue.push_many([UniqueRecord(journal, "a", key="x"),
                           UniqueRecord(journal, "b", key="y"),
                           UniqueRecord(journal, "c", key="y"),
                           UniqueRecord(journal, "d")])
    assert ids[0] == held
    assert ids[1] == ids[2] and ids[1] != held
    assert ids[3] not in (held, ids[1])
    run_until(queue, lambda: len(read_lines(journal)) >= 3)
    time.sleep(0.1)
    queue.run()
    assert sorted(read_lines(journal)) == ["b", "d", "held"]


@pytest.mark.needs("delay")
def test_a_delayed_job_holds_its_key(queue: Queue, journal: str) -> None:
    first = queue.push(Record(journal, "a"), delay=60, unique_key="k")
    assert queue.push(Record(journal, "b"), unique_key="k") == first
    queue.run()
    assert read_lines(journal) == []


@pytest.mark.needs("!runs_at_push")
def test_a_running_job_holds_its_key(queue: Queue, journal: str) -> None:
    first = queue.push(Record(journal, "a"), unique_key="k")
    consumption = queue.consume()
    held = consumption.next(0)
    assert held is not None and held.id == first
    assert queue.push(Record(journal, "b"), unique_key="k") == first
    consumption.ack(held)
    consumption.flush()
    assert queue.push(Record(journal, "b"), unique_key="k") is not None
    _pushed_anew(queue, journal, "b")


def test_the_key_is_freed_when_its_job_is_done(queue: Queue, journal: str) -> None:
    queue.push(Record(journal, "a"), unique_key="k")
    run_until(queue, lambda: read_lines(journal) == ["a"])
    assert queue.push(Record(journal, "b"), unique_key="k") is not None
    _pushed_anew(queue, journal, "b")
    assert read_lines(journal) == ["a", "b"]


@pytest.mark.needs("keep_completed")
def test_a_kept_done_job_frees_its_key(make_queue, journal: str) -> None:
    queue = make_queue(keep_completed=True)
    first = queue.push(Record(journal, "a"), unique_key="k")
    run_until(queue, lambda: read_lines(journal) == ["a"])
    assert queue.status(first) is JobStatus.DONE
    assert queue.push(Record(journal, "b"), unique_key="k") != first  # kept: no id reuse
    _pushed_anew(queue, journal, "b")


def test_the_key_is_freed_when_its_job_fails_for_good(make_queue, journal: str) -> None:
    queue = make_queue(attempts=1)
    queue.push(Fail(journal, "f"), unique_key="k")
    run_until(queue, lambda: read_lines(journal) == ["f"])
    time.sleep(0.1)
    queue.run()
    assert queue.push(Record(journal, "b"), unique_key="k") is not None
    _pushed_anew(queue, journal, "b")


@pytest.mark.needs("retry", "delay", "manual_retry", "failed_store")
def test_a_retry_release_keeps_the_key_and_a_manual_retry_does_not_take_it_back(
        make_queue, journal: str) -> None:
    queue = make_queue(attempts=2, backoff=Backoff.fixed(60))
    first = queue.push(Fail(journal, "f"), unique_key="k")
    run_until(queue, lambda: read_lines(journal) == ["f"])
    deadline = time.monotonic() + 5
    while queue.status(first) is not JobStatus.DELAYED and time.monotonic() < deadline:
        queue.run()
        time.sleep(0.02)
    assert queue.status(first) is JobStatus.DELAYED  # released for its second attempt
    assert queue.push(Record(journal, "b"), unique_key="k") == first
    # Failed for good: freed; retried by hand, it does not hold the key again.
    failing = make_queue(attempts=1)
    gone = failing.push(Fail(journal, "g"), unique_key="g")
    run_until(failing, lambda: "g" in read_lines(journal))
    deadline = time.monotonic() + 5
    while failing.status(gone) is not JobStatus.FAILED and time.monotonic() < deadline:
        time.sleep(0.02)
    failing.retry(gone)
    failing.push(Record(journal, "h"), unique_key="g")
    _pushed_anew(failing, journal, "h")


@pytest.mark.needs("remove", "!runs_at_push")
def test_removing_the_job_frees_its_key(queue: Queue, journal: str) -> None:
    first = queue.push(Record(journal, "a"), unique_key="k")
    assert queue.remove(first) is True
    assert queue.push(Record(journal, "b"), unique_key="k") is not None
    _pushed_anew(queue, journal, "b")
    assert read_lines(journal) == ["b"]


@pytest.mark.needs("clear", "!runs_at_push")
def test_clear_frees_every_key_windows_included(queue: Queue, journal: str) -> None:
    queue.push(Record(journal, "a"), unique_key="k")
    queue.push(Record(journal, "w"), unique_key="w", unique_for=60)
    queue.clear()
    queue.push(Record(journal, "b"), unique_key="k")
    queue.push(Record(journal, "x"), unique_key="w", unique_for=60)
    _pushed_anew(queue, journal, "b")
    _pushed_anew(queue, journal, "x")
    assert sorted(read_lines(journal)) == ["b", "x"]


def test_unique_for_holds_the_key_for_its_window(queue: Queue, journal: str) -> None:
    first = queue.push(Record(journal, "a"), unique_key="k", unique_for=1.0)
    run_until(queue, lambda: read_lines(journal) == ["a"])
    # Done, yet held: the window runs from the push whatever becomes of the job.
    assert queue.push(Record(journal, "b"), unique_key="k", unique_for=1.0) == first
    time.sleep(1.2)
    assert queue.push(Record(journal, "c"), unique_key="k", unique_for=1.0) is not None
    _pushed_anew(queue, journal, "c")
    assert read_lines(journal) == ["a", "c"]


def test_the_class_unique_for_applies_to_the_hooks_key(queue: Queue, journal: str) -> None:
    first = queue.push(WindowRecord(journal, "a", key="c"))
    run_until(queue, lambda: read_lines(journal) == ["a"])
    assert queue.push(WindowRecord(journal, "b", key="c")) == first


def test_before_push_runs_and_after_push_sees_the_holders_id(queue: Queue,
                                                              journal: str) -> None:
    seen: list[tuple[str, str | None]] = []

    def before(event: PushEvent) -> None:
        seen.append(("before", event.job.tag))

    queue.on(Queue.EVENT_BEFORE_PUSH, before)
    queue.on(Queue.EVENT_AFTER_PUSH, lambda event: seen.append(("after", event.id)))
    first = queue.push(Record(journal, "a"), unique_key="k")
    second = queue.push(Record(journal, "b"), unique_key="k")
    assert second == first
    assert seen == [("before", "a"), ("after", first), ("before", "b"), ("after", first)]


def test_apush_takes_a_unique_key(queue: Queue, journal: str) -> None:
    async def main() -> list[str | None]:
        return list(await asyncio.gather(
            *(queue.apush(Record(journal, f"j{i}"), unique_key="k") for i in range(5))))
    ids = asyncio.run(main())
    assert len(set(ids)) == 1 and ids[0] is not None
    run_until(queue, lambda: len(read_lines(journal)) >= 1)
    time.sleep(0.1)
    queue.run()
    assert len(read_lines(journal)) == 1


@pytest.mark.parametrize(("arguments", "named"), [
    ({"unique_key": ""}, "unique_key"),
    ({"unique_key": "x" * 201}, "unique_key"),
    ({"unique_key": 7}, "unique_key"),
    ({"unique_key": "k", "unique_for": 0}, "unique_for"),
    ({"unique_key": "k", "unique_for": -1}, "unique_for"),
    ({"unique_key": "k", "unique_for": float("inf")}, "unique_for"),
    ({"unique_key": "k", "unique_for": float("nan")}, "unique_for"),
    ({"unique_key": "k", "unique_for": "5"}, "unique_for"),
    ({"unique_for": 5}, "unique_for"),
])
def test_bad_unique_arguments_are_refused(queue: Queue, journal: str,
                                          arguments: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidArgumentError, match=named):
        queue.push(Record(journal, "x"), **arguments)  # type: ignore[arg-type]
    assert _stored(queue) in (None, 0)
    assert isinstance(InvalidArgumentError("x"), ValueError)


def test_a_bad_key_from_the_hook_names_the_hook(queue: Queue, journal: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"UniqueRecord.get_unique_key\(\)"):
        queue.push(UniqueRecord(journal, "x", key="y" * 300))


@pytest.mark.needs("cancel", "!runs_at_push")
@pytest.mark.parametrize("keep_failed", [True, False])
def test_cancelling_a_waiting_job_frees_its_key(make_queue, journal: str,
                                                keep_failed: bool) -> None:
    queue = make_queue(keep_failed=keep_failed)
    first = queue.push(Record(journal, "a"), unique_key="k", delay=60)
    assert first is not None and queue.cancel(first)
    # A job without a key may be given the cancelled job's id (SQLite reuses the id of a
    # deleted last row): it must not be taken for the key's holder.
    queue.push(Record(journal, "plain"))
    again = queue.push(Record(journal, "b"), unique_key="k")
    assert again is not None
    _pushed_anew(queue, journal, "b")
    assert sorted(read_lines(journal)) == ["b", "plain"]
