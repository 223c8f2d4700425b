"""Redis driver specifics: crash windows, a server restart, blocking waits, URLs, keys."""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from queue_core import ConfigError, JobStatus, create_queue
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
    """A throwaway redis-server that keeps its data across restarts (AOF)."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)],
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
def server(tmp_path: Path) -> Iterator[Server]:
    if REDIS_SERVER is None:
        pytest.fail("redis-server is not on PATH (apt-get install redis-server)")
    made = Server(tmp_path)
    made.start()
    yield made
    made.kill()


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
        worker = queue_core(settings, "listen", "--timeout", "0.2",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.25, 0.6))
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
    from drivers.redis import RedisDriver
    driver = RedisDriver.from_url("redis://user:s3cret@127.0.0.1:6379/3?prefetch=4",
                                  channel="c")
    assert driver.prefetch == 4 and "s3cret" not in driver.describe()
    assert "s3cret" not in repr(driver)
    unix = RedisDriver.from_url("unix:///tmp/redis.sock?db=2")
    assert unix._client.connection_pool.connection_kwargs["path"] == "/tmp/redis.sock"
    tls = RedisDriver.from_url("rediss://127.0.0.1:6380/0")
    assert tls._client.connection_pool.connection_class.__name__ == "SSLConnection"
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
