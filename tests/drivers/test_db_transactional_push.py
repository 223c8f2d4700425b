"""push(connection=...) on the DB driver: the job row is written in the caller's own
transaction (SQLAlchemy Connection, Session, DB-API connection) on SQLite, PostgreSQL and
MariaDB: a rollback leaves no job, a commit runs it; a connection to another database is
refused before anything is written."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from queue_core import JobStatus, NotSupportedError, Queue, create_queue
from queue_core.errors import InvalidArgumentError, JobNotFoundError
from tests.drivers.test_db import db  # noqa: F401 - the fixture
from tests.support.jobs import Record, read_lines

DATABASES = ["sqlite", "postgresql", "mysql"]


@pytest.fixture
def app_engine(db: Callable[..., Queue]) -> Iterator[tuple[Queue, Any, str]]:  # noqa: F811
    """The queue, and the application's own engine on the same database with a table of
    its own (what a web app writes in the transaction that pushes the job)."""
    import sqlalchemy
    queue = db()
    engine = sqlalchemy.create_engine(queue.driver.engine.url)  # type: ignore[attr-defined]
    table = f"orders_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, note TEXT)")
    yield queue, engine, table
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {table}")
    engine.dispose()


def _rows(engine: Any, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar())


def _queued(queue: Queue, engine: Any) -> int:
    """The queue's rows of its channel, read on a connection of its own (on SQLite the
    queue's own reads would wait for the write lock the open transaction holds)."""
    driver: Any = queue.driver
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(
            f"SELECT count(*) FROM {driver.sql.quote(driver.table)} WHERE channel = "
            f"'{driver.channel}'").scalar())


def _gone(queue: Queue, job_id: str | None) -> bool:
    try:
        queue.get(str(job_id))
    except JobNotFoundError:
        return True
    return False


@pytest.mark.parametrize("db", DATABASES, indirect=True)
def test_a_push_on_an_sqlalchemy_connection_commits_and_rolls_back_with_it(
        app_engine: tuple[Queue, Any, str], journal: str) -> None:
    queue, engine, table = app_engine
    with engine.connect() as conn:
        conn.exec_driver_sql(f"INSERT INTO {table} (id, note) VALUES (1, 'lost')")
        lost = queue.push(Record(journal, "lost"), connection=conn)
        assert lost is not None
        conn.rollback()
    assert _rows(engine, table) == 0
    assert _gone(queue, lost)
    assert queue.run() == 0

    with engine.connect() as conn:
        conn.exec_driver_sql(f"INSERT INTO {table} (id, note) VALUES (2, 'kept')")
        kept = queue.push(Record(journal, "kept"), connection=conn)
        assert _queued(queue, engine) == 0  # not visible before the commit
        conn.commit()
    assert _queued(queue, engine) == 1
    assert queue.status(str(kept)) is JobStatus.WAITING
    assert queue.run() == 1
    assert read_lines(journal) == ["kept"]
    assert _rows(engine, table) == 1


@pytest.mark.parametrize("db", DATABASES, indirect=True)
def test_push_many_on_a_session_commits_and_rolls_back_with_it(
        app_engine: tuple[Queue, Any, str], journal: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.orm import Session
    queue, engine, table = app_engine
    with Session(engine) as session:
        session.execute(text(f"INSERT INTO {table} (id, note) VALUES (1, 'lost')"))
        lost = queue.push_many([Record(journal, f"lost{i}") for i in range(3)],
                               connection=session)
        assert len(lost) == 3
        session.rollback()
        assert all(_gone(queue, job_id) for job_id in lost)
        session.execute(text(f"INSERT INTO {table} (id, note) VALUES (2, 'kept')"))
        kept = queue.push_many([Record(journal, f"kept{i}") for i in range(3)], delay=0,
                               connection=session)
        session.commit()
    assert len(set(kept)) == 3
    assert queue.run() == 3
    assert sorted(read_lines(journal)) == ["kept0", "kept1", "kept2"]
    assert _rows(engine, table) == 1


@pytest.mark.parametrize("db", DATABASES, indirect=True)
def test_a_push_on_a_dbapi_connection_is_in_its_transaction(
        app_engine: tuple[Queue, Any, str], journal: str) -> None:
    queue, engine, table = app_engine
    pooled = engine.raw_connection()
    try:
        raw = pooled.driver_connection
        if queue.driver.dialect == "sqlite":  # type: ignore[attr-defined]
            raw.isolation_level = ""  # sqlite3 begins before the first write
        lost = queue.push(Record(journal, "lost"), connection=raw)
        raw.rollback()
        assert _gone(queue, lost)
        kept = queue.push(Record(journal, "kept"), connection=raw)
        raw.commit()
    finally:
        pooled.close()
    assert queue.status(str(kept)) is JobStatus.WAITING
    assert queue.run() == 1
    assert read_lines(journal) == ["kept"]


def test_a_scoped_session_pushes_in_its_current_session(tmp_path: Path, journal: str) -> None:
    import sqlalchemy
    from sqlalchemy.orm import scoped_session, sessionmaker
    queue = create_queue({"driver": f"sqlite:///{tmp_path}/queue.db",
                          "imports": ["tests.support.jobs"]})
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/queue.db")
    session = scoped_session(sessionmaker(engine))
    try:
        lost = queue.push(Record(journal, "lost"), connection=session)
        session.rollback()
        assert _gone(queue, lost)
        kept = queue.push(Record(journal, "kept"), connection=session)
        session.commit()
        assert queue.status(str(kept)) is JobStatus.WAITING
        assert queue.run() == 1
        assert read_lines(journal) == ["kept"]
    finally:
        session.remove()
        engine.dispose()
        queue.close()


def test_a_connection_to_another_database_is_refused(tmp_path: Path, journal: str) -> None:
    import sqlalchemy
    queue = create_queue({"driver": f"sqlite:///{tmp_path}/queue.db",
                          "imports": ["tests.support.jobs"]})
    other = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/app.db")
    try:
        with other.connect() as conn, pytest.raises(InvalidArgumentError,
                                                    match="not the queue's"):
            queue.push(Record(journal, "x"), connection=conn)
        assert not (tmp_path / "app.db").exists() or _no_queue_table(other)
        assert queue.info()[JobStatus.WAITING] == 0
    finally:
        other.dispose()
        queue.close()


def _no_queue_table(engine: Any) -> bool:
    import sqlalchemy
    return not sqlalchemy.inspect(engine).has_table("queue")


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_postgresql_connection_to_another_database_is_refused(
        db: Callable[..., Queue], journal: str) -> None:  # noqa: F811
    import sqlalchemy
    queue = db()
    other = sqlalchemy.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    try:
        with other.connect() as conn, pytest.raises(InvalidArgumentError,
                                                    match="'postgres'.*not the queue's 'test'"):
            queue.push(Record(journal, "x"), connection=conn)
    finally:
        other.dispose()
    assert queue.info()[JobStatus.WAITING] == 0


def test_what_cannot_be_pushed_in_a_transaction_says_why(tmp_path: Path, journal: str) -> None:
    import sqlalchemy
    queue = create_queue({"driver": f"sqlite:///{tmp_path}/queue.db",
                          "imports": ["tests.support.jobs"]})
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/queue.db")
    try:
        with engine.connect() as conn:
            with pytest.raises(NotSupportedError, match="unique key"):
                queue.push(Record(journal, "x"), unique_key="k", connection=conn)
            with pytest.raises(InvalidArgumentError, match="takes an SQLAlchemy Session"):
                queue.push(Record(journal, "x"), connection=object())
        assert queue.info()[JobStatus.WAITING] == 0
    finally:
        engine.dispose()
        queue.close()
