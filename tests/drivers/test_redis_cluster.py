"""Redis Cluster: the URL forms and options, a real worker whose channel's slot is
migrated to another node while it runs (MOVED/ASK: it asks the cluster again), and
channels spread over the nodes. The contract suite runs on a cluster too (the
``redis-cluster`` spec)."""

from __future__ import annotations

import logging
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
from tests.support.redis_servers import Cluster, missing_binaries

logger = logging.getLogger(__name__)


def _driver(url: str, **options: Any) -> Any:
    from queue_core.drivers.redis import RedisDriver
    return RedisDriver.from_url(url, **options)


def test_cluster_url_forms() -> None:
    driver = _driver("redis+cluster://user:s3cret@127.0.0.1:7000,127.0.0.1:7001"
                     "?socket_timeout=3")
    assert driver._connector.kind == "cluster"
    assert "s3cret" not in driver.describe()
    by_option = _driver("redis://127.0.0.1:7000", cluster=True)
    assert by_option._connector.kind == "cluster"
    assert _driver("redis://127.0.0.1:7000?cluster=1")._connector.kind == "cluster"
    assert create_queue("redis+cluster://127.0.0.1:7000").driver.name == "redis"


@pytest.mark.parametrize(("url", "options", "key", "says"), [
    ("redis+cluster://127.0.0.1:7000/0", {}, "driver", "no databases"),
    ("redis+cluster://127.0.0.1:7000/3", {}, "driver", "no databases"),
    ("redis://127.0.0.1:7000/2", {"cluster": True}, "driver", "no databases"),
    ("redis+cluster://127.0.0.1:7000", {"db": 1}, "driver.db", "no databases"),
    ("redis+cluster://127.0.0.1:7000?db=1", {}, "driver.db", "no databases"),
    ("redis+cluster://127.0.0.1:7000", {"cluster": "yes"},
     "driver.cluster", "cluster must be true or false"),
    ("redis+cluster://127.0.0.1:7000", {"service_name": "m"},
     "driver.cluster", "cannot be combined"),
    ("redis+cluster://:7000", {}, "driver", "is not host:port"),
    ("redis+cluster://127.0.0.1:7000,127.0.0.1:x", {}, "driver", "is not host:port"),
])
def test_a_database_and_other_bad_cluster_settings_are_refused(
        url: str, options: dict[str, Any], key: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _driver(url, **options)
    assert caught.value.key == key, caught.value
    assert says in str(caught.value)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    problem = missing_binaries()
    if problem:
        pytest.fail(problem)
    made = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        made.start()
        yield made
    finally:
        made.stop()


def _settings(cluster: Cluster, channel: str, **extra: Any) -> dict[str, Any]:
    return {"driver": {"url": cluster.url, "lease_grace": 0.5, "prefetch_lease": 3,
                       "warn_persistence": False},
            "channel": channel, "imports": ["tests.support.jobs"], **extra}


def _slot(channel: str) -> int:
    from redis.crc import key_slot
    return int(key_slot(f"qc:{{{channel}}}:w".encode()))


def _channels_on_every_node(cluster: Cluster) -> dict[int, str]:
    """A channel name per node (picked so that they land on different nodes)."""
    found: dict[int, str] = {}
    while len(found) < len(cluster.nodes):
        channel = f"t{uuid.uuid4().hex[:12]}"
        found.setdefault(cluster.owner(_slot(channel)).port, channel)
    return found


def test_channels_on_every_node_keep_their_keys_on_the_node_of_their_slot(
        cluster: Cluster, journal: str) -> None:
    import redis
    for port, channel in _channels_on_every_node(cluster).items():
        queue = create_queue({**_settings(cluster, channel), "keep_completed": True})
        queue.push(Record(journal, f"{channel} now"))
        queue.push(Record(journal, f"{channel} later"), delay=60)
        assert queue.run() == 1
        node = redis.Redis(port=port)
        keys = [key.decode() for key in node.scan_iter(match=f"*{channel}*")]
        assert len(keys) >= 5 and all(f"{{{channel}}}" in key for key in keys), keys
        assert {_slot(channel)} == {int(node.execute_command("CLUSTER", "KEYSLOT", key))
                                    for key in keys}
        assert queue.info()[JobStatus.DELAYED] == 1
        queue.clear()
    assert len(read_lines(journal)) == 3


@pytest.mark.slow
def test_a_worker_follows_its_channel_when_the_slot_moves(cluster: Cluster, journal: str,
                                                         tmp_path: Path) -> None:
    channel = f"t{uuid.uuid4().hex[:12]}"
    settings = _settings(cluster, channel, ttr=10, attempts=5)
    queue = create_queue(settings)
    total = 600
    tags = [f"j{index}" for index in range(total)]
    ids = queue.push_many([Sleep(journal, tag, 0.004) for tag in tags])
    worker = queue_core(settings, "listen", "--timeout", "0.2", stdout=subprocess.DEVNULL)

    def ends() -> Counter[str]:
        return Counter(line[4:] for line in read_lines(journal) if line.startswith("end "))
    try:
        wait_for(lambda: len(ends()) >= 100, 30, "the worker to run jobs")
        source = cluster.owner(_slot(channel))
        target = next(node for node in cluster.nodes if node is not source)
        cluster.move_slot(_slot(channel), target)
        moved = time.monotonic()
        at_move = len(ends())
        wait_for(lambda: len(ends()) > at_move, 15, "a job after the slot moved")
        after = time.monotonic() - moved
        # A push from a producer whose client still has the old slot map goes there too.
        extra = queue.push(Record(journal, "pushed after the move"))
        wait_for(lambda: len(ends()) >= total and "pushed after the move" in
                 read_lines(journal), 60, "every job")
        code, _, err = stop(worker)
    finally:
        kill_group(worker)
    assert code == 0, err
    assert cluster.owner(_slot(channel)) is target
    logger.info("slot moved: next job after %.2fs; worker said: %s", after, err[-2000:])
    counted = ends()
    assert set(counted) == set(tags)
    assert sum(n - 1 for n in counted.values()) <= 2, counted.most_common(3)
    assert after < 12, after
    assert extra is not None
    states = Counter(queue.status(job_id) for job_id in ids)
    assert states == Counter({JobStatus.DONE: total}), states
    info = queue.info()
    assert info[JobStatus.WAITING] + info[JobStatus.RESERVED] + info[JobStatus.FAILED] == 0
    queue.clear()
