"""A list of AMQP hosts for failover: in the URL (``h1:5672,h2:5672``) or as ``hosts``,
sharing the URL's credentials, virtual host and options; each connection tries the hosts
in turn from the one in use, and after a lost connection from the host after it. Bad lists
are refused naming the key; descriptions and errors name the host, never the password."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pika", reason="pika is not installed (pip install -e '.[amqp]')")

from queue_core.drivers.amqp import AmqpDriver  # noqa: E402
from queue_core.drivers.amqp.connection import Wire, WireError  # noqa: E402

from queue_core import ConfigError, DriverError, JobStatus, create_queue  # noqa: E402
from tests.support.jobs import Record, Sleep, read_lines  # noqa: E402
from tests.support.procs import kill_group, queue_core, stop, wait_for  # noqa: E402
from tests.support.proxy import TcpProxy, tcp_proxy  # noqa: E402
from tests.support.run import run_until  # noqa: E402
from tests.support.specs.amqp import URL, available, delete_queues  # noqa: E402

needs_broker = pytest.mark.skipif(bool(available()), reason=str(available()))
BROKER = URL.split("@", 1)[-1].split("/", 1)[0]
"""host:port of the test broker."""
CREDENTIALS = URL.split("://", 1)[1].split("@", 1)[0]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _url(*hosts: str) -> str:
    return f"amqp://{CREDENTIALS}@{','.join(hosts)}/%2F"


def _settings(url: str, **extra: Any) -> dict[str, Any]:
    driver = {"url": url, "lease_grace": 0.5, "connect_timeout": 2}
    driver.update(extra.pop("driver", {}))
    return {"driver": driver, "channel": f"t{uuid.uuid4().hex[:12]}",
            "imports": ["tests.support.jobs"], **extra}


# -- the forms, no server --------------------------------------------------------------


def test_a_url_lists_hosts_that_share_its_credentials_vhost_and_options() -> None:
    driver = AmqpDriver.from_url(
        "amqp://app:s3cret@rabbit1,rabbit2:5673,[::1]:5674/jobs?heartbeat=10&prefetch=7",
        channel="mail")
    assert [(p.host, p.port) for p in driver.brokers] == [
        ("rabbit1", 5672), ("rabbit2", 5673), ("::1", 5674)]
    for params in driver.brokers:
        assert (params.virtual_host, params.heartbeat) == ("jobs", 10)
        assert (params.credentials.username, params.credentials.password) == ("app", "s3cret")
    assert driver.prefetch == 7
    assert driver.describe() == "amqp://rabbit1:5672,rabbit2:5673,[::1]:5674/jobs queue mail"
    assert "s3cret" not in repr(driver)
    tls = AmqpDriver.from_url("amqps://app:s3cret@a,b/jobs")
    assert [p.port for p in tls.brokers] == [5671, 5671]


def test_settings_list_hosts_under_a_url_that_names_none() -> None:
    queue = create_queue({"driver": {"url": "amqp://app:s3cret@/jobs",
                                     "hosts": ["rabbit1", "rabbit2:5673"]},
                          "channel": "mail"})
    driver = queue.driver
    assert isinstance(driver, AmqpDriver)
    assert [(p.host, p.port, p.virtual_host, p.credentials.password)
            for p in driver.brokers] == [("rabbit1", 5672, "jobs", "s3cret"),
                                         ("rabbit2", 5673, "jobs", "s3cret")]
    alone = AmqpDriver(hosts=["rabbit1:5673"])  # no URL: guest, virtual host /
    assert alone.describe() == "amqp://rabbit1:5673/%2F queue queue"


@pytest.mark.parametrize(("url", "hosts", "key", "says"), [
    ("amqp://u:s3cret@a,,b/v", None, "driver", "host '' is empty"),
    ("amqp://u:s3cret@a,b:x/v", None, "driver", "host 'b:x' is not valid"),
    ("amqp://u:s3cret@a,b:0/v", None, "driver", "port 0"),
    ("amqp://u:s3cret@a,b:70000/v", None, "driver", "host 'b:70000' is not valid (Port out"),
    ("amqp://u:s3cret@a,b:/v", None, "driver", "no port number"),
    ("amqp://u:s3cret@a:5672,a/v", None, "driver", "host a:5672 is listed twice"),
    ("amqp://u:s3cret@/v", "a,b", "driver.hosts", "non-empty list"),
    ("amqp://u:s3cret@/v", [], "driver.hosts", "non-empty list"),
    ("amqp://u:s3cret@/v", {"a": 1}, "driver.hosts", "non-empty list"),
    ("amqp://u:s3cret@/v", ["a", 5672], "driver.hosts", "hosts[1] must be a string"),
    ("amqp://u:s3cret@/v", ["a", "b/c"], "driver.hosts", "hosts[1] 'b/c' has a character"),
    ("amqp://u:s3cret@/v", ["a b"], "driver.hosts", "has a character"),
    ("amqp://u:s3cret@/v", ["u:p@a"], "driver.hosts", "has a character"),
    ("amqp://u:s3cret@/v", ["[::1"], "driver.hosts", "is not valid"),
    ("amqp://u:s3cret@/v", ["a", "a:5672"], "driver.hosts", "listed twice"),
    ("amqp://u:s3cret@h/v", ["a"], "driver.hosts", "do not go together"),
])
def test_bad_host_lists_are_refused_naming_the_key(url: str, hosts: Any, key: str,
                                                   says: str) -> None:
    driver: dict[str, Any] = {"url": url}
    if hosts is not None:
        driver["hosts"] = hosts
    with pytest.raises(ConfigError) as caught:
        create_queue({"driver": driver})
    assert caught.value.key == key
    assert says in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_each_connection_tries_the_hosts_in_turn_from_the_one_after_a_lost_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[str] = []
    down: set[str] = set()

    def fake_open(wire: Wire) -> Wire:
        tried.append(wire.address)
        if wire.address in down:
            raise WireError(f"cannot connect to {wire.address}: refused")
        return wire
    monkeypatch.setattr(Wire, "open", fake_open)
    driver = AmqpDriver("amqp://u:s3cret@a,b,c/v")

    def connect() -> Wire:
        tried.clear()
        return driver._open(0, "test")

    down.add("a:5672")
    wire = connect()
    assert tried == ["a:5672", "b:5672"] and wire.address == "b:5672"
    assert driver.params.host == "b"  # the host in use
    assert connect().address == "b:5672" and tried == ["b:5672"]  # stays where it works
    driver._lost(wire)  # b is lost: the next connection starts after it
    assert connect().address == "c:5672" and tried == ["c:5672"]
    down.update({"b:5672", "c:5672"})
    with pytest.raises(WireError) as caught:
        connect()
    assert tried == ["c:5672", "a:5672", "b:5672"]
    assert str(caught.value) == ("none of the 3 hosts took a connection: cannot connect to "
                                 "c:5672: refused; cannot connect to a:5672: refused; "
                                 "cannot connect to b:5672: refused")
    down.discard("a:5672")
    assert connect().address == "a:5672" and tried == ["c:5672", "a:5672"]


# -- against RabbitMQ --------------------------------------------------------------------


@needs_broker
def test_a_host_that_refuses_is_passed_over_for_the_next(journal: str) -> None:
    closed = f"127.0.0.1:{_closed_port()}"
    settings = _settings(_url(closed, BROKER))
    try:
        queue = create_queue(settings)
        queue.push(Record(journal, "a"))
        queue.push_many([Record(journal, "b"), Record(journal, "c")])
        run_until(queue, lambda: len(read_lines(journal)) == 3)
        assert read_lines(journal) == ["a", "b", "c"]
        assert queue.driver.describe() == f"amqp://{closed},{BROKER}/%2F queue " \
                                          f"{settings['channel']}"
        assert queue.driver.params.port == int(BROKER.rsplit(":", 1)[1])
    finally:
        delete_queues(settings)
    nowhere = create_queue(_settings(_url(closed, f"127.0.0.1:{_closed_port()}")))
    with pytest.raises(DriverError, match="none of the 2 hosts took a connection") as caught:
        nowhere.push(Record(journal, "x"))
    assert closed in str(caught.value) and CREDENTIALS not in str(caught.value)


@needs_broker
def test_pushes_move_to_the_next_host_when_theirs_goes_down(journal: str) -> None:
    host, port = BROKER.rsplit(":", 1)
    with tcp_proxy(host, int(port)) as first, tcp_proxy(host, int(port)) as second:
        settings = _settings(_url(first.address, second.address))
        try:
            queue = create_queue(settings)
            queue.push(Record(journal, "a"))
            first.down()
            # Written to a connection that was just in use, the push finds it lost: as with
            # one host, the caller hears of it (the broker may have the job or not).
            with pytest.raises(DriverError, match="connection closed by the broker") as caught:
                queue.push(Record(journal, "lost"))
            assert str(caught.value) == (
                f"amqp://{first.address},{second.address}/%2F queue {settings['channel']}: "
                f"{first.address}: connection closed by the broker")
            queue.push(Record(journal, "b"))  # the next connection: the next host
            assert queue.driver.params.port == second.port
            second.down()
            first.up()
            time.sleep(1.1)  # idle: the lost connection is found out before a write
            queue.push(Record(journal, "c"))  # after the last host, the first again
            assert queue.driver.params.port == first.port
            run_until(queue, lambda: {"a", "b", "c"} <= set(read_lines(journal)))
            assert set(read_lines(journal)) <= {"a", "b", "c", "lost"}
        finally:
            first.up()
            delete_queues(settings)


def _proxies() -> tuple[TcpProxy, TcpProxy]:
    host, port = BROKER.rsplit(":", 1)
    return TcpProxy(host, int(port)), TcpProxy(host, int(port))


@pytest.fixture
def two_proxies() -> Iterator[tuple[TcpProxy, TcpProxy]]:
    pair = _proxies()
    yield pair
    for proxy in pair:
        proxy.close()


@needs_broker
@pytest.mark.slow
def test_a_worker_carries_on_through_the_other_host_when_its_host_goes_down(
        two_proxies: tuple[TcpProxy, TcpProxy], journal: str, tmp_path: Path) -> None:
    first, second = two_proxies
    settings = _settings(_url(first.address, second.address), attempts=3)
    done_log = tmp_path / "done.log"
    total = 150
    try:
        queue = create_queue(settings)
        queue.push_many([Sleep(journal, f"s{index}", 0.02) for index in range(total)])
        worker = queue_core(settings, "listen", "--timeout", "0.2", done_log=done_log)
        ends = lambda: [line for line in read_lines(journal) if line.startswith("end")]  # noqa: E731
        try:
            wait_for(lambda: len(ends()) >= 30, 30, "30 jobs")
            first.down()  # for good: the worker must go on through the second host
            at_down = len(ends())
            wait_for(lambda: len(set(ends())) == total, 60, "every job")
            time.sleep(0.3)
            code, _, err = stop(worker)
        finally:
            kill_group(worker)
        assert code == 0, err
        assert at_down < total  # the host went down mid-run
        assert set(ends()) == {f"end s{index}" for index in range(total)}
        done = [line.split()[1] for line in read_lines(str(done_log))]
        assert len(set(done)) == total  # every job DONE
        ran_twice = len(done) - len(set(done))
        assert ran_twice <= 1, ran_twice  # at most the one job whose ack the cut took
        where = f"amqp://{first.address},{second.address}/%2F queue {settings['channel']}"
        assert f"cannot reach {where}: {first.address}: " in err, err
        assert f"{where}: connected to {second.address} (instead of {first.address})" in err
        assert f"{where} is reachable again" in err, err
        counts = queue.info()
        assert (counts[JobStatus.WAITING], counts[JobStatus.DELAYED],
                counts[JobStatus.FAILED]) == (0, 0, 0)
    finally:
        delete_queues(settings)

