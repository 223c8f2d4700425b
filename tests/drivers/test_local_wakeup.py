"""The same-host doorbell (drivers/local_wakeup.py) and the file and SQLite drivers'
idle wait on it: a push wakes a blocked reserve at once instead of at its next poll."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from queue_core.drivers import local_wakeup
from queue_core.drivers.local_wakeup import Doorbell, doorbell_beside

from queue_core.consumer import Consumer
from queue_core.driver import Message
from tests.support.local import umask

pytestmark = pytest.mark.skipif(not local_wakeup._AVAILABLE,
                                reason="no Unix sockets here: the doorbell is a no-op")

WAITER = """
import sys, time
from queue_core.drivers.local_wakeup import Doorbell
bell = Doorbell(sys.argv[1])
assert bell.wait(0)  # binds
print("bound", flush=True)
started = time.monotonic()
rung = bell.wait(60)
print(rung, time.monotonic() - started, flush=True)
bell.close()
"""


def _sockets(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return [path for path in directory.iterdir() if stat.S_ISSOCK(path.lstat().st_mode)]




# -- the doorbell --------------------------------------------------------------------------

def test_a_ring_wakes_a_waiter_in_another_process(tmp_path: Path) -> None:
    wake = tmp_path / "wake"
    child = subprocess.Popen([sys.executable, "-c", WAITER, str(wake)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "bound"
        time.sleep(0.2)  # the waiter is blocked in its 60 s wait
        Doorbell(wake).ring()
        rung, waited = child.stdout.readline().split()
        assert child.wait(10) == 0
    finally:
        child.kill()
        child.wait()
    assert rung == "True"
    assert float(waited) < 30  # woken by the ring, not by its 60 s timeout
    assert _sockets(wake) == []  # close() removed its socket file


def test_wait_without_a_ring_times_out(tmp_path: Path) -> None:
    bell = Doorbell(tmp_path / "wake")
    assert bell.wait(0) is True  # the first call binds: the caller looks again
    assert bell.listening
    assert bell.wait(0.05) is False
    bell.ring()
    assert bell.wait(5) is True
    assert bell.wait(0) is False  # drained: one wake for the ring
    bell.close()
    assert not bell.listening
    bell.close()


def test_many_rings_while_busy_wake_once(tmp_path: Path) -> None:
    bell = Doorbell(tmp_path / "wake")
    bell.wait(0)
    pusher = Doorbell(tmp_path / "wake")
    for _ in range(50):
        pusher.ring()
    assert bell.wait(1) is True
    assert bell.wait(0) is False
    bell.close()
    pusher.close()


def test_a_ring_with_no_waiter_is_harmless(tmp_path: Path) -> None:
    wake = tmp_path / "wake"
    Doorbell(wake).ring()
    assert not wake.exists()  # a pusher creates nothing
    wake.mkdir()
    (wake / "notes.txt").write_text("left alone")
    Doorbell(wake).ring()
    assert [path.name for path in wake.iterdir()] == ["notes.txt"]


def test_ring_removes_the_socket_files_of_waiters_that_died(tmp_path: Path) -> None:
    wake = tmp_path / "wake"
    wake.mkdir()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(wake / "w0123456789abcdef"))
    dead.close()  # as a SIGKILLed worker leaves it: the file stays, nobody is bound
    other = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    other.bind(str(wake / "someone-else"))  # not a doorbell name: never touched
    other.close()
    live = Doorbell(wake)
    live.wait(0)
    Doorbell(wake).ring()
    assert sorted(path.name for path in wake.iterdir()) == sorted(
        ["someone-else", live._name])
    assert live.wait(1) is True
    live.close()


def test_prefixes_keep_queues_apart(tmp_path: Path) -> None:
    first = Doorbell(tmp_path / "wake", prefix="a-")
    second = Doorbell(tmp_path / "wake", prefix="b-")
    first.wait(0)
    second.wait(0)
    Doorbell(tmp_path / "wake", prefix="a-").ring()
    assert first.wait(1) is True
    assert second.wait(0) is False
    first.close()
    second.close()


@pytest.mark.skipif(not local_wakeup._BY_FD, reason="long socket paths need /proc (Linux)")
def test_a_directory_too_long_for_a_socket_path_still_works(tmp_path: Path) -> None:
    wake = tmp_path / ("x" * 60) / ("y" * 60) / "wake"
    assert len(str(wake)) > local_wakeup.SOCKET_PATH_MAX
    bell = Doorbell(wake)
    assert bell.wait(0) is True and bell.listening
    Doorbell(wake).ring()
    assert bell.wait(5) is True
    bell.close()
    assert _sockets(wake) == []


def test_socket_files_and_folder_take_the_queue_mode_whatever_theumask(
        tmp_path: Path) -> None:
    with umask(0o077):
        bell = Doorbell(tmp_path / "wake", mode=0o660)
        bell.wait(0)
    (sock,) = _sockets(tmp_path / "wake")
    assert stat.S_IMODE(sock.stat().st_mode) == 0o660
    assert stat.S_IMODE((tmp_path / "wake").stat().st_mode) == 0o770
    bell.close()


def test_beside_a_database_file_takes_its_mode(tmp_path: Path) -> None:
    database = tmp_path / "queue.db"
    database.touch()
    database.chmod(0o640)
    bell = doorbell_beside(str(database), "queue\0default")
    assert bell is not None
    assert bell.directory == f"{database}.wake"
    with umask(0o077):
        bell.wait(0)
    (sock,) = _sockets(tmp_path / "queue.db.wake")
    assert stat.S_IMODE(sock.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "queue.db.wake").stat().st_mode) == 0o750
    bell.close()
    assert doorbell_beside(":memory:", "t") is None
    assert doorbell_beside("", "t") is None
    assert doorbell_beside(None, "t") is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_does_not_take_the_parents_rings(tmp_path: Path) -> None:
    wake = tmp_path / "wake"
    bell = Doorbell(wake)
    bell.wait(0)
    parents = bell._name
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            bell.after_fork()
            ok = (not bell.listening and (wake / parents).exists()
                  and bell.wait(0) is True and bell._name != parents)
            bell.close()
            code = 0 if ok and (wake / parents).exists() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert bell.listening and (wake / parents).exists()
    Doorbell(wake).ring()
    assert bell.wait(5) is True
    bell.close()


# -- the drivers ---------------------------------------------------------------------------

IDLE = 2.3
"""How long the consumer idles before the push. Each driver used to back off while idle
(sleeps doubling up to its poll interval), so at this point it would have slept on for
most of a second more; woken by the doorbell, it takes a few milliseconds."""
WOKEN_WITHIN = 0.5
"""A generous bound on push-to-reserve: this test checks that the ring wakes the consumer,
not how fast (benchmarks/latency.py measures that)."""


# The file driver is split into a store and the consumers each worker opens: the store
# rings, a consumer waits.

def _blocked_fetch_gets(consumer: Consumer, ring: Callable[[], str]) -> None:
    """A consumer blocked in fetch gets the job that ``ring`` makes ready, within
    WOKEN_WITHIN of it."""
    got: list[list[Message]] = []
    returned: list[float] = []

    def fetch() -> None:
        got.append(consumer.fetch(1, 20))
        returned.append(time.monotonic())

    thread = threading.Thread(target=fetch, daemon=True)
    thread.start()
    time.sleep(IDLE)
    assert thread.is_alive()
    pushed = time.monotonic()
    job_id = ring()
    thread.join(15)
    assert not thread.is_alive()
    assert got and len(got[0]) == 1 and got[0][0].id == job_id
    assert returned[0] - pushed < WOKEN_WITHIN


def _consumer_listening(consumer: Any) -> None:
    """Fetch until the consumer's doorbell is bound (a slow first look may use up a short
    fetch before it waits)."""
    for _ in range(100):
        assert consumer.fetch(1, 0.1) == []
        if consumer._doorbell.listening:
            return
    raise AssertionError("the doorbell never listened")


def test_file_a_push_wakes_a_blocked_reserve(tmp_path: Path,
                                             request: pytest.FixtureRequest) -> None:
    from queue_core.drivers.file import FileDriver
    options: dict[str, Any] = {"poll_interval": 30.0}
    store = FileDriver(tmp_path / "q", **options)
    consumer = store.open_consumer()
    pusher = FileDriver(tmp_path / "q", **options)
    for closable in (store, pusher, consumer):
        request.addfinalizer(closable.close)
    _blocked_fetch_gets(consumer, lambda: pusher.push(b"payload", ttr=60))


def test_file_a_push_through_the_same_store_wakes_its_consumer(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from queue_core.drivers.file import FileDriver
    store = FileDriver(tmp_path / "q", poll_interval=30.0)
    consumer = store.open_consumer()
    for closable in (store, consumer):
        request.addfinalizer(closable.close)
    _blocked_fetch_gets(consumer, lambda: store.push(b"payload", ttr=60))


def _a_manual_retry_wakes(store: Any, admin: Any, worker: Consumer, idle: Consumer) -> None:
    """A job failed by ``worker`` and retried through ``admin`` wakes ``idle``."""
    from queue_core.model import ErrorInfo, JobStatus
    message = _failed_run(store, worker)
    worker.fail(message, error=ErrorInfo("RuntimeError", "boom"))

    def retry() -> str:
        admin.retry(message.id, state=JobStatus.FAILED)
        return message.id
    _blocked_fetch_gets(idle, retry)


def _failed_run(store: Any, worker: Consumer) -> Message:
    """A job another worker ran and is about to settle."""
    job_id = store.push(b"payload", ttr=60)
    (message,) = worker.fetch(1, 1)
    assert message.id == job_id
    worker.begin(message)
    return message


def test_file_a_released_job_wakes_a_blocked_reserve(tmp_path: Path,
                                                     request: pytest.FixtureRequest) -> None:
    from queue_core.drivers.file import FileDriver
    store = FileDriver(tmp_path / "q", poll_interval=30.0)
    worker, idle = store.open_consumer(), store.open_consumer()
    for closable in (store, worker, idle):
        request.addfinalizer(closable.close)
    message = _failed_run(store, worker)

    def release() -> str:
        worker.release(message, delay=0, error=None)
        return message.id
    _blocked_fetch_gets(idle, release)


def test_file_a_retried_job_wakes_a_blocked_reserve(tmp_path: Path,
                                                    request: pytest.FixtureRequest) -> None:
    from queue_core.drivers.file import FileDriver

    store = FileDriver(tmp_path / "q", poll_interval=30.0)
    worker, idle = store.open_consumer(), store.open_consumer()
    admin = FileDriver(tmp_path / "q", poll_interval=30.0)  # the CLI, another process
    for closable in (store, admin, worker, idle):
        request.addfinalizer(closable.close)
    _a_manual_retry_wakes(store, admin, worker, idle)


def test_file_a_waiting_worker_keeps_the_queue_mode(tmp_path: Path) -> None:
    from queue_core.drivers.file import FileDriver
    with umask(0o077):
        driver = FileDriver(tmp_path / "q", mode=0o660)
        consumer = driver.open_consumer()
        _consumer_listening(consumer)
    wake = driver.root / "wake"
    (sock,) = _sockets(wake)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o660
    assert stat.S_IMODE(wake.stat().st_mode) == 0o770
    consumer.close()
    driver.close()
    assert _sockets(wake) == []


def test_file_a_delayed_job_is_reserved_when_due(tmp_path: Path) -> None:
    from queue_core.drivers.file import FileDriver
    store = FileDriver(tmp_path / "q", poll_interval=30.0)
    consumer = store.open_consumer()
    pusher = FileDriver(tmp_path / "q", poll_interval=30.0)
    _consumer_listening(consumer)
    job_id = pusher.push(b"later", ttr=60, delay=0.3)
    started = time.monotonic()
    (message,) = consumer.fetch(1, 10)
    assert message.id == job_id
    assert time.monotonic() - started < 5  # not the 30 s poll
    consumer.close()
    store.close()
    pusher.close()


def test_sqlite_a_push_wakes_a_blocked_reserve(tmp_path: Path,
                                               request: pytest.FixtureRequest) -> None:
    pytest.importorskip("sqlalchemy")
    from queue_core.drivers.db import DbDriver
    url = f"sqlite:///{tmp_path}/queue.db"
    options: dict[str, Any] = {"poll_interval": 1.0, "max_poll_interval": 30.0}
    pusher = DbDriver(url, **options)
    pusher.info()  # creates the table
    store = DbDriver(url, **options)
    consumer = store.open_consumer()
    for closable in (pusher, store, consumer):
        request.addfinalizer(closable.close)
    _blocked_fetch_gets(consumer, lambda: pusher.push(b"payload", ttr=60))
    assert _sockets(tmp_path / "queue.db.wake")


def _sqlite_store(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    pytest.importorskip("sqlalchemy")
    from queue_core.drivers.db import DbDriver
    store = DbDriver(f"sqlite:///{tmp_path}/queue.db", poll_interval=30.0,
                     max_poll_interval=30.0)
    request.addfinalizer(store.close)
    return store


@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_sqlite_a_released_job_wakes_a_blocked_reserve(tmp_path: Path, delay: float,
                                                       request: pytest.FixtureRequest) -> None:
    store = _sqlite_store(tmp_path, request)
    worker, idle = store.open_consumer(), store.open_consumer()
    for closable in (worker, idle):
        request.addfinalizer(closable.close)
    message = _failed_run(store, worker)

    def release() -> str:
        worker.release(message, delay=delay, error=None)
        return message.id
    _blocked_fetch_gets(idle, release)


def test_sqlite_a_retried_job_wakes_a_blocked_reserve(tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    store = _sqlite_store(tmp_path, request)
    admin = _sqlite_store(tmp_path, request)  # the CLI, another process
    worker, idle = store.open_consumer(), store.open_consumer()
    for closable in (worker, idle):
        request.addfinalizer(closable.close)
    _a_manual_retry_wakes(store, admin, worker, idle)


def test_sqlite_channels_have_their_own_sockets(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    from queue_core.drivers.db import DbDriver
    url = f"sqlite:///{tmp_path}/queue.db"
    first = DbDriver(url, channel="first")
    second = DbDriver(url, channel="second")
    consumers = [first.open_consumer(), second.open_consumer()]
    for consumer in consumers:
        _consumer_listening(consumer)
    names = sorted(path.name.partition("-")[0] for path in _sockets(tmp_path / "queue.db.wake"))
    assert len(names) == 2 and names[0] != names[1]
    for consumer in consumers:
        consumer.close()
    first.close()
    second.close()
    assert _sockets(tmp_path / "queue.db.wake") == []


def test_sqlite_in_memory_has_no_doorbell() -> None:
    pytest.importorskip("sqlalchemy")
    from queue_core.drivers.db import DbDriver
    driver = DbDriver("sqlite://")
    consumer: Any = driver.open_consumer()
    assert driver._doorbell is None and consumer._doorbell is None
    assert consumer.fetch(1, 0.05) == []
    consumer.close()
    driver.close()


def test_mysql_a_push_on_this_host_wakes_a_blocked_reserve(
        request: pytest.FixtureRequest) -> None:
    """MySQL has no LISTEN: a pusher on the same host rings the workers there."""
    import uuid

    from queue_core.drivers.db import DbDriver

    from tests.support.specs.db import MYSQL_URL, _reachable
    problem = _reachable(MYSQL_URL)
    if problem:
        pytest.skip(problem)
    channel = f"wake-{uuid.uuid4().hex[:8]}"
    options: dict[str, Any] = {"channel": channel, "poll_interval": 30.0,
                               "max_poll_interval": 30.0}
    pusher = DbDriver(MYSQL_URL, **options)
    store = DbDriver(MYSQL_URL, **options)
    consumer = store.open_consumer()
    request.addfinalizer(pusher.clear)
    for closable in (pusher, store, consumer):
        request.addfinalizer(closable.close)
    _consumer_listening(consumer)
    _blocked_fetch_gets(consumer, lambda: pusher.push(b"payload", ttr=60))
