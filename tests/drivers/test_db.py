"""DB driver specifics: a cut connection, LISTEN instead of polling, the table, URLs."""

from __future__ import annotations

import logging
import math
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from queue_core import ConfigError, DriverError, ErrorInfo, JobStatus, Queue, create_queue
from queue_core.cli import main
from queue_core.consumer import Settlement, Verdict
from queue_core.errors import InvalidArgumentError, JobNotInStateError
from tests.support.jobs import Record, Sleep, read_lines
from tests.support.procs import kill_group, queue_core, stop, wait_for
from tests.support.proxy import TcpProxy
from tests.support.specs.db import POSTGRESQL_URL, SPECS, _reachable

PG_DOWN = _reachable(POSTGRESQL_URL)
needs_pg = pytest.mark.skipif(bool(PG_DOWN), reason=str(PG_DOWN))


def pg_settings(url: str = POSTGRESQL_URL, **extra: Any) -> dict[str, Any]:
    return {"driver": {"url": url, "lease_grace": 0.5},
            "channel": f"t{uuid.uuid4().hex[:12]}", "imports": ["tests.support.jobs"], **extra}


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    made = TcpProxy("127.0.0.1", 5432)
    yield made
    made.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@needs_pg
def test_a_worker_survives_its_postgresql_connections_being_cut(proxy: TcpProxy, journal: str,
                                                               ) -> None:
    settings = pg_settings(url=f"postgresql://postgres@{proxy.address}/test", ttr=5,
                           attempts=3)
    queue = create_queue(settings)
    queue.push_many([Sleep(journal, f"s{index}", 0.05) for index in range(60)])
    worker = queue_core(settings, "listen", "--timeout", "0.2")
    try:
        wait_for(lambda: sum(line.startswith("end") for line in read_lines(journal)) >= 10,
                 30, "10 jobs")
        proxy.down()  # what a server restart looks like to every client
        time.sleep(1.5)
        assert worker.poll() is None
        proxy.up()
        wait_for(lambda: {line for line in read_lines(journal) if line.startswith("end")}
                 == {f"end s{index}" for index in range(60)}, 60, "every job after the cut")
        # ... and idle: the LISTEN connection was cut as well; a push must still wake it.
        proxy.cut()
        time.sleep(1.0)
        create_queue(settings).push(Record(journal, "after"))
        wait_for(lambda: "after" in read_lines(journal), 10, "a job pushed after the cut")
        code, _, err = stop(worker)
    finally:
        kill_group(worker)
    assert code == 0, err
    assert "cannot reach" in err and "reachable again" in err
    counts = create_queue(settings).info()
    assert counts[JobStatus.WAITING] == counts[JobStatus.RESERVED] == 0
    create_queue(settings).clear()


@needs_pg
def test_an_idle_postgresql_worker_listens_instead_of_polling(journal: str) -> None:
    import sqlalchemy
    # Commits are counted per database, so the worker gets a database of its own: other
    # suites running against `test` at the same time would add theirs.
    database = f"qc_idle_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(POSTGRESQL_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {database}")
    settings = pg_settings(url=POSTGRESQL_URL.rsplit("/", 1)[0] + "/" + database)

    def commits() -> int:
        with admin.connect() as conn:
            return int(conn.exec_driver_sql(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s",
                (database,)).scalar_one())

    create_queue(settings).info()  # the table exists before the worker starts
    worker = queue_core(settings, "listen", "--timeout", "3", stdout=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        before = commits()
        time.sleep(3.0)
        made = commits() - before
        # Polling every 50 ms would make hundreds; looking at the table every half second
        # (the worker's wait slice) made about 25. It looks every IDLE_RECHECK (5 s).
        assert made < 15, made
        pushed = time.monotonic()
        create_queue(settings).push(Record(journal, "wake"))
        wait_for(lambda: "wake" in read_lines(journal), 5, "the job")
        assert time.monotonic() - pushed < 0.3
        create_queue(settings).push(Record(journal, "later"), delay=1.0)
        pushed = time.monotonic()
        wait_for(lambda: "later" in read_lines(journal), 5, "the delayed job")
        assert 0.9 <= time.monotonic() - pushed < 1.6
    finally:
        stop(worker)
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {database} WITH (FORCE)")
        admin.dispose()


def test_an_idle_postgresql_worker_finds_a_job_whose_notification_was_lost(
        journal: str) -> None:
    from queue_core.drivers.db import IDLE_RECHECK
    settings = pg_settings()
    queue = create_queue(settings)
    queue.info()
    worker = queue_core(settings, "listen", "--timeout", "3", stdout=subprocess.DEVNULL)
    try:
        queue.push(Record(journal, "first"))  # the worker listens from here on
        wait_for(lambda: "first" in read_lines(journal), 10, "the first job")
        queue.driver._notify = lambda cursor: None  # type: ignore[method-assign]
        queue.push(Record(journal, "unannounced"))
        pushed = time.monotonic()
        wait_for(lambda: "unannounced" in read_lines(journal), IDLE_RECHECK + 5,
                 "the job pushed without a notification")
        assert time.monotonic() - pushed <= IDLE_RECHECK + 1.5
    finally:
        stop(worker)
        queue.clear()


def test_a_reserve_that_does_not_wait_looks_even_when_the_worker_is_idle(
        journal: str) -> None:
    queue = create_queue(pg_settings())
    consumer = queue.driver.open_consumer()
    try:
        assert consumer.fetch(1, 0.6) == []  # idle: it stops looking at the table
        queue.push(Record(journal, "x"))
        # A notification may still be on its way; ``run`` must not depend on it.
        (message,) = consumer.fetch(1, 0)
        consumer.ack(message)
    finally:
        consumer.close()
        queue.clear()


def test_a_push_while_the_database_is_down_raises(journal: str) -> None:
    queue = create_queue(pg_settings(url=f"postgresql://postgres@127.0.0.1:{_free_port()}/t"))
    with pytest.raises(DriverError, match="db postgresql.*connection failed"):
        queue.push(Record(journal, "x"))


def test_db_init_prints_the_schema_and_creates_the_table(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path}/q.db?table=jobs&create_table=false"
    assert main(["--app", url, "db", "init", "--sql"]) == 0
    printed = capsys.readouterr().out
    assert "CREATE TABLE jobs" in printed and "CREATE INDEX ix_jobs_next" in printed
    assert not (tmp_path / "q.db").exists() or (tmp_path / "q.db").stat().st_size == 0
    queue = create_queue(url)
    with pytest.raises(DriverError, match="no such table"):
        queue.push(Record(str(tmp_path / "j"), "x"))
    assert main(["--app", url, "db", "init"]) == 0
    assert queue.push(Record(str(tmp_path / "j"), "x")) is not None
    assert main(["--app", url, "db", "init"]) == 0  # again: nothing to do, no error
    assert main(["--app", f"file://{tmp_path}/f", "db", "init"]) == 2
    assert "keeps no table" in capsys.readouterr().err


def test_url_forms_options_and_secrets(tmp_path: Path) -> None:
    from queue_core.drivers.db import DbDriver
    driver = DbDriver.from_url("postgresql://u:s3cret@127.0.0.1:5432/test?table=jobs"
                               "&lease_grace=2&connect_timeout=3", channel="c")
    assert driver.engine.dialect.driver == "psycopg"
    assert driver.table == "jobs" and driver.lease_grace == 2.0
    assert "s3cret" not in driver.describe() and "s3cret" not in repr(driver)
    mysql = DbDriver.from_url("mysql://root@127.0.0.1/test")
    assert mysql.engine.dialect.driver == "pymysql"
    with pytest.raises(ConfigError) as caught:
        DbDriver(f"sqlite:///{tmp_path}/q.db", table="drop table;")
    assert caught.value.key == "driver.table"
    with pytest.raises(ConfigError) as caught:
        DbDriver.from_url(f"sqlite:///{tmp_path}/q.db?lease_grace=soon")
    assert caught.value.key == "driver.lease_grace"
    with pytest.raises(ConfigError, match="supports sqlite, postgresql"):
        DbDriver("oracle+oracledb://u@h/db")


def test_a_lease_taken_over_cannot_be_acked_by_its_old_worker(tmp_path: Path,
                                                              journal: str) -> None:
    settings = {"driver": {"url": f"sqlite:///{tmp_path}/q.db", "lease_grace": 0.1},
                "ttr": 0.2, "attempts": 3}
    first, second = create_queue(settings), create_queue(settings)
    old_worker, new_worker = first.consume(), second.consume()
    job_id = first.push(Record(journal, "x"))
    stale = old_worker.next(0)
    assert stale is not None
    time.sleep(0.5)  # its lease (ttr + grace) runs out
    taken = new_worker.next(0)
    assert taken is not None and taken.id == stale.id and taken.redelivered
    assert taken.attempt == 2
    old_worker.ack(stale)
    old_worker.flush()
    assert second.status(job_id) is JobStatus.RESERVED  # the stale ack changed nothing
    new_worker.ack(taken)
    new_worker.flush()
    assert second.status(job_id) is JobStatus.DONE  # not kept: gone
    old_worker.close()
    new_worker.close()


# -- what a row holds is read, never trusted -----------------------------------------------

DAMAGED = "queue_core.errors.DamagedJobError"


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Queue]]:
    """Queues on one fresh channel of the database named by the test's parameter."""
    spec = next(spec for spec in SPECS if spec.name == request.param)
    reason = spec.available()
    if reason:
        pytest.skip(f"{spec.name}: {reason}")
    channel = f"t{uuid.uuid4().hex[:12]}"
    made: list[Queue] = []

    def build(**extra: Any) -> Queue:
        settings = spec.settings(tmp_path, channel)
        settings.update(imports=["tests.support.jobs"], **extra)
        made.append(create_queue(settings))
        return made[-1]
    yield build
    for queue in made:
        try:
            queue.clear()
        finally:
            queue.close()


def _set(queue: Queue, job_id: str | None, column: str, value: Any) -> None:
    """What a hand-made UPDATE, a bad migration or another program leaves in a row."""
    from sqlalchemy import text
    driver: Any = queue.driver
    with driver.engine.begin() as conn:
        conn.execute(text(f"UPDATE {driver.sql.quote(driver.table)} SET {column} = :v "
                          "WHERE id = :id"), {"v": value, "id": int(str(job_id))})


@pytest.mark.parametrize("db", ["sqlite", "postgresql", "mysql"], indirect=True)
def test_a_row_with_an_unknown_status_is_reported_not_raised(
        db: Callable[..., Queue], journal: str, caplog: pytest.LogCaptureFixture) -> None:
    queue = db()
    bogus, first, second = (queue.push(Record(journal, tag)) for tag in ("x", "a", "b"))
    queue.push(Record(journal, "later"), delay=600)
    _set(queue, bogus, "status", "bogus")
    with caplog.at_level(logging.WARNING):
        counts = queue.info()  # what `queue-core info` calls
    assert counts == {JobStatus.WAITING: 2, JobStatus.DELAYED: 1, JobStatus.RESERVED: 0,
                      JobStatus.DONE: 0, JobStatus.FAILED: 0}
    warned = [r.getMessage() for r in caplog.records if "'bogus'" in r.getMessage()]
    assert len(warned) == 1 and "1 row " in warned[0] and f"ids: {bogus}" in warned[0]
    assert queue.status(str(bogus)) is JobStatus.FAILED
    info = queue.get(str(bogus))
    assert info.status is JobStatus.FAILED and info.job_name == "tests.support.jobs.Record"
    assert info.error is not None and info.error.type == "DamagedJobRecord"
    assert "'bogus'" in info.error.message
    assert [job.id for job in queue.jobs(JobStatus.WAITING)] == [first, second]
    assert queue.failed() == []
    with pytest.raises(JobNotInStateError, match="'bogus'"):
        queue.retry(str(bogus))
    assert queue.run() == 2 and read_lines(journal) == ["a", "b"]  # no worker moves it
    assert queue.remove(str(bogus)) is True
    assert queue.info()[JobStatus.WAITING] == 0


@pytest.mark.parametrize("db", ["mysql"], indirect=True)
def test_mysql_reads_a_status_as_its_collation_compares_it(db: Callable[..., Queue],
                                                           journal: str) -> None:
    queue = db()
    job_id = queue.push(Record(journal, "x"))
    _set(queue, job_id, "status", "WAITING ")  # what MySQL's own `status = 'waiting'` finds
    assert queue.status(str(job_id)) is JobStatus.WAITING
    assert queue.info()[JobStatus.WAITING] == 1
    assert queue.run() == 1 and read_lines(journal) == ["x"]


_EVERYWHERE = [("ttr", -5, "ttr"), ("ttr", 1e12, "ttr"), ("attempt", -5, "attempt"),
               ("attempt", 2**31 - 1, "attempt"), ("pushed_at", -1, "push time")]
_DAMAGES = {
    # SQLite stores whatever it is given in any column (NOT NULL aside).
    "sqlite": [("ttr", "abc", "ttr"), ("ttr", b"\x00", "ttr"), ("attempt", "x", "attempt"),
               ("attempt", 2.5, "attempt"), ("priority", "p", "priority"),
               ("pushed_at", "never", "push time"), ("payload", 42, "payload"),
               *_EVERYWHERE],
    "postgresql": [("ttr", math.nan, "ttr"), ("ttr", math.inf, "ttr"), *_EVERYWHERE],
    "mysql": _EVERYWHERE,
}
_CASES = [pytest.param(name, column, value, named, id=f"{name}-{column}-{value!r}")
          for name, damages in _DAMAGES.items() for column, value, named in damages]


@pytest.mark.parametrize(("db", "column", "value", "named"), _CASES, indirect=["db"])
def test_a_damaged_row_fails_instead_of_stalling(db: Callable[..., Queue], journal: str,
                                                 column: str, value: Any, named: str) -> None:
    queue = db(attempts=3)
    bad = queue.push(Record(journal, "bad"))
    _set(queue, bad, column, value)
    queue.push(Record(journal, "after"))
    # Admin calls read it as it is.
    assert queue.get(str(bad)).status is JobStatus.WAITING
    assert len(queue.jobs(JobStatus.WAITING)) == 2
    assert queue.info()[JobStatus.WAITING] == 2
    queue.run()  # returns: the row neither raises nor stays reserved
    assert read_lines(journal) == ["after"]
    info = queue.get(str(bad))
    assert info.status is JobStatus.FAILED
    assert info.error is not None and info.error.type == DAMAGED
    assert named in info.error.message
    assert queue.info() == {JobStatus.WAITING: 0, JobStatus.DELAYED: 0,
                            JobStatus.RESERVED: 0, JobStatus.DONE: 0, JobStatus.FAILED: 1}
    assert queue.run() == 0


@pytest.mark.parametrize(("db", "due"), [("sqlite", "soon"), ("postgresql", math.nan)],
                         indirect=["db"])
def test_an_idle_worker_waits_calmly_beside_a_row_that_never_comes_due(
        db: Callable[..., Queue], journal: str, due: Any) -> None:
    queue = db()
    _set(queue, queue.push(Record(journal, "x"), delay=60), "ready_at", due)
    consumer: Any = queue.driver.open_consumer()
    looks = 0
    look = consumer._reserve_once

    def counted(*args: Any) -> Any:
        nonlocal looks
        looks += 1
        return look(*args)
    consumer._reserve_once = counted
    assert consumer.fetch(1, 0.5) == []  # neither raises nor looks at the table in a loop
    assert looks < 20, looks
    consumer.close()


@pytest.mark.parametrize("db", ["sqlite", "postgresql", "mysql"], indirect=True)
def test_the_payload_limit_comes_from_the_server_once(db: Callable[..., Queue],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    queue = db()
    driver: Any = queue.driver
    reads: list[str] = []
    read = driver._read
    monkeypatch.setattr(driver, "_read", lambda sql, *rest: reads.append(sql) or read(sql, *rest))
    limit = driver.payload_limit()
    if driver.dialect == "mysql":
        packet = _max_allowed_packet(queue)
        assert limit == (packet - 1024) // 2  # hex doubles a payload; room for the INSERT
        assert driver.payload_limit() == limit and len(reads) == 1
    else:
        assert limit is None and reads == []


def _max_allowed_packet(queue: Queue) -> int:
    driver: Any = queue.driver
    with driver.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())


@pytest.mark.parametrize("db", ["mysql"], indirect=True)
def test_mysql_refuses_a_payload_its_server_would_drop(db: Callable[..., Queue],
                                                       journal: str) -> None:
    queue = db()
    packet = _max_allowed_packet(queue)
    huge = Record(journal, "huge", "x" * 100_000_000)
    with pytest.raises(InvalidArgumentError) as caught:
        queue.push(huge)
    assert f" {(packet - 1024) // 2} bytes" in str(caught.value)
    assert "max_allowed_packet" in str(caught.value)
    with pytest.raises(InvalidArgumentError, match=f"max_allowed_packet of {packet} bytes"):
        queue.driver.push(b"x" * packet, ttr=60)  # the driver itself, past the core's check
    with pytest.raises(InvalidArgumentError):
        queue.push_many([Record(journal, "small"), huge])
    assert sum(queue.info().values()) == 0
    assert queue.push(Record(journal, "fits")) is not None  # the connection is still good


@pytest.mark.parametrize("db", ["mysql"], indirect=True)
def test_mysql_push_many_keeps_each_insert_within_the_packet(db: Callable[..., Queue],
                                                             journal: str) -> None:
    queue = db()
    tags = [f"r{index}" for index in range(300)]
    ids = queue.push_many([Record(journal, tag, "y" * 100_000) for tag in tags])
    assert len(set(ids)) == 300
    assert queue.info()[JobStatus.WAITING] == 300
    assert queue.run() == 300
    assert sorted(read_lines(journal)) == sorted(tags)


# -- consumers: one per worker, each with its own connection and its own wait ---------------

@pytest.mark.parametrize("db", ["sqlite", "postgresql", "mysql"], indirect=True)
def test_consumers_of_one_store_work_in_threads_at_once(db: Callable[..., Queue],
                                                        journal: str) -> None:
    queue = db()
    ids = queue.push_many([Record(journal, f"j{index}") for index in range(60)])
    errors: list[BaseException] = []
    taken: list[list[str]] = [[], [], []]

    def work(mine: list[str]) -> None:
        consumption = queue.consume()
        try:
            while (message := consumption.next(0.3)) is not None:
                mine.append(message.id)
                consumption.ack(message)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
        finally:
            consumption.close()
    threads = [threading.Thread(target=work, args=(mine,)) for mine in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(sum(taken, [])) == sorted(ids)  # every job once, none twice
    counts = queue.info()
    assert counts[JobStatus.WAITING] == counts[JobStatus.RESERVED] == 0


@pytest.mark.parametrize("db", ["sqlite", "postgresql", "mysql"], indirect=True)
def test_settlements_handed_to_fetch_are_carried_out_before_it_reserves(
        db: Callable[..., Queue], journal: str) -> None:
    queue = db()
    first, second, third, fourth = (queue.push(Record(journal, tag))
                                    for tag in ("a", "b", "c", "d"))
    consumer = queue.driver.open_consumer()
    try:
        held = [consumer.fetch(1, 0)[0] for _ in range(3)]
        assert [m.id for m in held] == [first, second, third]
        (next_one,) = consumer.fetch(1, 0, settle=[
            Settlement(Verdict.RELEASE, held[0], delay=0.0,
                       error=ErrorInfo("Oops", "once")),
            Settlement(Verdict.FAIL, held[1], error=ErrorInfo("Bad", "for good"), keep=True),
            Settlement(Verdict.ACK, held[2], result=b'"c"', keep=True)])
        # The release made the first job ready again before the reserve: it runs next.
        assert next_one.id == first and next_one.attempt == 2
        assert queue.status(str(second)) is JobStatus.FAILED
        assert queue.get(str(second)).error == ErrorInfo("Bad", "for good")
        assert queue.status(str(third)) is JobStatus.DONE
        assert queue.status(str(fourth)) is JobStatus.WAITING
        (last,) = consumer.fetch(1, 0, settle=[Settlement(Verdict.ACK, next_one)])
        assert last.id == fourth and queue.driver.status(str(first)) is None  # acked: gone
        consumer.settle([Settlement(Verdict.ACK, last)])  # what close carries out
        assert queue.driver.status(str(fourth)) is None
    finally:
        consumer.close()


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_a_worker_keeps_its_ack_back_for_the_next_fetch(db: Callable[..., Queue],
                                                        journal: str) -> None:
    """The ack of a finished job travels with the next reserve (on PostgreSQL in the same
    statement), so a job costs one round trip; a clean stop saves the last one."""
    queue = db(keep_completed=True)
    first, second = (queue.push(Record(journal, tag)) for tag in ("a", "b"))
    consumption = queue.consume()
    message = consumption.next(0)
    assert message is not None and message.id == first
    consumption.ack(message, result=b'"a"', keep=True)
    assert queue.status(str(first)) is JobStatus.RESERVED  # not sent yet
    message = consumption.next(0)
    assert message is not None and message.id == second
    assert queue.status(str(first)) is JobStatus.DONE
    consumption.ack(message)
    consumption.close()
    assert queue.driver.status(str(second)) is None


def test_tables_made_before_unique_jobs_keep_working_and_gain_the_unique_table(
        tmp_path: Path) -> None:
    """A queue table and workers table made by an earlier version (no unique table):
    with create_table=false everything but a unique push works, and that push says what
    to run; with create_table (the default) the unique table is added, nothing altered."""
    import sqlite3

    from queue_core.drivers.db import DbDriver
    path = tmp_path / "q.db"
    DbDriver(f"sqlite:///{path}").create_table()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE queue_unique")
    journal = str(tmp_path / "j")
    old = create_queue(f"sqlite:///{path}?create_table=false")
    kept = old.push(Record(journal, "a"))
    assert old.run() == 1 and read_lines(journal) == ["a"]
    gone = old.push(Record(journal, "b"))
    assert old.remove(str(gone)) is True
    old.clear()
    with pytest.raises(DriverError, match="queue_unique.*queue-core db init.*nothing was queued"):
        old.push(Record(journal, "c"), unique_key="k")
    assert kept is not None
    new = create_queue(f"sqlite:///{path}")
    new.driver.create_table()  # type: ignore[attr-defined]  (what 'db init' does)
    # The queue that found no table finds it now, without a restart.
    assert old.push(Record(journal, "c"), unique_key="k2") is not None
    first = new.push(Record(journal, "d"), unique_key="k")
    assert new.push(Record(journal, "e"), unique_key="k") == first
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM queue_unique").fetchone() == (2,)
    new.close()
    old.close()


def test_a_table_made_before_the_marks_table_gains_it_untouched(tmp_path: Path,
                                                                journal: str) -> None:
    """The migration for cancellation and progress: the marks table is created beside a
    queue table made by an earlier version (whose rows and columns stay as they were); with
    create_table=False it is left to 'db init', and the queue works meanwhile."""
    from queue_core.drivers.db.beats import build_workers_table
    from queue_core.drivers.db.sql import build_table
    from sqlalchemy import create_engine, inspect
    url = f"sqlite:///{tmp_path}/old.db"
    engine = create_engine(url)
    for table in (build_table("queue"), build_workers_table("queue_workers")):
        table.metadata.create_all(engine)  # what an earlier version made
    columns = [c["name"] for c in inspect(engine).get_columns("queue")]
    engine.dispose()

    unmanaged = create_queue({"driver": f"{url}?create_table=false",
                              "imports": ["tests.support.jobs"]})
    old_job = unmanaged.push(Record(journal, "old"))
    assert unmanaged.get(old_job).progress is None  # no marks table: no progress, no error
    with pytest.raises(DriverError, match="queue_marks is missing; 'queue-core db init'"):
        unmanaged.cancel(old_job)
    unmanaged.run()
    assert read_lines(journal) == ["old"]
    unmanaged.close()

    queue = create_queue({"driver": url, "imports": ["tests.support.jobs"]})
    job_id = queue.push(Record(journal, "new"))
    assert queue.cancel(job_id) is True  # the marks table is made at first use
    engine = create_engine(url)
    assert inspect(engine).has_table("queue_marks")
    assert [c["name"] for c in inspect(engine).get_columns("queue")] == columns
    engine.dispose()
    assert queue.get(job_id).error.type == "queue_core.errors.JobCancelledError"
    assert main(["--app", url, "db", "init"]) == 0  # again: nothing to do


def test_db_init_prints_the_marks_table(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/q.db?table=jobs&create_table=false"
    assert main(["--app", url, "db", "init", "--sql"]) == 0
    assert "CREATE TABLE jobs_marks" in capsys.readouterr().out
