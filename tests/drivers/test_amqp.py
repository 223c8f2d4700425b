"""AMQP driver specifics: the topology (delay queues and their registry, the failed store),
the priority mapping, lost runs, prefetched jobs at a stop, connection cuts and a broker
restart, heartbeats during a long job, pushes the broker refuses or cannot route, URLs."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from queue_core.drivers.amqp import AmqpDriver, AmqpQuorumDriver, delay_ms, topology
from queue_core.drivers.amqp.connection import ProbeError, Wire
from queue_core.drivers.amqp.consumer import _AmqpConsumer

from queue_core import (
    ConfigError,
    DriverError,
    ExecEvent,
    InvalidArgumentError,
    JobNotFoundError,
    JobStatus,
    NotSupportedError,
    Queue,
    create_queue,
)
from queue_core.model import Message
from tests.support.jobs import Fail, KillWorker, Record, Sleep, count, read_lines
from tests.support.procs import ROOT, kill_group, queue_core, stop, wait_for, worker_env
from tests.support.proxy import tcp_proxy
from tests.support.run import run_until
from tests.support.specs.amqp import URL, available, delete_queues

pytestmark = pytest.mark.skipif(bool(available()), reason=str(available()))


def settings_for(url: str = URL, channel: str | None = None, **extra: Any) -> dict[str, Any]:
    driver = {"url": url, "lease_grace": 0.5}
    driver.update(extra.pop("driver", {}))
    return {"driver": driver, "channel": channel or f"t{uuid.uuid4().hex[:12]}",
            "imports": ["tests.support.jobs"], **extra}


@pytest.fixture
def settings() -> Iterator[dict[str, Any]]:
    made = settings_for()
    yield made
    delete_queues(made)


@pytest.fixture
def raw() -> Iterator[Wire]:
    """A plain connection for looking at the broker's side of things."""
    import pika
    wire = Wire(pika.URLParameters(URL), heartbeat=0, connect_timeout=5, rpc_timeout=10,
                name="test inspector").open()
    yield wire
    wire.close()


def ready(wire: Wire, queue: str) -> int | None:
    """Ready messages in ``queue``, or None when it does not exist."""
    try:
        return wire.declare(queue, {}, passive=True)[0]
    except ProbeError:
        return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- delays -------------------------------------------------------------------------


def test_delays_round_up_to_three_significant_digits() -> None:
    assert [delay_ms(d) for d in (0.0001, 0.2, 0.999, 1.2, 1.2345, 59.9991, 123.4567)] == [
        1, 200, 999, 1200, 1240, 60000, 124000]
    assert delay_ms(delay_ms(7.777) / 1000) == delay_ms(7.777) == 7780


def test_a_delayed_job_waits_in_its_delay_queue_which_expires_when_unused(
        settings: dict[str, Any], raw: Wire, journal: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(topology, "DELAY_EXPIRY_MARGIN", 1.0)
    queue = create_queue(settings)
    channel = settings["channel"]
    pushed = time.monotonic()
    queue.push(Record(journal, "late"), delay=0.5)
    assert ready(raw, f"{channel}.delay.500") == 1
    assert ready(raw, channel) == 0
    counts = queue.info()
    assert counts[JobStatus.DELAYED] == 1 and counts[JobStatus.WAITING] == 0
    assert JobStatus.RESERVED not in counts
    run_until(queue, lambda: read_lines(journal), timeout=10)
    assert time.monotonic() - pushed >= 0.5
    # The queue lives on for its ttl plus the margin after its last declare (a passive
    # one, as info() and ready() make, counts too), then goes, and its record with it.
    time.sleep(0.5 + 1.0 + 1.0)
    assert ready(raw, f"{channel}.delay.500") is None
    assert queue.info()[JobStatus.DELAYED] == 0
    assert ready(raw, f"{channel}.delays") == 0


def test_clear_empties_delay_queues_another_process_made(settings: dict[str, Any], raw: Wire,
                                                          journal: str) -> None:
    pusher = create_queue(settings)
    pusher.push(Record(journal, "a"), delay=0.7)
    pusher.push(Record(journal, "b"), delay=30)
    pusher.push_many([Record(journal, "c")], delay=0.7)
    other = create_queue(settings)  # knows nothing of the delay queues but the registry
    assert other.info()[JobStatus.DELAYED] == 3
    other.clear()
    assert ready(raw, f"{settings['channel']}.delay.700") == 0
    assert other.info()[JobStatus.DELAYED] == 0
    time.sleep(1.0)
    assert other.run() == 0
    assert read_lines(journal) == []


# -- failed store and manual retry ----------------------------------------------------


def test_the_failed_store_keeps_the_reason_and_retry_sends_the_job_back(
        settings: dict[str, Any], raw: Wire, journal: str) -> None:
    queue = create_queue({**settings, "attempts": 2})
    done: list[ExecEvent] = []
    queue.on(Queue.EVENT_AFTER_EXEC, done.append)
    job_id = queue.push(Fail(journal, "f", times=2), priority=3)
    assert job_id is not None
    run_until(queue, lambda: count(journal, "f") == 2)
    queue.run()
    failed_queue = f"{settings['channel']}.failed"
    assert ready(raw, failed_queue) == 1
    record = raw.get(failed_queue)
    assert record is not None
    raw.requeue(record.tag)
    assert record.message_id == job_id
    assert record.priority == 5 - 3  # AMQP: higher first
    assert record.headers["qc-attempt"] == 2
    assert record.headers["qc-error-type"] == "RuntimeError"
    assert record.headers["qc-error"] == "f failed on run 2"
    assert "Traceback" in record.headers["qc-traceback"]
    [info] = queue.failed()
    assert (info.id, info.status, info.attempt, info.priority) == (job_id, JobStatus.FAILED, 2, 3)
    assert info.error is not None and info.error.message == "f failed on run 2"
    assert info.job_name == "tests.support.jobs.Fail" and info.finished_at is not None
    assert queue.info()[JobStatus.FAILED] == 1

    queue.retry(job_id)
    assert ready(raw, failed_queue) == 0
    run_until(queue, lambda: done)
    assert [(e.id, e.attempt) for e in done] == [(job_id, 3)]  # attempts go on from 2
    with pytest.raises(JobNotFoundError):
        queue.retry(job_id)
    # The core refuses what the capabilities leave out; the driver refuses on its own too.
    with pytest.raises(NotSupportedError, match="does not support listing waiting jobs"):
        queue.jobs("waiting")
    with pytest.raises(NotSupportedError, match="only list failed jobs"):
        queue.driver.jobs(JobStatus.WAITING)


def test_retry_with_reset_attempts_and_of_one_among_many(settings: dict[str, Any],
                                                         journal: str) -> None:
    queue = create_queue(settings)
    seen: list[ExecEvent] = []
    queue.on(Queue.EVENT_BEFORE_EXEC, seen.append)
    ids = [queue.push(Fail(journal, f"f{index}", times=1)) for index in range(3)]
    run_until(queue, lambda: len(read_lines(journal)) == 3)
    queue.retry(ids[1], reset_attempts=True)
    run_until(queue, lambda: len(read_lines(journal)) == 4)
    assert [(e.id, e.attempt) for e in seen][-1] == (ids[1], 1)
    assert sorted(info.id for info in queue.failed()) == sorted([ids[0], ids[2]])


# -- priorities ----------------------------------------------------------------------


def test_priorities_map_onto_x_max_priority_lower_first(settings: dict[str, Any],
                                                        journal: str) -> None:
    queue = create_queue(settings)
    assert queue.capabilities.priority_range == (0, 5)
    for tag, priority in (("none", None), ("five", 5), ("zero", 0), ("three", 3)):
        queue.push(Record(journal, tag), priority=priority)
    run_until(queue, lambda: len(read_lines(journal)) == 4)
    # No priority is the lowest, 5, and ties keep push order.
    assert read_lines(journal) == ["zero", "three", "none", "five"]
    with pytest.raises(InvalidArgumentError, match="0 to 5"):
        queue.push(Record(journal, "x"), priority=6)


def test_quorum_queues_have_their_own_driver_without_priorities(journal: str) -> None:
    settings = settings_for(driver={"queue_type": "quorum"})
    try:
        queue = create_queue(settings)
        assert isinstance(queue.driver, AmqpQuorumDriver)
        assert queue.driver.name == "amqp-quorum" and not queue.capabilities.priority
        with pytest.raises(NotSupportedError, match="amqp-quorum driver does not support"):
            queue.push(Record(journal, "x"), priority=1)
        queue.push(Record(journal, "a"))
        run_until(queue, lambda: read_lines(journal))
    finally:
        delete_queues(settings)
    with pytest.raises(ConfigError, match="queue_type"):
        AmqpDriver(URL, queue_type="stream")


# -- lost runs ------------------------------------------------------------------------


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_a_delivery_whose_consumer_died_counts_as_a_lost_run(queue_type: str, raw: Wire,
                                                             journal: str) -> None:
    import pika
    settings = settings_for(driver={"queue_type": queue_type}, attempts=2)
    try:
        queue = create_queue(settings)
        errors: list[ExecEvent] = []
        done: list[ExecEvent] = []
        queue.on(Queue.EVENT_AFTER_ERROR, errors.append)
        queue.on(Queue.EVENT_AFTER_EXEC, done.append)
        job_id = queue.push(Record(journal, "a"))
        # A consumer takes the message and its connection dies without an ack.
        victim = Wire(pika.URLParameters(URL), heartbeat=0, connect_timeout=5,
                      rpc_timeout=10, name="test victim").open()
        assert victim.get(settings["channel"]) is not None
        victim.close()
        run_until(queue, lambda: done)
        assert [(e.id, e.attempt, type(e.error).__name__) for e in errors] == [
            (job_id, 1, "WorkerLostError")]
        assert [(e.id, e.attempt) for e in done] == [(job_id, 2)]
    finally:
        delete_queues(settings)


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_the_prefetch_follows_the_jobs_without_a_channel_wide_qos(
        queue_type: str, journal: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # RabbitMQ 4.3 closes the channel of a basic.qos with global=true: a change of
    # prefetch must start a new consumer instead.
    import pika
    sent: list[Any] = []
    call = Wire.call

    def spy(wire: Wire, method: Any, channel: int = 1) -> Any:
        if isinstance(method, pika.spec.Basic.Qos):
            sent.append(method)
        return call(wire, method, channel)
    monkeypatch.setattr(Wire, "call", spy)
    settings = settings_for(driver={"queue_type": queue_type})
    try:
        queue = create_queue(settings)
        queue.push_many([Record(journal, f"a{index}") for index in range(60)])
        # Slow against the core's fetch-ahead (FETCH_AHEAD): still counted in the running
        # average when quick jobs fetched in the same batch have run after them.
        queue.push_many([Sleep(journal, f"s{index}", 0.05) for index in range(5)])
        queue.push_many([Record(journal, f"b{index}") for index in range(60)])
        assert queue.listen(timeout=0.2, max_jobs=125) == 0
        assert len({line for line in read_lines(journal) if not line.startswith("start")}
                   - {f"end s{index}" for index in range(5)}) == 120
        assert [method.global_qos for method in sent] == [False] * len(sent)
        # One until the core has timed a job; then the count the core asks for, from the
        # durations it measures (a batch at a time, so the exact counts depend on the
        # machine): more for the quick jobs, fewer after the slow ones, more again after
        # the quick ones that follow.
        counts = [method.prefetch_count for method in sent]
        assert counts[0] == 1 and counts[1] > 1, counts
        drop = next(index for index in range(2, len(counts))
                    if counts[index] < counts[index - 1])
        assert any(counts[index] > counts[index - 1]
                   for index in range(drop + 1, len(counts))), counts
    finally:
        delete_queues(settings)


def test_a_quorum_redelivery_the_broker_did_not_count_is_counted_by_a_copy() -> None:
    # RabbitMQ 4.3 no longer counts the return of a dead consumer's messages in
    # x-delivery-count; the flag alone must still count a run.
    from queue_core.drivers.amqp.connection import Delivery
    consumer = AmqpQuorumDriver(URL, channel="unused").open_consumer()
    assert isinstance(consumer, _AmqpConsumer)
    uncounted = Delivery(7, True, "unused")
    assert consumer._counted(uncounted) is None
    counted = Delivery(8, True, "unused")
    counted.headers = {"x-delivery-count": 1}
    runs = consumer._counted(counted)
    assert runs is not None and (runs.counted, runs.lost, runs.unproven) == (1, True, True)


@pytest.mark.parametrize(("attempts", "runs"), [(1, 2), (2, 2), (3, 3)])
def test_a_job_that_kills_every_worker_ends_in_the_failed_store(
        settings: dict[str, Any], journal: str, attempts: int, runs: int) -> None:
    # A job's first loss is unproven (it may only have been prefetched), so it never ends
    # the job: with attempts=1 the job runs once more before its second loss fails it.
    settings = {**settings, "attempts": attempts}
    queue = create_queue(settings)
    job_id = queue.push(KillWorker(journal, "kill"))
    for _ in range(runs + 2):  # more workers than runs: the last ones must not run it
        worker = queue_core(settings, "listen", "--timeout", "0.2")
        try:
            worker.wait(timeout=5)  # killed by the job, or idle until we look
        except subprocess.TimeoutExpired:
            pass
        finally:
            kill_group(worker)
    assert count(journal, "start kill") == runs
    [info] = queue.failed()
    assert (info.id, info.attempt) == (job_id, runs + 1)  # the runs, then the judgement
    assert info.error is not None and info.error.type == "queue_core.errors.WorkerLostError"
    assert queue.info()[JobStatus.WAITING] == 0


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_jobs_prefetched_by_a_killed_worker_are_not_failed(queue_type: str, journal: str,
                                                           tmp_path: Path) -> None:
    # attempts=1: a prefetched job charged with a lost run that ended it would fail
    # without ever having run. The broker hands back every job the dead worker held,
    # alike; each of them runs again, the one that was running included.
    settings = settings_for(driver={"queue_type": queue_type}, attempts=1)
    queue = create_queue(settings)
    log = tmp_path / "exec.log"
    try:
        held_at_kills = []
        for round_ in range(3):
            tags = {f"r{round_}j{index}" for index in range(3000)}
            queue.push_many([Record(journal, tag) for tag in sorted(tags)])
            worker = queue_core(settings, "listen", "--timeout", "0.2", exec_log=log,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for(lambda tags=tags: len(tags.intersection(read_lines(journal))) >= 1000,
                     60, "1000 jobs")
            kill_group(worker)
            before = len(read_lines(str(log)))
            drainer = queue_core(settings, "listen", "--timeout", "0.2", exec_log=log)
            try:
                wait_for(lambda tags=tags: tags <= set(read_lines(journal)), 60, "every job")
                time.sleep(0.3)
                code, _, err = stop(drainer)
            finally:
                kill_group(drainer)
            assert code == 0, err
            assert queue.failed() == []
            # The jobs the dead worker held run again as attempt 2.
            held_at_kills.append(sum(line.split()[2] == "2"
                                     for line in read_lines(str(log))[before:]))
            if held_at_kills[-1] > 1:
                break
        assert max(held_at_kills) > 1, held_at_kills  # some kill caught prefetched jobs
    finally:
        delete_queues(settings)


def test_jobs_prefetched_at_a_graceful_stop_come_back_uncounted(settings: dict[str, Any],
                                                                journal: str,
                                                                tmp_path: Path) -> None:
    queue = create_queue(settings)
    queue.push_many([Record(journal, f"j{index}") for index in range(300)])
    log = tmp_path / "exec.log"
    first = queue_core(settings, "listen", "--timeout", "0.2", "--max-jobs", "100",
                       exec_log=log)
    try:
        _, err = first.communicate(timeout=60)  # it stops by itself after 100 jobs
    finally:
        kill_group(first)
    assert first.returncode == 0, err
    assert len(read_lines(journal)) == 100
    second = queue_core(settings, "listen", "--timeout", "0.2", exec_log=log)
    try:
        wait_for(lambda: len(read_lines(journal)) >= 300, 60, "300 jobs")
        time.sleep(0.3)
        code, _, err = stop(second)
    finally:
        kill_group(second)
    assert code == 0, err
    assert Counter(read_lines(journal)) == Counter(f"j{index}" for index in range(300))
    attempts = Counter(line.split()[2] for line in read_lines(str(log)))
    assert attempts == {"1": 300}


def test_each_consumer_holds_several_jobs_on_its_own_connection(settings: dict[str, Any],
                                                                journal: str) -> None:
    queue = create_queue(settings)
    ids = queue.push_many([Record(journal, f"j{index}") for index in range(3)])
    first, second = queue.driver.open_consumer(), queue.driver.open_consumer()
    try:
        held: list[Message] = []
        while len(held) < 2:  # several reservations held at once
            got = first.fetch(2 - len(held), 5.0)
            assert got
            held += got
        assert [message.id for message in held] == ids[:2]
        [other] = second.fetch(1, 5.0)
        assert other.id == ids[2]
        assert held[0].handle.wire is not other.handle.wire  # a connection each
        # Settled in any order, each by the consumer that holds it.
        for consumer, message in ((second, other), (first, held[1]), (first, held[0])):
            assert consumer.begin(message)
            consumer.ack(message)
    finally:
        first.close()
        second.close()
    assert queue.run() == 0
    assert queue.info()[JobStatus.WAITING] == 0


def test_jobs_fetched_and_not_begun_are_given_back_uncounted(settings: dict[str, Any],
                                                             journal: str) -> None:
    queue = create_queue(settings)
    seen: list[ExecEvent] = []
    queue.on(Queue.EVENT_BEFORE_EXEC, seen.append)
    queue.push_many([Record(journal, f"j{index}") for index in range(3)])
    consumer = queue.driver.open_consumer()
    fetched: list[Message] = []
    while len(fetched) < 3:
        got = consumer.fetch(3 - len(fetched), 5.0)
        assert got
        fetched += got
    consumer.give_back(fetched)  # the worker stops before it begins them
    consumer.close()
    assert queue.run() == 3
    assert sorted((event.job.tag, event.attempt) for event in seen) == [
        ("j0", 1), ("j1", 1), ("j2", 1)]


def test_a_long_job_keeps_its_connection_through_heartbeats(journal: str,
                                                            tmp_path: Path) -> None:
    # heartbeat=1: the broker gives up on a silent connection after about 2 s.
    settings = settings_for(url=f"{URL}?heartbeat=1")
    try:
        queue = create_queue(settings)
        queue.push(Sleep(journal, "s", 4), ttr=30)
        log = tmp_path / "exec.log"
        worker = queue_core(settings, "listen", "--timeout", "0.2", exec_log=log)
        try:
            wait_for(lambda: "end s" in read_lines(journal), 30, "the job to end")
            time.sleep(1.5)  # a redelivery would have started by now
            code, _, err = stop(worker)
        finally:
            kill_group(worker)
        assert code == 0, err
        assert read_lines(journal) == ["start s", "end s"]
        assert [line.split()[2] for line in read_lines(str(log))] == ["1"]
        assert "lost" not in err and "cannot reach" not in err, err
    finally:
        delete_queues(settings)


# -- outages ------------------------------------------------------------------------


def test_a_worker_goes_on_through_connection_cuts(journal: str) -> None:
    with tcp_proxy("127.0.0.1", 5672) as proxy:
        settings = settings_for(url=f"amqp://guest:guest@{proxy.address}/%2F", attempts=3)
        try:
            queue = create_queue(settings)
            for index in range(60):
                queue.push(Sleep(journal, f"s{index}", 0.03))
            worker = queue_core(settings, "listen", "--timeout", "0.2")
            ends = lambda: {line for line in read_lines(journal) if line.startswith("end")}  # noqa: E731
            try:
                wait_for(lambda: len(ends()) >= 10, 30, "10 jobs")
                assert proxy.cut() >= 1
                wait_for(lambda: len(ends()) >= 25, 30, "25 jobs")
                proxy.down()
                time.sleep(1.5)
                assert worker.poll() is None
                proxy.up()
                wait_for(lambda: ends() == {f"end s{index}" for index in range(60)}, 60,
                         "every job")
                code, _, err = stop(worker)
            finally:
                kill_group(worker)
            assert code == 0, err
            assert "cannot reach" in err and "reachable again" in err
        finally:
            delete_queues(settings)


RABBITMQCTL = shutil.which("rabbitmqctl")


@pytest.mark.skipif(RABBITMQCTL is None or os.geteuid() != 0 or "127.0.0.1" not in URL,
                    reason="restarting the broker needs rabbitmqctl, as root, on this host")
@pytest.mark.takes_server_down
def test_a_broker_restart_loses_no_job(settings: dict[str, Any], journal: str) -> None:
    assert RABBITMQCTL is not None
    queue = create_queue({**settings, "attempts": 3})
    # Jobs long enough to outlast rabbitmqctl itself, which takes seconds on a loaded
    # machine: with 50 ms jobs, every job could end before the broker went down, and the
    # worker met the outage idle and was stopped before it looked again.
    for index in range(40):
        queue.push(Sleep(journal, f"s{index}", 0.2))
    worker = queue_core({**settings, "attempts": 3}, "listen", "--timeout", "0.2")
    ends = lambda: {line for line in read_lines(journal) if line.startswith("end")}  # noqa: E731
    try:
        wait_for(lambda: len(ends()) >= 8, 30, "8 jobs")
        subprocess.run([RABBITMQCTL, "stop_app"], check=True, capture_output=True, timeout=60)
        assert len(ends()) < 40, "every job ended before the broker went down"
        time.sleep(1.0)
        assert worker.poll() is None
        subprocess.run([RABBITMQCTL, "start_app"], check=True, capture_output=True, timeout=120)
        subprocess.run([RABBITMQCTL, "await_startup"], check=True, capture_output=True,
                       timeout=120)
        wait_for(lambda: ends() == {f"end s{index}" for index in range(40)}, 90, "every job")
        code, _, err = stop(worker)
    finally:
        kill_group(worker)
        subprocess.run([RABBITMQCTL, "start_app"], capture_output=True, timeout=120)
    assert code == 0, err
    assert "cannot reach" in err and "reachable again" in err


def test_a_push_while_the_broker_is_down_raises(journal: str) -> None:
    queue = create_queue(settings_for(url=f"amqp://guest:guest@127.0.0.1:{_free_port()}/%2F"))
    with pytest.raises(DriverError, match="cannot connect"):
        queue.push(Record(journal, "x"))


def test_a_push_the_broker_refuses_raises(settings: dict[str, Any], raw: Wire, journal: str,
                                          caplog: pytest.LogCaptureFixture) -> None:
    # A queue that takes nothing: the broker answers each publish with basic.nack.
    raw.declare(settings["channel"], {"x-max-length": 0, "x-overflow": "reject-publish"})
    queue = create_queue(settings)
    with caplog.at_level(logging.WARNING, logger="queue_core.drivers.amqp"):
        with pytest.raises(DriverError, match="refused 1 message"):
            queue.push(Record(journal, "x"))
        with pytest.raises(DriverError, match="refused 3 message"):
            queue.push_many([Record(journal, f"m{index}") for index in range(3)])
    assert "inequivalent arg" in caplog.text


def test_a_push_to_a_deleted_queue_declares_it_again(settings: dict[str, Any], raw: Wire,
                                                     journal: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    queue = create_queue(settings)
    queue.push(Record(journal, "a"))
    raw.delete(settings["channel"])  # the driver still takes it for declared
    with caplog.at_level(logging.WARNING, logger="queue_core.drivers.amqp"):
        queue.push(Record(journal, "b"))  # mandatory: the broker returns it
    assert "was missing; declaring it again" in caplog.text
    raw.delete(settings["channel"])
    queue.push_many([Record(journal, "c"), Record(journal, "d")])  # declared right before
    queue.push(Record(journal, "e"), delay=0.2)
    raw.delete(f"{settings['channel']}.delay.200")
    queue.push(Record(journal, "f"), delay=0.2)
    run_until(queue, lambda: len(read_lines(journal)) == 3)
    queue.run()
    # "a", "b" and "e" went with the queues that were deleted; "f" came back from the
    # broker and was sent again after its delay queue was declared again.
    assert read_lines(journal) == ["c", "d", "f"]


# -- settings -------------------------------------------------------------------------


def test_ttr_beyond_the_consumer_timeout_is_warned(caplog: pytest.LogCaptureFixture,
                                                   journal: str) -> None:
    settings = settings_for(driver={"consumer_timeout": 60}, ttr=120)
    try:
        queue = create_queue(settings)
        with caplog.at_level(logging.WARNING, logger="queue_core.drivers.amqp"):
            queue.run()
            assert "the queue's ttr of 120s is longer than the broker's consumer timeout " \
                   "of 60s" in caplog.text
            queue.push(Record(journal, "a"), ttr=90)
            run_until(queue, lambda: read_lines(journal))
            assert "a job's ttr of 90s" in caplog.text
    finally:
        delete_queues(settings)


def test_url_forms() -> None:
    driver = AmqpDriver.from_url(
        "amqp://user:s3cret@10.0.0.5:5673/jobs?prefetch=50&consumer_timeout=600&heartbeat=10",
        channel="mail")
    assert (driver.params.host, driver.params.port, driver.params.virtual_host) == (
        "10.0.0.5", 5673, "jobs")
    assert (driver.prefetch, driver.consumer_timeout, driver.heartbeat) == (50, 600.0, 10)
    assert driver.describe() == "amqp://10.0.0.5:5673/jobs queue mail"
    assert "s3cret" not in repr(driver)
    quorum = AmqpDriver.from_url("amqps://h/%2F?queue_type=quorum")
    assert isinstance(quorum, AmqpQuorumDriver) and quorum.params.port == 5671
    assert quorum.describe() == "amqps://h:5671/%2F queue queue"
    for bad in ("amqp://h/?nonsense=1", "amqp://h/?prefetch=0", "amqp://h/?prefetch=x"):
        with pytest.raises(ConfigError):
            create_queue(bad)
    with pytest.raises(ConfigError, match="amqp:// or amqps://"):
        AmqpDriver("http://h/")


def test_queue_type_chooses_the_class_in_urls_and_the_queues_in_the_constructor() -> None:
    for url in ("amqp://h/%2F?queue_type=quorum", "amqp://h/%2F"):
        built = AmqpDriver.from_url(url, channel="mail")
        assert type(built) is (AmqpQuorumDriver if "quorum" in url else AmqpDriver)
    assert type(AmqpQuorumDriver.from_url("amqp://h/%2F?queue_type=classic")) is AmqpDriver
    # A settings dict naming the class: no other class comes back, but quorum queues,
    # with the quorum driver's name and capabilities.
    driver = AmqpDriver("amqp://h/%2F", channel="mail", queue_type="quorum")
    assert type(driver) is AmqpDriver and driver.queue_type == "quorum"
    assert driver.name == "amqp-quorum" and not driver.capabilities.priority
    assert driver.kind is topology.QUEUE_TYPES["quorum"]
    assert AmqpDriver.name == "amqp" and AmqpDriver.capabilities.priority
    with pytest.raises(ConfigError, match="queue_type 'classic' does not go with "
                                          "AmqpQuorumDriver"):
        AmqpQuorumDriver("amqp://h/%2F", queue_type="classic")


def test_the_cli_says_what_info_cannot_count(settings: dict[str, Any], journal: str) -> None:
    create_queue(settings).push(Record(journal, "a"))
    result = subprocess.run([sys.executable, "-m", "queue_core", "--app", "tests.support.app:queue",
                             "info"], cwd=ROOT, env=worker_env(settings), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "waiting   1" in result.stdout
    assert "reserved  not countable on this back end" in result.stdout
