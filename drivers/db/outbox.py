"""Pushes in the caller's transaction (the outbox pattern): the DB driver writes the job
rows with the caller's own connection, so they commit or roll back with the caller's work.

The caller gives an SQLAlchemy ``Session`` (or ``scoped_session``) or ``Connection``, a
DB-API connection, or a
Django connection (``django.db.connection``, recognised by shape: nothing here imports
Django). Whatever it is, it must reach the queue's own database: a push to any other would
be lost with no error, so where the connection tells which database it reaches, a
mismatch is refused before anything is written."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from queue_core.errors import InvalidArgumentError

FAMILIES = {
    "sqlite3": "sqlite",
    "psycopg": "postgresql",
    "psycopg2": "postgresql",
    "pymysql": "mysql",
    "MySQLdb": "mysql",
}
"""The DB-API modules a raw connection may come from, and the dialect each speaks."""


@dataclass
class CallerConnection:
    """One caller's connection, ready for the driver's statements."""

    execute: Callable[[str, dict[str, Any]], Any]
    """Runs a statement in the caller's transaction; returns what has ``fetchall()`` and
    ``lastrowid``."""
    paramstyle: str
    dialect: str
    where: tuple[str, str] | None
    """(host and port, database) it reaches, or None where the connection does not say
    without a round trip."""
    on_commit: Callable[[Callable[[], None]], None] | None
    """Registers a call after the caller's transaction commits (and drops it on a
    rollback), where the connection can say when that happens."""


def adapt(connection: Any) -> CallerConnection:
    """``connection`` as a CallerConnection; InvalidArgumentError for anything else."""
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session, scoped_session

    if isinstance(connection, scoped_session):
        # (Flask-SQLAlchemy's db.session: the session of the current scope.)
        connection = connection()
    if isinstance(connection, Session):
        return _of_sqlalchemy(connection.connection(), _session_hook(connection))
    if isinstance(connection, Connection):
        # (SQLAlchemy tells a Connection's commit before it happens, not after: an idle
        # worker woken then would find nothing; it finds the job at its next poll.)
        return _of_sqlalchemy(connection, None)
    if _is_django_connection(connection):
        connection.ensure_connection()
        return _of_dbapi(connection.connection, _django_hook(connection))
    if callable(getattr(connection, "cursor", None)) and _dbapi_module(connection) is not None:
        return _of_dbapi(connection, None)
    raise InvalidArgumentError(
        f"push(connection=...) takes an SQLAlchemy Session or Connection, a DB-API "
        f"connection of {', '.join(FAMILIES)}, or a Django connection; got "
        f"{type(connection).__module__}.{type(connection).__qualname__}")


def _is_django_connection(connection: Any) -> bool:
    return all(hasattr(connection, name)
               for name in ("ensure_connection", "on_commit", "vendor", "settings_dict"))


def _dbapi_module(raw: Any) -> Any:
    """The DB-API module (of FAMILIES) that ``raw``'s class comes from, or None."""
    import sys
    for klass in type(raw).__mro__:
        top = klass.__module__.split(".")[0]
        if top in FAMILIES:
            return sys.modules[top]
    return None


def _of_sqlalchemy(connection: Any, on_commit: Callable[[Callable[[], None]], None] | None,
                   ) -> CallerConnection:
    url = connection.engine.url
    dialect = connection.dialect.name
    if dialect == "sqlite":
        where = ("", _sqlite_path(url.database))
    else:
        where = (f"{url.host or 'localhost'}:{url.port or ''}", url.database or "")
    return CallerConnection(connection.exec_driver_sql, connection.dialect.paramstyle,
                            dialect, where, on_commit)


def _of_dbapi(raw: Any, on_commit: Callable[[Callable[[], None]], None] | None,
              ) -> CallerConnection:
    module = _dbapi_module(raw)
    if module is None:
        raise InvalidArgumentError(
            f"push(connection=...): a DB-API connection of {type(raw).__module__} is not one "
            f"the db driver speaks ({', '.join(FAMILIES)})")
    family, paramstyle = FAMILIES[module.__name__], module.paramstyle

    def execute(statement: str, params: dict[str, Any]) -> Any:
        cursor = raw.cursor()
        cursor.execute(statement, params)
        return cursor

    return CallerConnection(execute, paramstyle, family, _dbapi_where(raw, family), on_commit)


def _dbapi_where(raw: Any, family: str) -> tuple[str, str] | None:
    if family == "sqlite":
        cursor = raw.cursor()
        try:
            # (In process, no round trip: the file of the connection's main database.)
            for _seq, name, path in cursor.execute("PRAGMA database_list"):
                if name == "main":
                    return ("", _sqlite_path(path))
        finally:
            cursor.close()
        return None
    if family == "postgresql":
        info = getattr(raw, "info", None)
        if info is not None and hasattr(info, "dbname"):
            host = info.host if not str(info.host).startswith("/") else "localhost"
            return (f"{host}:{info.port}", info.dbname)
        return None
    host, port, database = (getattr(raw, name, None) for name in ("host", "port", "db"))
    if isinstance(database, bytes):
        database = database.decode(errors="replace")
    if host is None or database is None:
        return None
    return (f"{host}:{port}", str(database))


def _sqlite_path(database: str | None) -> str:
    if not database or database == ":memory:":
        return ":memory:"
    return os.path.realpath(database)


def url_where(url: Any) -> tuple[str, str]:
    """The (host and port, database) of the queue's own engine URL, as adapt() reports a
    caller's."""
    if url.get_backend_name() == "sqlite":
        return ("", _sqlite_path(url.database))
    return (f"{url.host or 'localhost'}:{url.port or ''}", url.database or "")


def same_place(caller: tuple[str, str], ours: tuple[str, str]) -> bool:
    """Whether two (host and port, database) pairs name one database: the database names
    must match; hosts are compared only when both name a port (an engine URL may leave
    the default port out, and 'localhost' and 127.0.0.1 are the same server)."""
    if caller[1] != ours[1]:
        return False
    caller_host, _, caller_port = caller[0].rpartition(":")
    our_host, _, our_port = ours[0].rpartition(":")
    if caller_port and our_port and caller_port != our_port:
        return False
    local = {"localhost", "127.0.0.1", "::1", ""}
    if caller_host in local and our_host in local:
        return True
    return caller_host == our_host


# -- after commit: same-host idle workers are woken once the caller commits --------------

_PENDING: weakref.WeakKeyDictionary[Any, list[Callable[[], None]]] = \
    weakref.WeakKeyDictionary()
"""Per caller Session or Connection: what to call when its transaction commits."""
_HOOKED: weakref.WeakSet[Any] = weakref.WeakSet()
_LOCK = threading.Lock()


def _run_pending(target: Any) -> None:
    with _LOCK:
        calls = _PENDING.pop(target, [])
    for call in calls:
        call()


def _drop_pending(target: Any) -> None:
    with _LOCK:
        _PENDING.pop(target, None)


def _hook(target: Any, commit_event: str, rollback_event: str) -> Callable[
        [Callable[[], None]], None]:
    from sqlalchemy import event

    def register(call: Callable[[], None]) -> None:
        with _LOCK:
            if target not in _HOOKED:
                # Once per Session or Connection, not per push: listeners stay for the
                # object's life.
                event.listen(target, commit_event, lambda *_: _run_pending(target))
                event.listen(target, rollback_event, lambda *_: _drop_pending(target))
                _HOOKED.add(target)
            calls = _PENDING.setdefault(target, [])
            if call not in calls:
                calls.append(call)

    return register


def _session_hook(session: Any) -> Callable[[Callable[[], None]], None]:
    return _hook(session, "after_commit", "after_rollback")


def _django_hook(connection: Any) -> Callable[[Callable[[], None]], None]:
    def register(call: Callable[[], None]) -> None:
        try:
            connection.on_commit(call)
        except Exception:  # noqa: BLE001 - manual transaction management: workers poll
            pass

    return register
