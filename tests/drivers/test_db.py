"""DB driver specifics: a cut connection, LISTEN instead of polling, the table, URLs."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from queue_core import ConfigError, DriverError, JobStatus, create_queue
from queue_core.cli import main
from tests.support.jobs import Record, Sleep, read_lines
from tests.support.procs import kill_group, queue_core, stop, wait_for
from tests.support.proxy import TcpProxy
from tests.support.specs.db import POSTGRESQL_URL, _reachable

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
    from drivers.db import IDLE_RECHECK
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
    try:
        assert queue.driver.reserve(0.6) is None  # idle: it stops looking at the table
        queue.push(Record(journal, "x"))
        # A notification may still be on its way; ``run`` must not depend on it.
        message = queue.driver.reserve(0)
        assert message is not None
        queue.driver.ack(message)
    finally:
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
    from drivers.db import DbDriver
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
    job_id = first.push(Record(journal, "x"))
    stale = first.driver.reserve()
    assert stale is not None
    time.sleep(0.5)  # its lease (ttr + grace) runs out
    taken = second.driver.reserve()
    assert taken is not None and taken.id == stale.id and taken.redelivered
    assert taken.attempt == 2
    first.driver.ack(stale)
    first.driver.flush()
    assert second.status(job_id) is JobStatus.RESERVED  # the stale ack changed nothing
    second.driver.ack(taken)
    second.driver.flush()
    assert second.status(job_id) is JobStatus.DONE  # not kept: gone
