"""Beanstalk retention specifics: the side tube of reasons trimmed with the buried jobs,
and an age trim that reads the reasons' failure times, which it does not trust."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from queue_core.drivers.beanstalk import connection, protocol
from queue_core.drivers.beanstalk.client import Client
from queue_core.drivers.beanstalk.retention import trim

from queue_core import JobStatus, Queue, create_queue
from queue_core.model import Retention
from tests.support.jobs import Boom
from tests.support.specs.beanstalk import available, port

pytestmark = pytest.mark.skipif(bool(available()), reason=str(available()))


@pytest.fixture
def make() -> Iterator[Any]:
    channel = f"t{uuid.uuid4().hex[:10]}"
    made: list[Queue] = []

    def build(**extra: Any) -> Queue:
        queue = create_queue({"driver": f"beanstalk://127.0.0.1:{port()}", "channel": channel,
                              "imports": ["tests.support.jobs"], **extra})
        made.append(queue)
        return queue
    yield build
    for queue in made:
        queue.clear()
        queue.close()


def _run_all(queue: Queue) -> None:
    while queue.run():
        pass


def _side_tube(queue: Queue) -> int:
    """Records in the side tube of reasons."""
    driver: Any = queue.driver
    stats = driver._io(lambda c: c.tube_stats(driver.reasons_tube))
    return int(stats.get("current-jobs-ready", 0))


def _buried_by_hand(queue: Queue, reason: dict[str, Any] | None) -> int:
    """A job put, reserved and buried on the store's connection, with ``reason`` (its
    ``id`` filled in) written to the side tube first: what a worker does, the failure
    time chosen by the test."""
    driver: Any = queue.driver

    def bury(c: Client) -> int:
        job_id = c.call(protocol.put(b"{}", 2**20, 0, 60))
        reserved = c.call(protocol.reserve_job(job_id))
        assert reserved.id == job_id
        if reason is not None:
            c.call(protocol.use(driver.reasons_tube))
            c.call(protocol.put(json.dumps({**reason, "id": job_id}).encode(), 2**32 - 1, 0,
                                3600))
            c.call(protocol.use(driver.channel))
        c.call(protocol.bury(job_id, 2**20))
        return job_id
    return int(driver._io(bury))


def _trim(queue: Queue, retention: Retention) -> int:
    driver: Any = queue.driver
    return int(driver._io(lambda c: trim(c, driver.channel, driver.reasons_tube, retention)))


def test_a_count_trim_takes_the_reasons_of_the_jobs_it_deletes(make: Any) -> None:
    queue = make(keep_failed=5)
    ids = queue.push_many([Boom(n) for n in range(40)])
    _run_all(queue)
    assert queue.info()[JobStatus.FAILED] == 5
    assert _side_tube(queue) == 5  # no reason left behind for a deleted job
    kept = queue.failed()
    assert [info.id for info in kept] == ids[-5:]
    assert all(info.error is not None and info.error.type == "RuntimeError" for info in kept)


def test_reasons_out_of_bury_order_are_dropped_once_their_job_is_gone(make: Any) -> None:
    """Two workers failing at the same moment write their reasons in one order and bury
    in the other: the count trim deletes by bury order; a reason it could not reach (behind
    one whose job stays) goes at the next listing, or trim, that reaches it."""
    queue = make()
    late = _buried_by_hand(queue, None)
    early = _buried_by_hand(queue, {"error": {"type": "E"}, "finished_at": time.time()})
    driver: Any = queue.driver
    driver._io(lambda c: (c.call(protocol.use(driver.reasons_tube)), c.call(protocol.put(
        json.dumps({"id": late, "finished_at": time.time()}).encode(), 2**32 - 1, 0, 3600)),
        c.call(protocol.use(driver.channel))))
    assert _trim(queue, Retention(max_count=1)) == 1
    assert queue.status(str(late)) is JobStatus.DONE  # gone: the oldest buried
    assert queue.status(str(early)) is JobStatus.FAILED
    assert [info.id for info in queue.failed()] == [str(early)]
    assert _side_tube(queue) == 1
    # Once the job ahead of it goes, the next trim reaches a stale reason too (here, of
    # a job deleted by another client).
    stale = _buried_by_hand(queue, {"error": {"type": "E"}, "finished_at": time.time()})
    driver._io(lambda c: c.call(protocol.delete(stale)))
    newest = _buried_by_hand(queue, {"error": {"type": "E"}, "finished_at": time.time()})
    assert _side_tube(queue) == 3
    assert _trim(queue, Retention(max_count=1)) == 1  # early goes, then the stale reason
    assert _side_tube(queue) == 1
    assert [info.id for info in queue.failed()] == [str(newest)]


def test_an_age_trim_deletes_only_buried_jobs_of_its_tube(make: Any) -> None:
    queue = make()
    old = time.time() - 100
    expired = _buried_by_hand(queue, {"error": {"type": "E"}, "finished_at": old})
    # A reason whose bury was lost: its job came back and waits to run again.
    driver: Any = queue.driver
    back = queue.driver.push(b"{}", ttr=60)
    # A reason naming a job of another tube (the side tube is read back: untrusted).
    other = make(channel=f"o{uuid.uuid4().hex[:10]}")
    foreign = _buried_by_hand(other, None)
    for job_id in (back, foreign):
        record = json.dumps({"id": int(job_id), "finished_at": old}).encode()
        driver._io(lambda c, body=record: (
            c.call(protocol.use(driver.reasons_tube)),
            c.call(protocol.put(body, 2**32 - 1, 0, 3600)),
            c.call(protocol.use(driver.channel))))
    fresh = _buried_by_hand(queue, {"error": {"type": "E"}, "finished_at": time.time()})
    assert _trim(queue, Retention(max_age=10)) == 1
    assert queue.status(str(expired)) is JobStatus.DONE
    assert queue.status(back) is JobStatus.WAITING
    assert other.status(str(foreign)) is JobStatus.FAILED
    assert queue.status(str(fresh)) is JobStatus.FAILED
    assert _side_tube(queue) == 1  # the reason of the fresh job, and no stale one


def test_a_reason_whose_failure_time_cannot_be_read_is_dated_anew(make: Any) -> None:
    queue = make()
    unreadable = _buried_by_hand(queue, {"error": {"type": "E"}, "finished_at": "yesterday"})
    behind = _buried_by_hand(queue, {"error": {"type": "E"}, "finished_at": time.time() - 100})
    assert _trim(queue, Retention(max_age=10)) == 1
    # Not deleted before its time, nor blocking the trim of the expired one behind it.
    assert queue.status(str(unreadable)) is JobStatus.FAILED
    assert queue.status(str(behind)) is JobStatus.DONE
    [info] = queue.failed()
    assert info.id == str(unreadable)
    assert info.finished_at is not None and abs(info.finished_at - time.time()) < 60


def test_a_worker_counts_the_buried_jobs_only_every_tenth_of_max_count(
        make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The failure path pays for retention with a count every tenth of max_count
    failures (or a second after the last), not with a round trip per failure."""
    queue = make(keep_failed=1000)
    queue.push_many([Boom(n) for n in range(300)])
    counts = 0
    real = connection.Connection.send

    def counting(self: Any, *commands: Any) -> None:
        nonlocal counts
        counts += sum(command.name == "stats-tube" for command in commands)
        real(self, *commands)
    monkeypatch.setattr(connection.Connection, "send", counting)
    began = time.monotonic()
    _run_all(queue)
    took = time.monotonic() - began
    monkeypatch.undo()
    assert queue.info()[JobStatus.FAILED] == 300
    # Three tenths, plus one per second the run took (the pacer's interval), plus the
    # trim at close; the info() calls of the run loop's end are not counted here.
    assert 1 <= counts <= 3 + int(took) + 2
