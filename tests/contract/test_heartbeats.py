"""Worker heartbeats on every driver that declares them: records written, read back,
replaced, forgotten and expired; a damaged record skipped; a listening worker's own."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import replace
from typing import Any

import pytest

from queue_core import Queue, Store
from queue_core.beats import encode, forget_after
from queue_core.model import RunningJob, WorkerInfo
from tests.support.jobs import Sleep
from tests.support.procs import wait_for

pytestmark = [pytest.mark.needs("heartbeats"), pytest.mark.worker_modes("c1")]


def record(number: int = 1, **changes: Any) -> WorkerInfo:
    now = time.time()
    info = WorkerInfo(id=f"host-{number}-0000abcd", host="host", pid=number, channel="queue",
                      started_at=now - 60, beat_at=now, period=5.0,
                      jobs=(RunningJob("17", "tests.SendEmail", now - 3.25),), done=12,
                      failed=3, memory_mb=40.5)
    return replace(info, **changes)


def plant(store: Store, name: str, raw: bytes) -> None:
    """Write ``raw`` as the record ``name``, past the driver's own checks: what a damaged
    disk, another program or an older version could leave."""
    if store.name == "memory":
        store._beats[name] = raw  # type: ignore[attr-defined]
    elif store.name == "file":
        folder = store.root / "workers"  # type: ignore[attr-defined]
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.json").write_bytes(raw)
    elif store.name == "redis":
        store._admin(lambda r: r.hset(store.prefix + "wk", name, raw))  # type: ignore[attr-defined]
    elif store.name == "db":
        store._read(store._beat_sql.insert,  # type: ignore[attr-defined]
                    {"c": store.channel, "id": name, "f": time.time() + 3600,
                     "r": raw.decode("utf-8", "replace")}, lambda cursor: None)
    else:
        pytest.fail(f"no way to plant a record on the {store.name} driver: add one here")


def test_a_record_is_written_read_back_replaced_and_forgotten(queue: Queue) -> None:
    store = queue.driver
    first = record(channel=store.channel)
    store.beat(first)
    assert queue.workers() == [first]
    later = replace(first, beat_at=first.beat_at + 1, done=13, jobs=())
    store.beat(later)
    assert queue.workers() == [later]
    other = record(2, channel=store.channel)
    store.beat(other)
    assert [info.pid for info in queue.workers()] == [1, 2]
    assert store.forget_worker(first.id) is True
    assert queue.workers() == [other]
    assert store.forget_worker(first.id) is False
    assert store.forget_worker("no such worker") is False


def test_a_stale_record_is_listed_until_it_is_long_gone(queue: Queue) -> None:
    store = queue.driver
    now = time.time()
    stale = record(1, beat_at=now - 30, period=5.0)
    gone = record(2, beat_at=now - forget_after(1.0) - 5, period=1.0)
    store.beat(stale)
    store.beat(gone)
    listed = queue.workers()
    assert [info.pid for info in listed] == [1]
    assert listed[0].stopped_beating(time.time())


def test_a_damaged_record_is_skipped_with_a_warning(
        queue: Queue, caplog: pytest.LogCaptureFixture) -> None:
    store = queue.driver
    good = record(channel=store.channel)
    store.beat(good)
    plant(store, "bad-1-json", b"{not json")
    fields = json.loads(encode(record(3)))
    plant(store, "bad-2-pid", json.dumps({**fields, "pid": -5}).encode())
    plant(store, "bad-3-huge", b'{"id": "' + b"x" * 70_000 + b'"}')
    with caplog.at_level(logging.WARNING, logger="queue_core.beats"):
        assert queue.workers() == [good]
    assert caplog.text.count("skipped") == 3, caplog.text


def test_a_listening_worker_beats_its_running_job_and_forgets_its_record_at_exit(
        make_queue: Any, journal: str) -> None:
    queue = make_queue(heartbeat=0.2)
    job_id = queue.push(Sleep(journal, "long", 1.5))
    worker = queue.worker(handle_signals=False, timeout=0.2)
    thread = threading.Thread(target=worker.listen, daemon=True)
    thread.start()
    try:
        def running() -> WorkerInfo | None:
            listed = queue.workers()
            return listed[0] if listed and listed[0].jobs else None
        info = wait_for(running, 10, "a beat that lists the running job")
        assert (info.pid, info.channel) == (os.getpid(), queue.driver.channel)
        assert [job.id for job in info.jobs] == [job_id]
        assert info.jobs[0].name.endswith("Sleep")
        assert 0 <= time.time() - info.jobs[0].started_at < 5
        assert not info.stopped_beating(time.time())
        wait_for(lambda: (w := queue.workers()) and not w[0].jobs and w[0].done == 1, 10,
                 "a beat after the job, counting it done")
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert queue.workers() == []
