"""Worker heartbeats without a server: the record read back as untrusted data, the health
rule, the beating thread's choice to beat or not, the supervisor's watch and the setting."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

import pytest

from queue_core import ConfigError, InvalidArgumentError, Message, create_queue
from queue_core.beat_watch import BeatWatch
from queue_core.beats import (
    MAX_JOBS,
    MAX_RECORD,
    DamagedRecord,
    decode,
    encode,
    forget_after,
    new_worker_id,
    read_records,
)
from queue_core.fleet import span, summary, table
from queue_core.heartbeat import Activity, Heartbeat, check_period, healthy, stall_after
from queue_core.model import RunningJob, WorkerInfo

NOW = 1_800_000_000.0


def record(**changes: Any) -> WorkerInfo:
    base = WorkerInfo(id="vm-42-0a1b2c3d", host="vm", pid=42, channel="queue",
                      started_at=NOW - 60, beat_at=NOW - 1, period=5.0,
                      jobs=(RunningJob("17", "SendEmail", NOW - 3),), done=7, failed=2,
                      memory_mb=31.5)
    return replace(base, **changes)


def raw(**changes: Any) -> bytes:
    data = json.loads(encode(record()))
    for key, value in changes.items():
        if value is KeyError:
            data.pop(key)
        else:
            data[key] = value
    return json.dumps(data).encode()


# -- the record ----------------------------------------------------------------------

def test_a_record_round_trips() -> None:
    assert decode(encode(record())) == record()
    assert decode(encode(record(memory_mb=None, jobs=()))) == record(memory_mb=None, jobs=())


@pytest.mark.parametrize(("changes", "field"), [
    ({"id": "../../etc/passwd"}, "id"),
    ({"id": ""}, "id"),
    ({"id": 7}, "id"),
    ({"host": KeyError}, "host"),
    ({"host": ["vm"]}, "host"),
    ({"pid": 0}, "pid"),
    ({"pid": True}, "pid"),
    ({"pid": 2**40}, "pid"),
    ({"pid": "42"}, "pid"),
    ({"beat_at": float("nan")}, "beat_at"),
    ({"beat_at": -1}, "beat_at"),
    ({"beat_at": 1e300}, "beat_at"),
    ({"started_at": "yesterday"}, "started_at"),
    ({"period": 0}, "period"),
    ({"period": 1e9}, "period"),
    ({"done": -1}, "done"),
    ({"failed": 1.5}, "failed"),
    ({"memory_mb": -3}, "memory_mb"),
    ({"jobs": {"17": "x"}}, "jobs"),
    ({"jobs": [7]}, "running job"),
    ({"jobs": [{"id": "1", "name": "x", "started_at": None}]}, "started_at"),
    ({"jobs": [{"id": "1", "name": "x", "started_at": 1.0}] * (MAX_JOBS + 1)}, "jobs"),
])
def test_a_damaged_field_is_named(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(DamagedRecord, match=field):
        decode(raw(**changes))


@pytest.mark.parametrize("text", [b"", b"{", b"[1, 2]", b"null", b"\xff\xfe",
                                  b"[" * 100_000, b"{" + b" " * MAX_RECORD + b"}"])
def test_what_is_no_record_is_refused(text: bytes) -> None:
    with pytest.raises(DamagedRecord):
        decode(text)


def test_strings_are_cut_and_cleaned_for_a_terminal() -> None:
    info = decode(raw(host="vm\x1b[2J" + "x" * 500,
                      jobs=[{"id": "1", "name": "Evil\r\x07", "started_at": NOW}]))
    assert "\x1b" not in info.host and len(info.host) == 200
    assert info.jobs[0].name == "Evil??"


def test_reading_skips_damaged_and_forgotten_records_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    ancient = record(id="vm-43-00000000", pid=43, beat_at=NOW - forget_after(5.0) - 1)
    stale = record(id="vm-44-00000000", pid=44, beat_at=NOW - 16)
    with caplog.at_level(logging.WARNING, logger="queue_core.beats"):
        found = read_records([("good", encode(record())), ("bad\x1b", b"{oops"),
                              ("old", encode(ancient)), ("stale", encode(stale)),
                              ("neg", raw(pid=-1))], "file:/q", NOW)
    assert [info.pid for info in found] == [42, 44]
    assert not found[0].stopped_beating(NOW) and found[1].stopped_beating(NOW)
    assert "heartbeat record bad? skipped: the record is not JSON" in caplog.text
    assert "heartbeat record neg skipped: pid" in caplog.text


def test_worker_ids_are_safe_names() -> None:
    worker_id = new_worker_id("web 1/../prod.example.com", 123)
    assert worker_id.startswith("web_1_.._prod.example.com-123-")
    assert decode(encode(record(id=worker_id))).id == worker_id


# -- the health rule -------------------------------------------------------------------

def test_a_worker_whose_loop_moves_is_healthy() -> None:
    assert healthy(100.0, progress_at=95.0, running=[], stall=30, grace=5)


def test_a_long_job_within_its_ttr_keeps_the_worker_healthy() -> None:
    assert healthy(1000.0, progress_at=0.0, running=[(10.0, 3600.0)], stall=30, grace=5)
    assert healthy(1000.0, progress_at=0.0, running=[(10.0, 986.0)], stall=30, grace=5)


def test_a_job_past_its_ttr_and_grace_with_a_still_loop_is_a_hang() -> None:
    assert not healthy(1000.0, progress_at=0.0, running=[(10.0, 60.0)], stall=30, grace=5)
    assert not healthy(1000.0, progress_at=0.0, running=[], stall=30, grace=5)
    # One job still legitimately running is enough.
    assert healthy(1000.0, progress_at=0.0, running=[(10.0, 60.0), (900.0, 300.0)],
                   stall=30, grace=5)


def test_the_stall_limit_is_at_least_three_periods() -> None:
    assert stall_after(0.5) == 30.0
    assert stall_after(60.0) == 180.0


class FakeStore:
    name = "fake"
    channel = "queue"

    def __init__(self) -> None:
        self.records: dict[str, WorkerInfo] = {}
        self.fail: Exception | None = None

    def beat(self, info: WorkerInfo) -> None:
        if self.fail is not None:
            raise self.fail
        self.records[info.id] = info

    def workers(self) -> list[WorkerInfo]:
        if self.fail is not None:
            raise self.fail
        return list(self.records.values())

    def forget_worker(self, worker_id: str) -> bool:
        return self.records.pop(worker_id, None) is not None

    def describe(self) -> str:
        return "fake:queue"


def heartbeat(store: FakeStore, activity: Activity) -> Heartbeat:
    return Heartbeat(store, activity, 1.0, lambda: (3, 1),  # type: ignore[arg-type]
                     lambda payload: "SendEmail")


def test_the_thread_beats_the_jobs_running_and_stops_beating_when_hung(
        caplog: pytest.LogCaptureFixture) -> None:
    store, activity = FakeStore(), Activity()
    beating = heartbeat(store, activity)
    message = Message("17", b"{}", 1, ttr=2.0)
    activity.began(message)
    assert beating.tick()
    (info,) = store.records.values()
    assert [(job.id, job.name) for job in info.jobs] == [("17", "SendEmail")]
    assert (info.done, info.failed, info.period) == (3, 1, 1.0)
    # The job ran far past its ttr and the loop has not moved: no more beats.
    activity.running[id(message)] = (message, activity.progress_at - 1000)
    activity.progress_at -= 1000
    store.records.clear()
    with caplog.at_level(logging.ERROR, logger="queue_core.heartbeat"):
        assert not beating.tick()
    assert not store.records and "looks hung" in caplog.text
    activity.ended(message)
    activity.progress()  # the loop moves again
    assert beating.tick() and store.records


def test_a_beat_that_fails_is_logged_once_and_the_thread_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    beating = heartbeat(store, Activity())
    store.fail = OSError("disk full")
    with caplog.at_level(logging.WARNING, logger="queue_core.heartbeat"):
        assert not beating.tick() and not beating.tick()
        store.fail = None
        assert beating.tick()
    assert caplog.text.count("cannot write the heartbeat") == 1
    assert "heartbeats reach fake:queue again" in caplog.text
    beating.stop(forget=True)
    assert not store.records


# -- the supervisor's watch ------------------------------------------------------------

def test_the_watch_names_a_child_whose_beat_stopped_changing() -> None:
    store = FakeStore()
    watch = BeatWatch(store, 1.0)  # type: ignore[arg-type]
    mine = record(host=watch.host, period=1.0, started_at=NOW)
    store.records[mine.id] = mine
    children = {42: NOW - 1}
    assert watch.silent(children, now=0.0) == []
    store.records[mine.id] = replace(mine, beat_at=NOW + 1)
    assert watch.silent(children, now=2.0) == []  # it beat: timed afresh
    assert watch.silent(children, now=4.9) == []  # (reads at most 4 times a period)
    (silent,) = watch.silent(children, now=5.2)
    assert silent.pid == 42 and silent.seconds == pytest.approx(3.2)


def test_the_watch_ignores_other_hosts_other_pids_and_a_reused_pid() -> None:
    store = FakeStore()
    watch = BeatWatch(store, 1.0)  # type: ignore[arg-type]
    store.records = {
        "a": record(id="a", host="elsewhere", period=1.0),
        "b": record(id="b", host=watch.host, pid=99, period=1.0),
        # pid 42's record from before the child started: a previous owner of the pid
        "c": record(id="c", host=watch.host, period=1.0, started_at=NOW - 3600),
    }
    children = {42: NOW}
    for moment in (0.0, 10.0, 20.0):
        assert watch.silent(children, now=moment) == []


def test_a_failed_read_judges_nobody_and_times_everything_afresh() -> None:
    store = FakeStore()
    watch = BeatWatch(store, 1.0)  # type: ignore[arg-type]
    mine = record(host=watch.host, period=1.0, started_at=NOW)
    store.records[mine.id] = mine
    children = {42: NOW}
    watch.silent(children, now=0.0)
    store.fail = ConnectionError("down")
    assert watch.silent(children, now=2.0) == []
    store.fail = None
    assert watch.silent(children, now=4.0) == []  # seen again now, not since 0
    assert watch.silent(children, now=6.9) == []
    assert [s.pid for s in watch.silent(children, now=7.2)] == [42]


# -- the setting and the CLI's table ---------------------------------------------------

@pytest.mark.parametrize("value", [-1, 0.05, 3601, "5", True, float("inf")])
def test_a_bad_heartbeat_setting_is_a_config_error(value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        create_queue({"driver": "memory://", "heartbeat": value})
    assert caught.value.key == "heartbeat"
    with pytest.raises(InvalidArgumentError):
        check_period(value)


def test_the_heartbeat_setting() -> None:
    assert create_queue("memory://").heartbeat == 5.0
    assert create_queue({"driver": "memory://", "heartbeat": 0}).heartbeat == 0.0
    assert create_queue({"driver": "memory://", "heartbeat": 0.5}).heartbeat == 0.5


def test_the_table_shows_state_age_jobs_and_memory() -> None:
    stale = record(id="vm-43-00000000", pid=43, beat_at=NOW - 20, jobs=(), memory_mb=None)
    lines = table([record(), stale], NOW)
    assert "live" in lines[1] and "1.0s ago" in lines[1] and "31.5 MB" in lines[1]
    assert lines[2] == "    job 17 SendEmail, running 3.0s"
    assert "stopped beating" in lines[3] and "20s ago" in lines[3]
    assert summary([record(), stale], NOW) == "1 live, 1 stopped beating"
    assert [span(s) for s in (0.44, 12, 302, 11040, 183600)] == [
        "0.4s", "12s", "5m02s", "3h04m", "2d03h"]


def test_a_worker_stuck_in_a_job_past_its_ttr_stops_beating_and_resumes_after(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The worker's loops feed the rule: a job blocked past its ttr (not enforced here: the
    worker is not in the main thread) and a loop that does not move stop the beats."""
    import threading
    import time

    from queue_core import heartbeat as module
    from tests.support.jobs import WaitFor
    from tests.support.procs import wait_for

    monkeypatch.setattr(module, "STALL_MIN", 0.3)
    monkeypatch.setattr(module, "HUNG_GRACE", 0.2)
    queue = create_queue({"driver": f"memory://{tmp_path.name}", "heartbeat": 0.1})
    gate = str(tmp_path / "gate")
    queue.push(WaitFor(gate, 30), ttr=0.2)
    worker = queue.worker(handle_signals=False, timeout=0.1)
    thread = threading.Thread(target=worker.listen, daemon=True)
    thread.start()
    try:
        wait_for(lambda: (w := queue.workers()) and w[0].jobs, 10, "a beat with the job")
        stuck = wait_for(lambda: (w := queue.workers()) and w[0].stopped_beating(time.time())
                         and w[0], 10, "the beats to stop")
        assert stuck.jobs  # its last beat showed the job
        open(gate, "w").close()
        wait_for(lambda: (w := queue.workers()) and not w[0].stopped_beating(time.time())
                 and w[0].done == 1, 10, "the beats to resume")
    finally:
        open(gate, "w").close()
        worker.stop()
        thread.join(10)
    assert queue.workers() == []


def test_a_running_job_is_named_from_its_decoded_job_or_its_payload() -> None:
    from tests.support.jobs import Noop

    def broken(payload: bytes) -> str:
        raise ValueError("not a payload")

    beating = Heartbeat(FakeStore(), Activity(), 1.0, lambda: (0, 0),  # type: ignore[arg-type]
                        broken)
    decoded = Message("1", b"", 1, ttr=5.0, decoded=(Noop(), {}))
    assert beating._name_of(decoded) == Noop.job_name
    assert beating._name_of(Message("2", b"\x80", 1, ttr=5.0)) == "?"


def test_a_pickled_payload_is_not_unpickled_for_its_name(tmp_path: Any) -> None:
    queue = create_queue({"driver": "memory://", "serializer": "pickle"})
    worker = queue.worker(handle_signals=False)
    worker._start_heartbeat()
    try:
        assert worker._beating is not None
        assert worker._beating._job_name(b"anything") is None
    finally:
        worker._stop_heartbeat()
