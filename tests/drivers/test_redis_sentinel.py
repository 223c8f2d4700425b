"""Redis Sentinel: the URL forms and options, and a real failover: a master, a replica
and three Sentinels on free loopback ports; the master is SIGKILLed while a worker runs
2,000 jobs and a producer pushes, and both go on with the promoted replica. The `wait`
option, which needs a replica, is tested here too."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from queue_core import ConfigError, DriverError, JobStatus, create_queue
from queue_core.consumer import Settlement, Verdict
from tests.support.jobs import Record, Sleep, read_lines
from tests.support.procs import kill_group, queue_core, stop, wait_for
from tests.support.redis_servers import SERVICE, RedisProcess, SentinelSet, missing_binaries

logger = logging.getLogger(__name__)


def _driver(url: str, **options: Any) -> Any:
    from queue_core.drivers.redis import RedisDriver
    return RedisDriver.from_url(url, **options)


def test_sentinel_url_forms() -> None:
    driver = _driver("redis+sentinel://user:s3cret@127.0.0.1:26379,127.0.0.1:26380/mymaster/2"
                     "?socket_timeout=3&sentinel_password=other")
    client = driver._connector.client
    pool = client.connection_pool
    assert driver._connector.kind == "sentinel"
    assert pool.service_name == "mymaster"
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["password"] == "s3cret"
    assert pool.connection_kwargs["socket_timeout"] == 3.0
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [26379, 26380]
    assert sentinels[0].connection_pool.connection_kwargs["password"] == "other"
    assert "s3cret" not in driver.describe()
    by_options = _driver("redis://:pw@/1", sentinels=[["127.0.0.1", 26379], "127.0.0.1:26381"],
                         service_name="other")
    pool = by_options._connector.client.connection_pool
    assert pool.service_name == "other" and pool.connection_kwargs["db"] == 1
    assert [s.connection_pool.connection_kwargs["port"]
            for s in pool.sentinel_manager.sentinels] == [26379, 26381]
    assert create_queue("redis+sentinel://127.0.0.1:26379/m").driver.name == "redis"
    tls = _driver("rediss+sentinel://127.0.0.1:26379/m")._connector.client.connection_pool
    assert tls.connection_class.__name__ == "SentinelManagedSSLConnection"


@pytest.mark.parametrize(("url", "options", "key", "says"), [
    ("redis+sentinel://127.0.0.1:26379", {}, "driver.service_name", "name of the master set"),
    ("redis+sentinel://127.0.0.1:26379/m/x", {}, "driver", "database 'x' is not a number"),
    ("redis+sentinel://127.0.0.1:port/m", {}, "driver", "is not host:port"),
    ("redis+sentinel://127.0.0.1:26379/m?colour=blue", {},
     "driver.colour", "'colour' is not known"),
    ("redis+sentinel://127.0.0.1:26379/m", {"sentinels": [["h", 1]]},
     "driver.sentinels", "named twice"),
    ("redis://127.0.0.1:6379/0", {"service_name": "m"}, "driver.sentinels", "needs sentinels"),
    ("redis://127.0.0.1:6379/0", {"sentinels": "h:1", "service_name": "m"},
     "driver.sentinels", "non-empty list"),
    ("redis://127.0.0.1:6379/0", {"sentinels": [["h", 0]], "service_name": "m"},
     "driver.sentinels", "is not a [host, port] pair"),
    ("redis://127.0.0.1:6379/0", {"sentinels": [["h", 1]]},
     "driver.service_name", "name of the master set"),
    ("redis://127.0.0.1:6379/0", {"sentinel_password": "x"},
     "driver.sentinel_password", "applies to Sentinel only"),
    ("redis+sentinel://127.0.0.1:26379/m", {"cluster": True},
     "driver.cluster", "cannot be combined"),
    ("redis+sentinel://127.0.0.1:26379/m?wait=-1", {}, "driver.wait", "wait must be"),
    ("redis://127.0.0.1:6379/0?wait=two", {}, "driver.wait", "is not a number"),
    ("redis://127.0.0.1:6379/0", {"wait": True}, "driver.wait", "wait must be"),
    ("redis://127.0.0.1:6379/0", {"wait": 1.5}, "driver.wait", "wait must be"),
    ("redis://127.0.0.1:6379/0", {"wait": 1, "wait_timeout": 0},
     "driver.wait_timeout", "wait_timeout must be"),
    ("redis://127.0.0.1:6379/0?wait=1&wait_timeout=nan", {},
     "driver.wait_timeout", "wait_timeout must be"),
    ("redis+weird://127.0.0.1:6379/0", {}, "driver", "unknown form"),
])
def test_bad_sentinel_and_wait_settings_are_refused_naming_the_key(
        url: str, options: dict[str, Any], key: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _driver(url, **options)
    assert caught.value.key == key, caught.value
    assert says in str(caught.value)


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    problem = missing_binaries()
    if problem:
        pytest.fail(problem)
    made = SentinelSet(tmp_path / "sentinel")
    try:
        made.start()
        yield made
    finally:
        made.stop()


def _settings(url: str, **extra: Any) -> dict[str, Any]:
    driver = {"url": url, "lease_grace": 0.5, "prefetch_lease": 3, "warn_persistence": False}
    driver.update(extra.pop("driver", {}))
    return {"driver": driver, "channel": f"t{uuid.uuid4().hex[:12]}",
            "imports": ["tests.support.jobs"], **extra}


class Producer(threading.Thread):
    """Pushes one job at a time until stopped; each push either returns an id or raises
    DriverError, and nothing else."""

    def __init__(self, settings: dict[str, Any], journal: str) -> None:
        super().__init__(daemon=True)
        self.queue = create_queue(settings)
        self.journal = journal
        self.ids: list[str] = []
        self.tags: list[str] = []
        self.errors = 0
        self.other: list[BaseException] = []
        self.halt = threading.Event()

    def run(self) -> None:
        index = 0
        while not self.halt.is_set():
            index += 1
            try:
                job_id = self.queue.push(Sleep(self.journal, f"p{index}", 0.0))
            except DriverError:
                self.errors += 1
                time.sleep(0.05)
                continue
            except BaseException as exc:
                self.other.append(exc)
                return
            assert job_id is not None
            self.ids.append(job_id)
            self.tags.append(f"p{index}")
            time.sleep(0.01)


def _failover_run(sentinel_set: SentinelSet, journal: str, wait: int,
                  forced: bool = False) -> dict[str, int]:
    """2,000 jobs and a producer; the master SIGKILLed while the worker runs (or, with
    ``forced``, demoted by SENTINEL FAILOVER and left running). Returns the counts the
    test checks and reports."""
    settings = _settings(sentinel_set.url, ttr=10, attempts=5, keep_completed=True,
                         driver={"wait": wait, "wait_timeout": 0.5})
    queue = create_queue(settings)
    total = 2000
    tags = [f"j{index}" for index in range(total)]
    ids = queue.push_many([Sleep(journal, tag, 0.002) for tag in tags])
    wait_for(sentinel_set.replica_caught_up, 10, "the replica to have every push")
    old_master = sentinel_set.master.port
    worker = queue_core(settings, "listen", "--timeout", "0.2", stdout=subprocess.DEVNULL)
    producer = Producer(settings, journal)
    producer.start()

    def ends() -> Counter[str]:
        return Counter(line[4:] for line in read_lines(journal) if line.startswith("end "))
    try:
        wait_for(lambda: len(ends()) >= 400, 60, "the worker to run 400 jobs")
        if forced:
            sentinel = redis.Redis(port=sentinel_set.sentinels[0].port)
            sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)
        else:
            sentinel_set.master.kill()
        killed = time.monotonic()
        done_at_kill = len(ends())
        pushed_at_kill = len(producer.ids)
        wait_for(lambda: sentinel_set.master_port() not in (None, old_master), 30,
                 "the Sentinels to promote the replica", every=0.1)
        promoted = time.monotonic() - killed
        if not forced:
            # The old master comes back, as an operator would bring it, and the Sentinels
            # make it a replica of the new one: without any replica, every write with
            # `wait` on would wait its whole wait_timeout.
            sentinel_set.master.start()
        wait_for(lambda: len(ends()) > done_at_kill + 50, 60,
                 "the worker to run jobs on the promoted replica")
        wait_for(lambda: len(producer.ids) > pushed_at_kill, 60,
                 "a push to succeed after the failover")
        producer.halt.set()
        producer.join(10)

        def settled() -> bool:
            # Every job ran, or (a lost job is never run) nothing is left to run.
            counts = queue.info()
            return (set(tags) <= set(ends()) and set(producer.tags) <= set(ends())) or (
                counts[JobStatus.WAITING] + counts[JobStatus.RESERVED]
                + counts[JobStatus.DELAYED] == 0)
        wait_for(settled, 120, "every job to run", every=0.2)
        code, _, err = stop(worker)
    finally:
        producer.halt.set()
        kill_group(worker)
    assert code == 0, err
    assert not producer.other, producer.other
    assert forced or "reachable again" in err, err
    counted = ends()
    # A new driver, so the counts come from the master the Sentinels name now.
    states = Counter(create_queue(settings).driver.status(job_id) for job_id in ids)
    result = {
        "lost": sum(1 for tag in tags if counted[tag] == 0),
        "twice": sum(1 for tag in tags if counted[tag] > 1),
        "done": states[JobStatus.DONE],
        "failed": states[JobStatus.FAILED],
        "pushes_ok": len(producer.ids),
        "pushes_failed": producer.errors,
        "pushes_lost": sum(1 for tag in producer.tags if counted[tag] == 0),
        "promoted_after_s": round(promoted),
    }
    logger.info("%s failover with wait=%d: %s", "forced" if forced else "master killed,",
                wait, result)
    after = queue.push(Record(journal, "after"))
    assert after is not None and queue.status(after) is JobStatus.WAITING
    return result


@pytest.mark.slow
def test_a_worker_and_a_producer_survive_the_masters_death(sentinel_set: SentinelSet,
                                                           journal: str) -> None:
    result = _failover_run(sentinel_set, journal, wait=0)
    # Every push was on the replica before the kill, so none may be lost; an ack the old
    # master took but did not pass on runs its job again.
    assert result["lost"] == 0, result
    assert result["done"] == 2000 and result["failed"] == 0, result
    assert result["twice"] <= 100, result
    assert result["pushes_ok"] > 0, result


@pytest.mark.slow
@pytest.mark.parametrize("wait", [0, 1])
def test_a_worker_and_a_producer_move_to_the_new_master_when_the_old_one_lives_on(
        sentinel_set: SentinelSet, journal: str, wait: int) -> None:
    """SENTINEL FAILOVER: the replica is promoted while the old master keeps running and
    taking writes until the Sentinels demote it (seconds later), when it drops them. The
    driver asks the Sentinels every second and moves; what it wrote to the old master in
    between is undone: acks (their jobs run again) and pushes (lost, unless `wait`)."""
    result = _failover_run(sentinel_set, journal, wait=wait, forced=True)
    assert result["lost"] == 0, result  # replicated before the failover
    assert result["done"] == 2000 and result["failed"] == 0, result
    assert result["pushes_ok"] > 0, result
    if wait:
        # The old master lost its replica at the promotion: WAIT says so, and pushes
        # there raise instead of being acknowledged and then dropped.
        assert result["pushes_lost"] == 0, result


@pytest.mark.slow
def test_with_wait_a_failover_undoes_no_acknowledged_ack(sentinel_set: SentinelSet,
                                                         journal: str) -> None:
    result = _failover_run(sentinel_set, journal, wait=1)
    assert result["lost"] == 0, result
    assert result["done"] == 2000 and result["failed"] == 0, result
    # Acks confirmed by WAIT survive; only those still unconfirmed when the master died
    # (the ones sent since the worker last read its replies) can run again.
    assert result["twice"] <= 40, result


def test_wait_confirms_pushes_on_a_replica_and_fails_loudly_without_one(
        sentinel_set: SentinelSet, journal: str) -> None:
    queue = create_queue(_settings(sentinel_set.url, driver={"wait": 1}))
    job_id = queue.push(Record(journal, "a"))
    assert job_id is not None
    replica = redis.Redis(port=sentinel_set.replica.port)
    assert replica.exists(f"qc:{{{queue.driver.channel}}}:j:{job_id}")  # WAIT saw it there
    sentinel_set.replica.kill()
    started = time.monotonic()
    with pytest.raises(DriverError, match=r"reached 0 of the 1 replicas asked for \(wait\)"):
        create_queue(_settings(sentinel_set.url, driver={"wait": 1, "wait_timeout": 0.3})
                     ).push(Record(journal, "b"))
    assert 0.25 < time.monotonic() - started < 3


@pytest.mark.slow
@pytest.mark.parametrize("wait", [0, 1])
def test_pushes_a_lagging_replica_missed_are_lost_in_a_failover_unless_wait(
        sentinel_set: SentinelSet, journal: str, wait: int) -> None:
    """Asynchronous replication at work: the replica falls behind (its link cut and the
    replica stopped, as in a network blip), pushes go on, the master dies, and the replica
    is promoted. Without
    `wait` the master acknowledged pushes that no longer exist; with it, those pushes
    raised DriverError instead of returning an id."""
    settings = _settings(sentinel_set.url, driver={"wait": wait, "wait_timeout": 0.3})
    queue = create_queue(settings)
    before = [queue.push(Record(journal, f"b{index}")) for index in range(5)]
    wait_for(sentinel_set.replica_caught_up, 10, "the replica to have every push")
    replica = sentinel_set.replica.process
    assert replica is not None
    os.kill(replica.pid, signal.SIGSTOP)
    try:
        redis.Redis(port=sentinel_set.master.port).client_kill_filter(_type="replica")
        acknowledged, refused = [], 0
        for index in range(10):
            try:
                acknowledged.append(queue.push(Record(journal, f"s{index}")))
            except DriverError:
                refused += 1
        old_master = sentinel_set.master.port
        sentinel_set.master.kill()
    finally:
        os.kill(replica.pid, signal.SIGCONT)
    wait_for(lambda: sentinel_set.master_port() == sentinel_set.replica.port, 30,
             "the Sentinels to promote the replica", every=0.1)
    assert sentinel_set.master_port() != old_master
    after = create_queue(settings)
    wait_for(lambda: _answers(after), 20, "the new master to answer")
    # Looked up before any new push: the promoted replica's id counter is behind too, so
    # new pushes take the ids of the lost ones.
    lost = [job_id for job_id in acknowledged if after.driver.status(str(job_id)) is None]
    logger.info("stalled replica, wait=%d: %d pushes acknowledged, %d refused, %d of the "
                "acknowledged lost", wait, len(acknowledged), refused, len(lost))
    assert all(after.driver.status(str(job_id)) is JobStatus.WAITING for job_id in before)
    # No replica is left, so only a push without `wait` can be acknowledged now.
    plain = create_queue({**settings, "driver": {**settings["driver"], "wait": 0}})
    assert plain.push(Record(journal, "after")) is not None
    if wait:
        assert (acknowledged, refused) == ([], 10)
    else:
        assert (len(acknowledged), refused, len(lost)) == (10, 0, 10)


def _answers(queue: Any) -> bool:
    try:
        queue.info()
        return True
    except DriverError:
        return False


def test_a_demoted_master_answering_readonly_drops_the_connection_and_keeps_the_ack(
        tmp_path: Path, journal: str) -> None:
    """A master turned into a replica under a connected worker answers its scripts with
    READONLY: nothing ran, so the worker reconnects (with Sentinel: to the new master) and
    sends the owed ack again."""
    problem = missing_binaries()
    if problem:
        pytest.fail(problem)
    first = RedisProcess(tmp_path / "a", "--repl-diskless-sync-delay", "0")
    second = RedisProcess(tmp_path / "b", "--repl-diskless-sync-delay", "0")
    first.start()
    second.start()
    try:
        queue = create_queue(_settings(f"redis://127.0.0.1:{first.port}/0"))
        driver = queue.driver
        consumer = driver.open_consumer()
        ids = queue.push_many([Record(journal, f"j{index}") for index in range(2)])
        (message,) = consumer.fetch(1, 0)
        assert message.id == ids[0]
        consumer.begin(message)
        owed = [Settlement(Verdict.ACK, message, keep=True)]  # sent with the next reserve
        a, b = redis.Redis(port=first.port), redis.Redis(port=second.port)
        b.replicaof("127.0.0.1", first.port)
        wait_for(lambda: b.info("replication")["master_link_status"] == "up", 10, "sync")
        b.replicaof("NO", "ONE")
        a.replicaof("127.0.0.1", second.port)  # demoted, its clients still connected
        wait_for(lambda: a.info("replication")["master_link_status"] == "up", 10, "sync")
        with pytest.raises(DriverError, match="ReadOnlyError"):
            consumer.fetch(1, 0, owed)
        a.replicaof("NO", "ONE")
        # The driver itself sends the ack again (its caller does not).
        (following,) = consumer.fetch(1, 0)
        assert following.id == ids[1]
        assert driver.status(ids[0]) is JobStatus.DONE
    finally:
        first.kill()
        second.kill()


def test_a_worker_with_wait_and_too_few_replicas_warns_once_and_goes_on(
        tmp_path: Path, journal: str, caplog: pytest.LogCaptureFixture) -> None:
    problem = missing_binaries()
    if problem:
        pytest.fail(problem)
    alone = RedisProcess(tmp_path / "alone")
    alone.start()
    try:
        settings = _settings(f"redis://127.0.0.1:{alone.port}/0", keep_completed=True)
        ids = create_queue(settings).push_many([Record(journal, f"j{index}")
                                                for index in range(5)])
        waiting = create_queue({**settings, "driver": {**settings["driver"], "wait": 1,
                                                       "wait_timeout": 0.05}})
        while waiting.run():
            pass
        assert read_lines(journal) == [f"j{index}" for index in range(5)]
        assert [waiting.status(job_id) for job_id in ids] == [JobStatus.DONE] * 5
        warned = [record.getMessage() for record in caplog.records
                  if "replicas asked for (wait)" in record.getMessage()]
        assert len(warned) == 1 and "reached 0 of the 1" in warned[0], warned
    finally:
        alone.kill()


def test_a_master_short_of_replicas_refuses_writes_and_nothing_owed_is_lost(
        tmp_path: Path, journal: str) -> None:
    """min-replicas-to-write: NOREPLICAS means the script did not run. A push raises
    DriverError; a worker keeps its owed ack and sends it when writes are taken again."""
    problem = missing_binaries()
    if problem:
        pytest.fail(problem)
    alone = RedisProcess(tmp_path / "alone")
    alone.start()
    try:
        client = redis.Redis(port=alone.port)
        queue = create_queue(_settings(f"redis://127.0.0.1:{alone.port}/0"))
        driver = queue.driver
        consumer = driver.open_consumer()
        ids = queue.push_many([Record(journal, f"j{index}") for index in range(2)])
        (message,) = consumer.fetch(1, 0)
        assert message.id == ids[0]
        consumer.begin(message)
        owed = [Settlement(Verdict.ACK, message, keep=True)]
        client.config_set("min-replicas-to-write", 1)
        with pytest.raises(DriverError, match="NOREPLICAS"):
            consumer.fetch(1, 0, owed)
        with pytest.raises(DriverError, match="short of replicas"):
            queue.push(Record(journal, "refused"))
        client.config_set("min-replicas-to-write", 0)
        (following,) = consumer.fetch(1, 0)  # the driver sends the ack again itself
        assert following.id == ids[1]
        assert driver.status(ids[0]) is JobStatus.DONE
        assert queue.info()[JobStatus.WAITING] == 0  # the refused push wrote nothing
    finally:
        alone.kill()
