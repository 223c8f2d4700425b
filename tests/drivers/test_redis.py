"""Redis driver specifics: crash windows, a server restart, blocking waits, URLs, keys,
damaged job hashes, the persistence warning."""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from queue_core import ConfigError, DriverError, JobStatus, create_queue
from queue_core.consumer import Settlement, Verdict
from tests.support.jobs import Record, Sleep, read_lines
from tests.support.procs import kill_group, queue_core, stop, wait_for
from tests.support.specs.redis import URL, available

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(bool(available()), reason=str(available()))


def redis_settings(channel: str | None = None, url: str = URL, **extra: Any) -> dict[str, Any]:
    return {"driver": {"url": url, "lease_grace": 0.5, "prefetch_lease": 3},
            "channel": channel or f"t{uuid.uuid4().hex[:12]}",
            "imports": ["tests.support.jobs"], **extra}


@pytest.fixture
def settings() -> Iterator[dict[str, Any]]:
    made = redis_settings()
    yield made
    create_queue(made).clear()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A throwaway redis-server that keeps its data across restarts (AOF), or, with
    ``aof=False``, keeps nothing on disk; ``extra`` are more server arguments."""

    def __init__(self, directory: Path, *, aof: bool = True, extra: tuple[str, ...] = ()) -> None:
        self.port = _free_port()
        self.directory = directory
        self.aof = aof
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.aof else "no", "--appendfsync", "always",
             "--dir", str(self.directory), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: _pings(client), 10, "redis-server to start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts throwaway servers (``Server`` arguments), each killed at the end."""
    if REDIS_SERVER is None:
        pytest.fail("redis-server is not on PATH (apt-get install redis-server)")
    made: list[Server] = []

    def start(**options: Any) -> Server:
        directory = tmp_path / f"server{len(made)}"
        directory.mkdir()
        made.append(Server(directory, **options))
        made[-1].start()
        return made[-1]
    yield start
    for each in made:
        each.kill()


@pytest.fixture
def server(servers: Callable[..., Server]) -> Server:
    return servers()


def test_a_worker_killed_at_random_points_loses_nothing(settings: dict[str, Any],
                                                        journal: str) -> None:
    settings.update(ttr=1, attempts=100)
    queue = create_queue(settings)
    total = 5000
    ids = queue.push_many([Record(journal, f"j{index}") for index in range(total)])
    tags = {f"j{index}" for index in range(total)}
    rng = random.Random(7)
    kills = 0
    deadline = time.monotonic() + 150
    while set(read_lines(journal)) != tags:
        assert time.monotonic() < deadline, len(set(read_lines(journal)))
        before = len(read_lines(journal))
        worker = queue_core(settings, "listen", "--timeout", "0.2",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Once it runs jobs, a moment later: a worker that starts up faster than a fixed
        # sleep would otherwise drain the queue before the first kill.
        wait_for(lambda before=before: len(read_lines(journal)) > before, 30,
                 "the worker to run jobs", every=0.005)
        time.sleep(rng.uniform(0.0, 0.05))
        kill_group(worker)
        kills += 1
    # The job a SIGKILL cut short comes back when its lease ends: let it finish.
    def settled() -> bool:
        queue.run()
        counts = queue.info()
        return counts[JobStatus.WAITING] + counts[JobStatus.RESERVED] == 0
    wait_for(settled, 20, "the killed runs to come back and finish", every=0.2)
    assert queue.info()[JobStatus.FAILED] == 0
    started = Counter(read_lines(journal))
    assert set(started) == tags
    duplicates = sum(n - 1 for n in started.values())
    # At most the one job in flight when each SIGKILL struck runs again.
    assert duplicates <= kills, (duplicates, kills)
    assert kills >= 3
    assert all(queue.status(job_id) is JobStatus.DONE for job_id in ids[:100])


def test_jobs_fetched_but_not_started_are_not_charged(settings: dict[str, Any],
                                                      journal: str) -> None:
    settings.update(ttr=1, attempts=1)  # any charged lost run would fail its job
    queue = create_queue(settings)
    # A kill only says something when it strikes while the worker holds jobs it fetched
    # ahead; how many it holds at that moment depends on the machine's load and on where
    # in a batch the kill falls, so kill again (each round checked) until one did.
    held_at_kills = []
    for round_ in range(5):
        queue.clear()
        tags = {f"r{round_}j{index}" for index in range(3000)}
        queue.push_many([Record(journal, tag) for tag in sorted(tags)])
        worker = queue_core(settings, "listen", "--timeout", "0.2",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda tags=tags: len(tags.intersection(read_lines(journal))) >= 1000, 60,
                 "1000 jobs")
        kill_group(worker)
        held_at_kills.append(queue.info()[JobStatus.RESERVED])

        def drained() -> bool:
            queue.run()
            counts = queue.info()
            return counts[JobStatus.WAITING] + counts[JobStatus.RESERVED] == 0
        wait_for(drained, 30, "the rest of the jobs", every=0.2)
        failed = queue.info()[JobStatus.FAILED]
        # Only the job that was running can have been charged (and failed, attempts=1).
        assert failed <= 1, held_at_kills
        assert len(tags.intersection(read_lines(journal))) >= 3000 - failed
        if held_at_kills[-1] > 1:
            break
    assert max(held_at_kills) > 1, held_at_kills  # some kill caught fetched-ahead jobs


def test_a_worker_survives_a_restart_of_its_redis_server(server: Server, journal: str,
                                                         tmp_path: Path) -> None:
    settings = redis_settings(url=server.url, ttr=5, attempts=3)
    queue = create_queue(settings)
    queue.push_many([Sleep(journal, f"s{index}", 0.05) for index in range(60)])
    worker = queue_core(settings, "listen", "--timeout", "0.2")
    try:
        wait_for(lambda: sum(line.startswith("end") for line in read_lines(journal)) >= 10,
                 30, "10 jobs")
        server.kill()
        time.sleep(1.5)
        assert worker.poll() is None
        server.start()
        wait_for(lambda: {line for line in read_lines(journal) if line.startswith("end")}
                 == {f"end s{index}" for index in range(60)}, 60, "every job after the restart")
        code, _, err = stop(worker)
    finally:
        kill_group(worker)
    assert code == 0, err
    assert err.count("cannot reach") == 1  # logged once for the outage
    assert "reachable again" in err
    assert create_queue(settings).info()[JobStatus.WAITING] == 0


def test_an_idle_worker_blocks_instead_of_polling(server: Server, journal: str) -> None:
    import redis
    settings = redis_settings(url=server.url)
    client = redis.Redis.from_url(server.url)
    worker = queue_core(settings, "listen", "--timeout", "3", stdout=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        before = client.info("commandstats")
        time.sleep(3.0)
        after = client.info("commandstats")
        # Commands the worker sends (those a script runs are counted apart by Redis).
        sent = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_blpop")
        calls = sum(after.get(name, {"calls": 0})["calls"] - before.get(name, {"calls": 0})["calls"]
                    for name in sent)
        assert calls < 40, calls  # a poller would make thousands
        pushed = time.monotonic()
        create_queue(settings).push(Record(journal, "wake"))
        wait_for(lambda: "wake" in read_lines(journal), 5, "the job")
        assert time.monotonic() - pushed < 0.5
        create_queue(settings).push(Record(journal, "later"), delay=1.0)
        pushed = time.monotonic()
        wait_for(lambda: "later" in read_lines(journal), 5, "the delayed job")
        assert 0.9 <= time.monotonic() - pushed < 1.6
    finally:
        stop(worker)


def test_every_key_is_under_the_channel_hash_tag(settings: dict[str, Any],
                                                 journal: str) -> None:
    import redis
    queue = create_queue({**settings, "keep_completed": True})
    queue.push(Record(journal, "a"))
    queue.push(Record(journal, "b"), delay=60)
    queue.run()
    client = redis.Redis.from_url(URL)
    channel = settings["channel"]
    keys = [key.decode() for key in client.scan_iter(match=f"*{channel}*")]
    assert keys and all(f"{{{channel}}}" in key for key in keys)


def test_url_forms_and_secrets() -> None:
    from queue_core.drivers.redis import RedisDriver
    driver = RedisDriver.from_url("redis://user:s3cret@127.0.0.1:6379/3?prefetch=4",
                                  channel="c")
    assert driver.prefetch == 4 and "s3cret" not in driver.describe()
    assert "s3cret" not in repr(driver)
    unix = RedisDriver.from_url("unix:///tmp/redis.sock?db=2")
    assert unix._connector.client.connection_pool.connection_kwargs["path"] == "/tmp/redis.sock"
    tls = RedisDriver.from_url("rediss://127.0.0.1:6380/0")
    assert tls._connector.client.connection_pool.connection_class.__name__ == "SSLConnection"
    with pytest.raises(ConfigError) as caught:
        RedisDriver("redis://127.0.0.1:6379/0", colour="blue")
    assert caught.value.key == "driver.colour"
    with pytest.raises(ConfigError) as caught:
        RedisDriver.from_url("redis://127.0.0.1:6379/0?prefetch=many")
    assert caught.value.key == "driver.prefetch"


def test_a_push_while_redis_is_down_raises(journal: str) -> None:
    from queue_core import DriverError
    queue = create_queue(redis_settings(url=f"redis://127.0.0.1:{_free_port()}/0"))
    with pytest.raises(DriverError, match="redis"):
        queue.push(Record(journal, "x"))


def test_stopping_gives_back_fetched_jobs_at_once(settings: dict[str, Any],
                                                  journal: str) -> None:
    queue = create_queue(settings)
    queue.push_many([Record(journal, f"j{index}") for index in range(2000)])
    worker = queue_core(settings, "listen", "--timeout", "0.2", stdout=subprocess.DEVNULL)
    wait_for(lambda: len(read_lines(journal)) >= 500, 60, "500 jobs")
    code, _, err = stop(worker, signal.SIGTERM)
    assert code == 0, err
    assert queue.info()[JobStatus.RESERVED] == 0


# -- consumers -----------------------------------------------------------------------------

def _held_long(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings whose fetched jobs need a round trip to start after ``HELD`` seconds."""
    return {**settings, "driver": {**settings["driver"], "prefetch_lease": 1.2}}


HELD = 0.7
"""Longer than half the fetch lease of ``_held_long``."""


def test_a_job_fetched_ahead_that_another_worker_took_meanwhile_is_not_begun(
        settings: dict[str, Any], journal: str) -> None:
    import redis
    queue = create_queue(_held_long(settings))
    job_id = queue.push(Record(journal, "x"))
    slow, quick = queue.driver.open_consumer(), queue.driver.open_consumer()
    (held,) = slow.fetch(1, 0)
    time.sleep(HELD)
    # Its worker spent longer on another job than the fetch lease: another worker takes it.
    redis.Redis.from_url(URL).zadd(_key(settings["channel"], held.id, "r"), {held.id: 1})
    (taken,) = quick.fetch(1, 0)
    assert taken.id == held.id == job_id
    assert quick.begin(taken) is True
    # Not ours any more: the core skips it (and logs why: tests/unit/test_consuming.py).
    assert slow.begin(held) is False
    info = queue.get(job_id)
    assert (info.status, info.attempt) == (JobStatus.RESERVED, 1)  # started once only
    quick.ack(taken)
    assert queue.info()[JobStatus.RESERVED] == 0
    slow.close()
    quick.close()


def test_among_jobs_begun_together_one_another_worker_took_is_refused(
        settings: dict[str, Any], journal: str) -> None:
    import redis
    queue = create_queue(_held_long(settings))
    ids = [queue.push(Record(journal, str(n))) for n in range(3)]
    slow, quick = queue.driver.open_consumer(), queue.driver.open_consumer()
    held = slow.fetch(3, 0)
    time.sleep(HELD)
    redis.Redis.from_url(URL).zadd(_key(settings["channel"], held[1].id, "r"),
                                   {held[1].id: 1})
    (taken,) = quick.fetch(1, 0)
    assert taken.id == held[1].id and quick.begin(taken) is True
    # Past half their fetch lease, each is checked on its own round trip.
    assert slow.begin_many(held) == [True, False, True]
    assert [queue.get(job_id).attempt for job_id in ids] == [1, 1, 1]
    slow.settle([Settlement(Verdict.ACK, held[0]), Settlement(Verdict.ACK, held[2])])
    quick.ack(taken)
    assert queue.info()[JobStatus.RESERVED] == 0
    slow.close()
    quick.close()


def test_a_job_fetched_long_ago_and_still_held_is_begun(settings: dict[str, Any],
                                                         journal: str) -> None:
    queue = create_queue(_held_long(settings))
    job_id = queue.push(Record(journal, "x"))
    consumer = queue.driver.open_consumer()
    (message,) = consumer.fetch(1, 0)
    time.sleep(HELD)
    consumer.begin(message)  # a round trip that finds it still ours
    assert queue.get(job_id).attempt == 1
    consumer.ack(message)
    assert queue.status(job_id) is JobStatus.DONE
    consumer.close()


def test_jobs_fetched_before_a_clear_are_not_begun(settings: dict[str, Any],
                                                   journal: str) -> None:
    queue = create_queue(settings)
    queue.push(Record(journal, "x"))
    consumer = queue.driver.open_consumer()
    (message,) = consumer.fetch(1, 0)
    queue.clear()
    assert consumer.begin(message) is False
    assert set(queue.info().values()) == {0}
    consumer.close()


def test_consumers_hold_their_own_reservations_and_settle_them_in_any_order(
        settings: dict[str, Any], journal: str) -> None:
    from queue_core import ErrorInfo
    from queue_core.consumer import Settlement, Verdict
    queue = create_queue({**settings, "keep_completed": True})
    ids = queue.push_many([Record(journal, f"j{index}") for index in range(6)])
    one, two = queue.driver.open_consumer(), queue.driver.open_consumer()
    first, second = one.fetch(3, 0), two.fetch(3, 0)
    assert [m.id for m in first + second] == ids
    assert one._conn is not two._conn  # type: ignore[attr-defined]
    for message in (*reversed(second), *first[:2]):
        (one if message in first else two).begin(message)
    two.settle([Settlement(Verdict.FAIL, second[2], error=ErrorInfo("E", "no"), keep=True),
                Settlement(Verdict.ACK, second[0], keep=True)])
    one.begin(first[2], [Settlement(Verdict.RELEASE, first[1], delay=60, error=None),
                         Settlement(Verdict.ACK, first[0], keep=True)])
    one.ack(first[2], keep=True)
    two.release(second[1], delay=0, error=None)
    assert [queue.status(job_id) for job_id in ids] == [
        JobStatus.DONE, JobStatus.DELAYED, JobStatus.DONE, JobStatus.DONE, JobStatus.WAITING,
        JobStatus.FAILED]
    assert [queue.get(job_id).attempt for job_id in ids] == [1] * 6
    one.close()
    two.close()


def test_a_consumer_gives_back_what_it_fetched_uncharged(settings: dict[str, Any],
                                                         journal: str) -> None:
    queue = create_queue(settings)
    ids = queue.push_many([Record(journal, f"j{index}") for index in range(3)])
    consumer = queue.driver.open_consumer()
    fetched = consumer.fetch(3, 0)
    assert [message.id for message in fetched] == ids
    assert [queue.get(job_id).attempt for job_id in ids] == [0, 0, 0]  # not started yet
    consumer.begin(fetched[0])
    consumer.give_back(fetched[1:])
    assert [queue.status(job_id) for job_id in ids] == [
        JobStatus.RESERVED, JobStatus.WAITING, JobStatus.WAITING]
    assert [queue.get(job_id).attempt for job_id in ids] == [1, 0, 0]
    consumer.close()


# -- damaged job hashes ------------------------------------------------------------------

def _key(channel: str, job_id: str, name: str = "") -> str:
    return f"qc:{{{channel}}}:" + (name or f"j:{job_id}")


def _no_hash(r: Any, channel: str, job_id: str) -> None:
    r.delete(_key(channel, job_id))


def _not_a_hash(r: Any, channel: str, job_id: str) -> None:
    r.delete(_key(channel, job_id))
    r.set(_key(channel, job_id), "garbage")


def _without(name: str) -> Callable[[Any, str, str], None]:
    return lambda r, channel, job_id: r.hdel(_key(channel, job_id), name)


def _holding(name: str, value: str) -> Callable[[Any, str, str], None]:
    return lambda r, channel, job_id: r.hset(_key(channel, job_id), name, value)


def _due_delayed_without_pri(r: Any, channel: str, job_id: str) -> None:
    """Pushed with a delay (so it is in ``d``), made due, and its priority gone."""
    r.hdel(_key(channel, job_id), "pri")
    r.zadd(_key(channel, job_id, "d"), {job_id: 1})


def _expired_lease_without_pri(r: Any, channel: str, job_id: str) -> None:
    """Reserved by a worker that vanished (its lease over), and its priority gone."""
    r.zrem(_key(channel, job_id, "w"), job_id)
    r.zadd(_key(channel, job_id, "r"), {job_id: 1})
    r.hset(_key(channel, job_id), "tok", "gone")
    r.hdel(_key(channel, job_id), "pri")


DAMAGES: dict[str, tuple[Callable[[Any, str, str], None], str, bool]] = {
    # name: (the damage, what the error message must name, pushed delayed)
    "no-hash": (_no_hash, "hash is missing", False),
    "not-a-hash": (_not_a_hash, "not a hash", False),
    "no-payload": (_without("p"), "'p'", False),
    "no-ttr": (_without("ttr"), "'ttr'", False),
    "no-pri": (_without("pri"), "'pri'", False),
    "no-pushed": (_without("pushed"), "'pushed'", False),
    "ttr-abc": (_holding("ttr", "abc"), "'ttr'", False),
    "ttr-nan": (_holding("ttr", "nan"), "'ttr'", False),
    "ttr-negative": (_holding("ttr", "-5"), "ttr", False),
    "ttr-huge": (_holding("ttr", "1e300"), "ttr", False),
    "att-abc": (_holding("att", "abc"), "'att'", False),
    "pri-fraction": (_holding("pri", "1.5"), "priority", False),
    "due-delayed-no-pri": (_due_delayed_without_pri, "'pri'", True),
    "expired-lease-no-pri": (_expired_lease_without_pri, "'pri'", False),
}
DAMAGED_TYPES = ("DamagedJobRecord", "queue_core.errors.DamagedJobError")


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_job_hash_is_failed_with_the_reason_and_the_worker_goes_on(
        damage: str, settings: dict[str, Any], journal: str,
        caplog: pytest.LogCaptureFixture) -> None:
    import redis
    corrupt, named, delayed = DAMAGES[damage]
    channel = settings["channel"]
    queue = create_queue(settings)
    damaged = queue.push(Record(journal, "damaged"), delay=60 if delayed else 0)
    assert damaged is not None
    corrupt(redis.Redis.from_url(URL), channel, damaged)
    queue.push(Record(journal, "good"))

    queue.run()  # must not raise

    assert read_lines(journal) == ["good"]
    info = queue.get(damaged)
    assert info.status is JobStatus.FAILED
    assert info.error is not None and info.error.type in DAMAGED_TYPES, info.error
    assert named in info.error.message and damaged in info.error.message, info.error
    assert damaged in [job.id for job in queue.failed()]
    assert queue.info() == {JobStatus.WAITING: 0, JobStatus.DELAYED: 0,
                            JobStatus.RESERVED: 0, JobStatus.DONE: 0, JobStatus.FAILED: 1}
    assert "retrying with backoff" not in caplog.text
    # Sent back by hand, it fails again; nothing raises.
    queue.retry(damaged)
    queue.run()
    again = queue.get(damaged)
    assert again.status is JobStatus.FAILED and again.error is not None
    assert again.error.type in DAMAGED_TYPES, again.error
    assert read_lines(journal) == ["good"]
    queue.clear()
    assert set(queue.info().values()) == {0}


def test_admin_commands_read_a_damaged_hash_without_raising(settings: dict[str, Any],
                                                            journal: str) -> None:
    import redis
    r = redis.Redis.from_url(URL)
    channel = settings["channel"]
    queue = create_queue(settings)
    job_id = queue.push(Record(journal, "x"))
    assert job_id is not None
    r.hset(_key(channel, job_id), mapping={"att": "x", "pri": "y", "ttr": "inf",
                                           "pushed": "z", "st": "nan", "err": "not json",
                                           "p": ""})
    for shown in (queue.get(job_id), *queue.jobs(JobStatus.WAITING)):
        assert shown.status is JobStatus.WAITING
        assert (shown.attempt, shown.priority, shown.ttr) == (0, None, None)
        assert (shown.pushed_at, shown.started_at) == (None, None)
        assert shown.error is not None and shown.error.type == "DamagedJobRecord"
    r.zrem(_key(channel, job_id, "w"), job_id)
    r.zadd(_key(channel, job_id, "f"), {job_id: 1})
    r.hdel(_key(channel, job_id), "pri")
    queue.retry(job_id)  # a hash without a priority: no script error, the job is not lost
    assert queue.status(job_id) is JobStatus.WAITING
    queue.run()
    assert queue.status(job_id) is JobStatus.FAILED
    r.delete(_key(channel, job_id))
    r.set(_key(channel, job_id), "garbage")
    with pytest.raises(DriverError, match="holds a string"):
        queue.retry(job_id)
    with pytest.raises(DriverError):  # WRONGTYPE, as one DriverError
        queue.get(job_id)
    assert queue.info()[JobStatus.FAILED] == 1
    assert queue.remove(job_id) is True
    queue.clear()
    assert set(queue.info().values()) == {0}


def test_a_release_of_a_hash_without_pri_does_not_lose_the_job(settings: dict[str, Any],
                                                               journal: str) -> None:
    import redis
    r = redis.Redis.from_url(URL)
    channel = settings["channel"]
    queue = create_queue(settings)
    job_id = queue.push(Record(journal, "x"))
    consumer = queue.driver.open_consumer()
    (message,) = consumer.fetch(1, 0)
    assert message.id == job_id
    consumer.begin(message)
    r.hdel(_key(channel, job_id), "pri")
    consumer.release(message, delay=0, error=None)
    assert queue.status(job_id) is JobStatus.WAITING
    assert consumer.fetch(1, 0) == []  # the pop finds the damage and fails the job
    consumer.close()
    info = queue.get(job_id)
    assert info.status is JobStatus.FAILED and info.error is not None
    assert info.error.type == "DamagedJobRecord" and "'pri'" in info.error.message


# -- persistence -------------------------------------------------------------------------

PERSISTENCE_WARNING = "keeps no append-only file"


def _persistence_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.levelname == "WARNING" and PERSISTENCE_WARNING in record.getMessage()]


def test_a_worker_warns_at_start_when_redis_keeps_no_append_only_file(
        servers: Callable[..., Server], journal: str, caplog: pytest.LogCaptureFixture) -> None:
    plain = servers(aof=False)
    queue = create_queue(redis_settings(url=plain.url))
    queue.push(Record(journal, "a"))
    assert queue.run() == 1
    assert queue.run() == 0
    warnings = _persistence_warnings(caplog)
    assert len(warnings) == 1, warnings  # once per driver, not at every run
    for needed in ("appendonly yes", "appendfsync", "everysec", "always",
                   "warn_persistence"):
        assert needed in warnings[0], needed
    # A server that refuses INFO (a proxy, a managed service) is not checked, and the
    # worker starts anyway.
    hidden = servers(aof=False, extra=("--rename-command", "INFO", ""))
    queue = create_queue(redis_settings(url=hidden.url))
    queue.push(Record(journal, "b"))
    assert queue.run() == 1
    assert read_lines(journal) == ["a", "b"]
    assert len(_persistence_warnings(caplog)) == 1


def test_the_persistence_warning_can_be_silenced_and_is_not_given_with_aof(
        servers: Callable[..., Server], journal: str, caplog: pytest.LogCaptureFixture) -> None:
    plain = servers(aof=False)
    by_option = redis_settings(url=plain.url)
    by_option["driver"]["warn_persistence"] = False
    silenced = [by_option, redis_settings(url=plain.url + "?warn_persistence=0")]
    with_aof = redis_settings(url=servers().url)
    for settings in (*silenced, with_aof):
        queue = create_queue(settings)
        queue.push(Record(journal, "a"))
        assert queue.run() == 1
    assert _persistence_warnings(caplog) == []
    assert read_lines(journal) == ["a"] * 3
    with pytest.raises(ConfigError) as caught:
        create_queue(redis_settings(url=plain.url + "?warn_persistence=maybe"))
    assert caught.value.key == "driver.warn_persistence"


def test_the_driver_declares_redis_largest_payload() -> None:
    from queue_core.drivers.redis import RedisDriver
    assert RedisDriver.capabilities.max_payload == 512 * 1024 * 1024
