"""The DB driver's SQLAlchemy engine: made from a URL with the DB-API modules the `db`
extra installs, its connections set up per dialect and tested after they sat idle; the
dialects the driver supports, and how a database error reads in a message."""

from __future__ import annotations

import time
from typing import Any

from queue_core.errors import ConfigError
from queue_core.options import redact_url

IDLE_PING = 1.0
"""Seconds a pooled connection may sit unused before it is tested on checkout (a server
restart in between leaves it dead); one in use more often goes without the round trip."""


def make_engine(url: str, options: dict[str, Any]) -> Any:
    import sqlalchemy
    from sqlalchemy import event
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError as exc:
        raise ConfigError(f"db URL {redact_url(url)!r}: {exc}", key="driver") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql", "postgres", "mysql", "mariadb"):
        raise ConfigError(f"the db driver supports sqlite, postgresql and mysql/mariadb, not "
                          f"{backend}", key="driver")
    drivers = {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}
    if backend in drivers and "+" not in parsed.drivername:
        # The DB-API modules the `db` extra installs, whatever SQLAlchemy's own default.
        parsed = parsed.set(drivername=f"{backend}+{drivers[backend]}")
    if backend == "postgres":
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend in ("mysql", "mariadb"):
        # Pooled connections autocommit (a push is then one round trip) and every
        # transaction of the driver begins and ends explicitly, so nothing is left open
        # for a rollback on return to close.
        options.setdefault("pool_reset_on_return", None)
    if backend == "sqlite":
        options.setdefault("connect_args", {}).setdefault("timeout", 30.0)
        options.setdefault("connect_args", {}).setdefault("check_same_thread", False)
    try:
        engine = sqlalchemy.create_engine(parsed, **options)
    except (sqlalchemy.exc.ArgumentError, TypeError, ImportError) as exc:
        raise ConfigError(f"db URL {redact_url(url)!r}: {exc}", key="driver") from None
    if not options.get("pool_pre_ping"):
        _ping_after_idle(engine)
    if engine.dialect.name in ("mysql", "mariadb"):
        @event.listens_for(engine, "connect")
        def _mysql_connect(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.autocommit(True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
            # We issue BEGIN IMMEDIATE ourselves; pysqlite's own BEGIN would be deferred.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            _switch_to_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
    return engine


WAL_TRIES = 100
"""Attempts, 0.1 s apart, to switch a new SQLite connection to WAL."""


def _switch_to_wal(cursor: Any) -> None:
    """Switch to WAL. The switch needs the database to itself and does not wait for a busy
    one: a process opening a new database file while another creates its tables (a
    worker and a producer starting together) gets 'database is locked' at once, so the
    switch is tried again for a while."""
    import sqlite3
    for attempt in range(WAL_TRIES):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_TRIES - 1:
                raise
            time.sleep(0.1)


def _ping_after_idle(engine: Any) -> None:
    """Test a pooled connection on checkout when it sat unused for over IDLE_PING seconds:
    a dead one is replaced before the driver's statement meets it (what pool_pre_ping does
    on every checkout, at a round trip each)."""
    import sqlalchemy
    from sqlalchemy import event

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure means the connection is gone
            raise sqlalchemy.exc.DisconnectionError(str(exc)) from exc
        if alive is False:
            raise sqlalchemy.exc.DisconnectionError("the connection did not answer a ping")


def supported_dialect(engine: Any) -> str:
    """The name of ``engine``'s dialect, refused unless the driver supports it (an engine
    given ready-made did not pass through make_engine's check)."""
    dialect: str = engine.dialect.name
    if dialect not in ("sqlite", "postgresql", "mysql", "mariadb"):
        raise ConfigError(f"the db driver supports sqlite, postgresql and mysql/mariadb, "
                          f"not {dialect}", key="driver")
    return dialect


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
