"""``DbDriver``, the DB driver's store: pushes, lookups and admin, each a short transaction
on a pooled connection, and the table created on first use. Each worker opens a consumer
(consumer.py) with a connection of its own."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlencode

from queue_core import beats, progress
from queue_core.consumer import Consumer
from queue_core.errors import (
    ConfigError,
    DriverError,
    InvalidArgumentError,
    JobNotFoundError,
    JobNotInStateError,
)
from queue_core.limits import Limiter
from queue_core.model import (
    DEFAULT_PRIORITY,
    UNREADABLE,
    Capabilities,
    ErrorInfo,
    JobInfo,
    JobStatus,
    Progress,
    PushRequest,
    WorkerInfo,
)
from queue_core.options import check_options, documented, redact_url, url_and_options
from queue_core.records import as_bytes, as_int, as_time
from queue_core.store import Store

from ..local_wakeup import Doorbell, doorbell_beside, doorbell_on_host
from . import cli, outbox
from .beats import BeatSql, build_workers_table, workers_table_name
from .consumer import DbConsumer
from .engine import first_line, make_engine, supported_dialect
from .limits import DbLimiter, LimitSql, build_limits_table, limits_table_name
from .marks import MarkSql, build_marks_table, marks_table_name
from .options import DBAPI_URL_OPTIONS, OPTIONS
from .sql import Sql, build_table, ddl
from .unique import UniqueSql, build_unique_table, unique_table_name

logger = logging.getLogger(__name__)

_SQLITE_FORK_GUARD = threading.RLock()
"""Held by every SQLite transaction of this process, and by a fork while it happens: a
child forked while another thread is inside a transaction inherits SQLite's in-process
lock records of that connection, which it never releases, so its own writes stay
'database is locked' (an isolated job's progress, written from a forked child)."""
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_SQLITE_FORK_GUARD.acquire,
                        after_in_parent=_SQLITE_FORK_GUARD.release,
                        after_in_child=_SQLITE_FORK_GUARD.release)

T = TypeVar("T")
INSERT_CHUNK = 500
"""Rows per INSERT in push_many (SQLite allows 32,766 parameters per statement)."""
PACKET_HEAD = 512
"""Bytes of a MySQL INSERT before its rows, with room to spare (table name included)."""
PACKET_ROW = 512
"""Bytes of one row of that INSERT besides twice its payload (PyMySQL sends a payload
as hex; a client that escapes it instead needs at most as much)."""
_STATUSES = {status.value: status for status in JobStatus}
PURGE_EVERY = 10
MARKS_PURGE_EVERY = 100
"""Mark writes of one process between two purges of the marks of jobs that are gone."""
"""Beats of one process between two deletes of the records of workers long gone."""
UNIQUE_TRIES = 8
"""Transactions a push with unique keys tries: one loses to a concurrent push of the same
key (a conflict on the key, a deadlock on MySQL) and is tried again, finding the holder."""
UNIQUE_PURGE_EVERY = 200
"""Unique pushes of one process between two deletes of the keys no longer held."""


@documented(OPTIONS)
class DbDriver(Store):
    """Jobs in one table of SQLite, PostgreSQL or MySQL/MariaDB, through SQLAlchemy Core.

    The URL's query string takes the options below; the database client's own
    (``sslmode``, ``charset``, ...) stay in the URL the client reads."""

    name = "db"
    options = OPTIONS
    cli_commands = cli.COMMANDS
    capabilities = Capabilities(
        delay=True, priority=True, priority_range=(-(2**31), 2**31 - 1), ttr_lease=True,
        retry=True, attempt_count=True, status=True, failed_store=True, last_error=True,
        keep_completed=True, retention=True, manual_retry=True, remove=True, clear=True,
        info=True, listing=frozenset(JobStatus), reset_attempts=True, bulk_push=True,
        heartbeats=True, waiting_age=True, unique=True, rate_limit=True, cancel=True, progress=True,
        transactional_push=True)

    def __init__(self, url_or_engine: Any = "sqlite:///queue.db", *, channel: str = "queue",
                 table: str = "queue", create_table: bool = True, lease_grace: float = 1.0,
                 poll_interval: float = 0.05, max_poll_interval: float = 1.0,
                 **engine_options: Any) -> None:
        super().__init__(channel=channel)
        try:
            import sqlalchemy
        except ImportError:
            raise ConfigError("the db driver needs SQLAlchemy: pip install 'queue-core[db]'",
                              key="driver") from None
        checked = check_options(self.name, self.options, {
            "table": table, "create_table": create_table, "lease_grace": lease_grace,
            "poll_interval": poll_interval, "max_poll_interval": max_poll_interval})
        engine_options = check_options(self.name, self.options, engine_options)
        self.table: str = checked["table"]
        self.lease_grace = checked["lease_grace"]
        self.poll_interval: float = checked["poll_interval"]
        self.max_poll_interval = max(checked["max_poll_interval"], self.poll_interval)
        if isinstance(url_or_engine, sqlalchemy.engine.Engine):
            if engine_options:
                raise ConfigError("engine options cannot be given with an engine",
                                  key="driver")
            self.engine = url_or_engine
        elif isinstance(url_or_engine, str):
            self.engine = make_engine(url_or_engine, engine_options)
        else:
            raise ConfigError(f"the db driver takes a URL or an SQLAlchemy Engine, got "
                              f"{type(url_or_engine).__name__}", key="driver")
        self.dialect = supported_dialect(self.engine)
        dbapi: Any = self.engine.dialect.dbapi
        self._errors: tuple[type[BaseException], ...] = (dbapi.Error, OSError)
        self._dbapi = dbapi
        self.sql = Sql(self.dialect, table, dbapi.paramstyle)
        self.workers_table = workers_table_name(table)
        """Heartbeat records (drivers/db/beats.py), created with the queue table."""
        self._beat_sql = BeatSql(Sql(self.dialect, self.workers_table, dbapi.paramstyle))
        self._beats = 0
        self.unique_table = unique_table_name(table)
        """Unique keys (drivers/db/unique.py), created with the queue table."""
        self._unique_sql = UniqueSql(Sql(self.dialect, self.unique_table, dbapi.paramstyle),
                                     table)
        self._unique_pushes = 0
        self._unique_exists: bool | None = None
        self.limits_table = limits_table_name(table)
        """Rate limits' states (drivers/db/limits.py), created with the queue table."""
        self._limit_sql = LimitSql(Sql(self.dialect, self.limits_table, dbapi.paramstyle))
        self.marks_table = marks_table_name(table)
        """Cancel marks and progress (drivers/db/marks.py), created with the queue table."""
        self._mark_sql = MarkSql(Sql(self.dialect, self.marks_table, dbapi.paramstyle),
                                 self.sql)
        self._marks_there: bool | None = None
        self._marks = 0
        self._insert_returning = self.dialect in ("postgresql", "sqlite") or bool(
            getattr(self.engine.dialect, "insert_returning", False))
        self._mysql = self.dialect in ("mysql", "mariadb")
        if self._mysql:
            self.payload_limit_setting = "half the server's max_allowed_packet: a payload " \
                "travels hex-encoded"
        self._max_packet: int | None = None
        self._create_table = bool(create_table)
        self._table_ready = False
        self._table_lock = threading.Lock()
        self.notify_channel = _notify_name(table, channel)
        # SQLite has no LISTEN: idle consumers wait on a same-host doorbell next to the
        # database file, which pushes, releases and retries ring once committed. The
        # store's own only rings; each consumer binds one to wait on.
        self._doorbell = self.doorbell()
        self._caller_sql: dict[str, Sql] = {}
        """The statements in the parameter style of a caller's connection (push_in)."""

    @classmethod
    def from_url(cls, url: str, **given: Any) -> DbDriver:
        base, values = url_and_options(cls.name, cls.options, url, given)
        kept = {key: values.pop(key) for key in DBAPI_URL_OPTIONS if key in values}
        return cls(f"{base}?{urlencode(kept)}" if kept else base, **values)

    def describe(self) -> str:
        return (f"{redact_url(self.engine.url.render_as_string(hide_password=False))} "
                f"table {self.table} channel {self.channel}")

    def open_consumer(self) -> Consumer:
        return DbConsumer(self)

    def limiter(self) -> Limiter:
        return DbLimiter(self, self._limit_sql)

    def doorbell(self) -> Doorbell | None:
        """A new doorbell of this table and channel: next to an SQLite file, or on this
        host for MySQL (which has no LISTEN; workers on other hosts poll)."""
        topic = f"{self.table}\0{self.channel}"
        if self.dialect == "sqlite":
            return doorbell_beside(self.engine.url.database, topic)
        if self.dialect == "mysql":
            url = self.engine.url
            return doorbell_on_host(f"{url.host}:{url.port}/{url.database}", topic)
        return None

    def ring(self) -> None:
        """Wake this channel's idle consumers on this host after a commit that made a job
        ready."""
        if self._doorbell is not None:
            self._doorbell.ring()

    # -- schema ------------------------------------------------------------------------

    def ddl(self) -> list[str]:
        """The statements that create the table and its indexes on this database, and the
        table of worker heartbeats."""
        return [statement for table in self._tables()
                for statement in ddl(table, self.engine.dialect)]

    def _tables(self) -> list[Any]:
        return [build_table(self.table), build_workers_table(self.workers_table),
                build_unique_table(self.unique_table), build_limits_table(self.limits_table),
                build_marks_table(self.marks_table)]

    def create_table(self) -> None:
        """Create the table and its indexes unless they exist (what ``db init`` does), and
        the tables beside it: worker heartbeats, unique keys, rate limits and job marks
        (each one missing is created, so a queue made by an earlier version gains them,
        its own table untouched)."""
        for table in self._tables():
            try:
                table.metadata.create_all(self.engine, checkfirst=True)
            except self._sa_errors() as exc:
                # Two processes creating it at the same moment: the loser finds it there.
                from sqlalchemy import inspect
                try:
                    if inspect(self.engine).has_table(table.name):
                        continue
                except self._sa_errors():
                    pass
                if table.name == self.unique_table:
                    # Added after the first release: a database user allowed to use the
                    # queue's tables but not to create one must not lose the queue over
                    # it. Only unique pushes need it, and they say so.
                    logger.warning("db %s: cannot create the table %s, which holds unique "
                                   "keys (%s); pushes with a unique key will fail until "
                                   "'queue-core db init' creates it", self.describe(),
                                   table.name, first_line(exc))
                    self._unique_exists = False
                    continue
                raise DriverError(f"db {self.describe()}: cannot create the table "
                                  f"{table.name}: {first_line(exc)}") from exc

    def has_unique_table(self) -> bool:
        """Whether the table of unique keys exists (made with the queue table; a table
        created by hand from an older version's DDL lacks it until ``db init`` runs).
        Without it, remove, clear and settles leave it alone, and a unique push says so."""
        if self._unique_exists is None:
            self._ensure_table()
            if self._create_table and self._unique_exists is None:
                self._unique_exists = True
            else:
                from sqlalchemy import inspect
                try:
                    self._unique_exists = bool(inspect(self.engine).has_table(
                        self.unique_table))
                except self._sa_errors() as exc:
                    raise DriverError(f"db {self.describe()}: {first_line(exc)}") from exc
        return self._unique_exists

    def _unique_table_made_since(self) -> bool:
        """Whether the table of unique keys, missing before, exists now (``db init`` ran
        while this process was up)."""
        from sqlalchemy import inspect
        try:
            found = bool(inspect(self.engine).has_table(self.unique_table))
        except self._sa_errors() as exc:
            raise DriverError(f"db {self.describe()}: {first_line(exc)}") from exc
        if found:
            self._unique_exists = True
        return found

    def _sa_errors(self) -> tuple[type[BaseException], ...]:
        import sqlalchemy
        return (sqlalchemy.exc.SQLAlchemyError, *self._errors)

    def _ensure_table(self) -> None:
        if self._table_ready or not self._create_table:
            return
        with self._table_lock:
            if not self._table_ready:
                self.create_table()
                self._table_ready = True

    # -- connections ---------------------------------------------------------------------

    def _checkout(self) -> Any:
        self._ensure_table()
        try:
            return self.engine.raw_connection()
        except self._sa_errors() as exc:
            raise DriverError(f"db {self.describe()}: {first_line(exc)}") from exc

    @contextmanager
    def _transaction(self, conn: Any | None = None, *,
                     one_statement: bool = False) -> Iterator[Any]:
        """A cursor in one transaction on ``conn`` (or a pooled connection): committed at
        the end, rolled back on error; a broken connection is thrown away. With
        ``one_statement`` on a connection that autocommits, the statement is the
        transaction: no BEGIN, no COMMIT."""
        if self.dialect == "sqlite":
            with _SQLITE_FORK_GUARD:
                yield from self._transaction_on(conn, one_statement)
        else:
            yield from self._transaction_on(conn, one_statement)

    def _transaction_on(self, conn: Any | None, one_statement: bool) -> Iterator[Any]:
        own = conn is None
        if conn is None:
            conn = self._checkout()
        try:
            cursor = conn.cursor()
            try:
                # (Asked only where it matters: it costs a call per transaction.)
                autocommits = (one_statement or self._mysql) and self._autocommits(conn)
                alone = one_statement and autocommits
                if self.dialect == "sqlite":
                    # One writer at a time, taken now rather than at the first write, so
                    # two reserves never both read then fight to upgrade (SQLITE_BUSY).
                    cursor.execute("BEGIN IMMEDIATE")
                elif self._mysql and autocommits and not alone:
                    # (A PostgreSQL consumer's connection autocommits on purpose: each of
                    # its statements is a transaction of its own.)
                    cursor.execute("BEGIN")
                yield cursor
                if not alone:
                    conn.commit()
            finally:
                cursor.close()
        except BaseException as exc:
            broken = isinstance(exc, self._errors) and self._is_disconnect(exc, conn)
            try:
                conn.rollback()
            except self._errors:
                broken = True
            if broken:
                conn.invalidate()  # a consumer that passed it in opens another
            if isinstance(exc, self._errors):
                raise DriverError(f"db {self.describe()}: {first_line(exc)}") from exc
            raise
        finally:
            if own:
                conn.close()

    def _autocommits(self, conn: Any) -> bool:
        """Whether ``conn`` commits each statement by itself (SQLite's BEGIN IMMEDIATE
        is always sent, so it counts as not)."""
        dbapi = conn.driver_connection
        if self.dialect == "postgresql":
            return bool(dbapi.autocommit)
        if self._mysql:
            return bool(dbapi.get_autocommit())
        return False

    def _is_disconnect(self, exc: Any, conn: Any) -> bool:
        if isinstance(exc, OSError):
            return True
        try:
            return bool(self.engine.dialect.is_disconnect(exc, conn.dbapi_connection, None))
        except Exception:  # noqa: BLE001 - when in doubt, start afresh
            return True

    # -- push ------------------------------------------------------------------------------

    def push(self, payload: bytes, *, ttr: float, delay: float = 0.0,
             priority: int | None = None) -> str:
        return self.push_many([PushRequest(payload, ttr, delay, priority)])[0]

    def push_many(self, requests: Sequence[PushRequest]) -> list[str]:
        ids: list[str] = []
        if not requests:
            return ids
        if any(r.unique_key is not None for r in requests):
            return self._push_unique(requests)
        chunks = self._chunks(requests)
        if len(chunks) == 1 and self.dialect != "sqlite":
            ids = self._insert_alone(chunks[0])
            self.ring()
            return ids
        with self._transaction() as cursor:
            for chunk in chunks:
                cursor.execute(self.sql.insert(len(chunk), self._insert_returning),
                               self._insert_params(chunk))
                ids += self._inserted_ids(cursor, len(chunk))
            self._notify(cursor)
        self.ring()
        return ids

    def push_in(self, connection: Any, requests: Sequence[PushRequest]) -> list[str]:
        """The rows written with the caller's ``connection``, in its transaction
        (outbox.py): nothing is committed or rolled back here. On PostgreSQL the NOTIFY
        that wakes workers goes in the same transaction, so it is delivered at the
        caller's commit; elsewhere idle workers on this host are woken after the commit
        where the connection tells it (an SQLAlchemy Session, Django), and find the jobs at
        their next poll otherwise."""
        caller = outbox.adapt(connection)
        if _family_of(caller.dialect) != _family_of(self.dialect):
            raise InvalidArgumentError(
                f"push(connection=...): the connection speaks {caller.dialect}, but the queue's "
                f"table is on {self.dialect} ({self.describe()}); nothing was queued")
        ours = outbox.url_where(self.engine.url)
        if caller.where is not None and not outbox.same_place(caller.where, ours):
            raise InvalidArgumentError(
                f"push(connection=...): the connection reaches database {caller.where[1]!r} "
                f"at {caller.where[0] or 'a local file'}, not the queue's {ours[1]!r} "
                f"({self.describe()}); a job written there would never run, so nothing was "
                "queued")
        if not requests:
            return []
        self._ensure_table_beside(caller)
        sql = self._sql_for(caller.paramstyle)
        chunks = self._chunks(requests)
        ids: list[str] = []
        try:
            for chunk in chunks:
                cursor = caller.execute(sql.insert(len(chunk), self._insert_returning),
                                        self._insert_params(chunk))
                ids += self._inserted_ids(cursor, len(chunk))
            if self.dialect == "postgresql":
                caller.execute(sql.q("SELECT pg_notify(:n, '')"), {"n": self.notify_channel})
        except self._sa_errors() as exc:
            raise DriverError(f"db {self.describe()}: a push in the caller's transaction: "
                              f"{first_line(exc)}") from exc
        if caller.on_commit is not None and self._doorbell is not None:
            caller.on_commit(self.ring)
        return ids

    def _sql_for(self, paramstyle: str) -> Sql:
        if paramstyle == self.sql.paramstyle:
            return self.sql
        found = self._caller_sql.get(paramstyle)
        if found is None:
            found = self._caller_sql[paramstyle] = Sql(self.dialect, self.table, paramstyle)
        return found

    def _ensure_table_beside(self, caller: outbox.CallerConnection) -> None:
        """The table made before the caller's transaction writes to it. On SQLite it is
        looked for through the caller's connection first: creating it through another
        connection waits for the caller's write lock, which the caller holds until it
        commits."""
        if self._table_ready or not self._create_table:
            return
        if self.dialect != "sqlite":
            self._ensure_table()
            return
        cursor = caller.execute("SELECT name FROM sqlite_master WHERE type = 'table'", {})
        there = {name for (name,) in cursor.fetchall()}
        missing = [table for table in self._tables() if table.name not in there]
        for table in missing:
            # In the caller's transaction: a rollback takes the tables away with the jobs,
            # and the next push makes them again.
            for statement in ddl(table, self.engine.dialect):
                caller.execute(statement, {})
        if not missing:
            self._table_ready = True

    def _push_unique(self, requests: Sequence[PushRequest]) -> list[str]:
        """Jobs with unique keys, one by one in one transaction: a key whose holder lives
        gives the holder's id, a free one is taken by the new job. A transaction that
        loses the key to a concurrent push is tried again (see unique.py)."""
        if not self.has_unique_table() and not self._unique_table_made_since():
            raise DriverError(
                f"db {self.describe()}: the table {self.unique_table}, which holds unique "
                "keys, does not exist; run 'queue-core db init' (or apply 'db init --sql') "
                "to create it; nothing was queued")
        usql = self._unique_sql
        insert = self.sql.insert(1, self._insert_returning)
        self._unique_pushes += 1
        purge = self._unique_pushes % UNIQUE_PURGE_EVERY == 1
        for turn in range(UNIQUE_TRIES):
            try:
                with self._transaction() as cursor:
                    ids: list[str] = []
                    for r in requests:
                        params = {"c": self.channel, "k": r.unique_key}
                        if r.unique_key is not None:
                            cursor.execute(usql.free, params)
                            cursor.execute(usql.holder, params)
                            row = cursor.fetchone()
                            if row is not None:
                                ids.append(str(row[0]))
                                continue
                        cursor.execute(insert, self._insert_params([r]))
                        job_id = self._inserted_ids(cursor, 1)[0]
                        ids.append(job_id)
                        if r.unique_key is None:
                            continue
                        if r.unique_for is None:
                            cursor.execute(usql.take, {**params, "id": int(job_id)})
                        else:
                            cursor.execute(usql.take_for, {**params, "id": int(job_id),
                                                           "w": float(r.unique_for)})
                    if purge:
                        cursor.execute(usql.purge, {"c": self.channel})
                    self._notify(cursor)
                self.ring()
                return ids
            except DriverError as exc:
                lost = isinstance(exc.__cause__, (self._dbapi.IntegrityError,
                                                  self._dbapi.OperationalError))
                if not lost or turn == UNIQUE_TRIES - 1:
                    raise
                time.sleep(0.001 * (turn + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _insert_params(self, chunk: Sequence[PushRequest]) -> dict[str, Any]:
        params: dict[str, Any] = {"c": self.channel}
        for i, r in enumerate(chunk):
            params[f"s{i}"] = "delayed" if r.delay > 0 else "waiting"
            params[f"p{i}"] = DEFAULT_PRIORITY if r.priority is None else r.priority
            params[f"d{i}"] = float(r.delay)
            params[f"ttr{i}"] = float(r.ttr)
            params[f"pl{i}"] = r.payload
        return params

    def _inserted_ids(self, cursor: Any, rows: int) -> list[str]:
        if self._insert_returning:
            # (A PostgreSQL INSERT alone also returns its NOTIFY's column.)
            return [str(job_id) for job_id, *_ in cursor.fetchall()]
        # MySQL gives the first id of a multi-row insert; InnoDB hands one statement
        # consecutive ids.
        first = int(cursor.lastrowid)
        return [str(first + i) for i in range(rows)]

    def _insert_alone(self, chunk: Sequence[PushRequest]) -> list[str]:
        """A push of one INSERT as its own transaction, in one round trip where the
        connection allows: PostgreSQL sends its NOTIFY in the same statement, on a
        connection switched to autocommit (no BEGIN, no COMMIT); MySQL's pooled connections
        autocommit (see make_engine). The commit is as durable as the server makes it."""
        conn = self._checkout()
        try:
            dbapi = conn.driver_connection
            if self.dialect == "postgresql":
                dbapi.autocommit = True
            try:
                with self._transaction(conn, one_statement=True) as cursor:
                    cursor.execute(self.sql.insert_alone(len(chunk), self._insert_returning),
                                   {**self._insert_params(chunk), "n": self.notify_channel})
                    return self._inserted_ids(cursor, len(chunk))
            finally:
                if self.dialect == "postgresql" and not dbapi.closed:
                    dbapi.autocommit = False  # the pool's default again
        finally:
            conn.close()

    def payload_limit(self) -> int | None:
        """MySQL/MariaDB: what a one-row INSERT can carry within the server's
        ``max_allowed_packet`` (a payload travels hex-encoded: twice its size). SQLite and
        PostgreSQL (bytea holds up to 1 GB): no limit of the driver's own."""
        if not self._mysql:
            return None
        return (self._packet() - PACKET_HEAD - PACKET_ROW) // 2

    def _packet(self) -> int:
        """The server's max_allowed_packet, asked once (a larger statement makes the server
        drop the connection: "server has gone away")."""
        if self._max_packet is None:
            (packet,) = self._read("SELECT @@max_allowed_packet", {},
                                   lambda cursor: cursor.fetchone())
            self._max_packet = int(packet)
        return self._max_packet

    def _chunks(self, requests: Sequence[PushRequest]) -> list[Sequence[PushRequest]]:
        """``requests`` in the INSERTs that write them: within max_allowed_packet on MySQL,
        INSERT_CHUNK rows elsewhere."""
        if self._mysql:
            return self._packet_chunks(requests)
        return [requests[start:start + INSERT_CHUNK]
                for start in range(0, len(requests), INSERT_CHUNK)]

    def _packet_chunks(self, requests: Sequence[PushRequest]) -> list[Sequence[PushRequest]]:
        """MySQL: push_many's rows in INSERTs that each fit in max_allowed_packet, planned
        before anything is written."""
        packet = self._packet()
        budget = packet - PACKET_HEAD
        chunks: list[Sequence[PushRequest]] = []
        start = size = 0
        for index, request in enumerate(requests):
            row = 2 * len(request.payload) + PACKET_ROW
            if row > budget:
                raise InvalidArgumentError(
                    f"a payload of {len(request.payload)} bytes does not fit in an INSERT "
                    f"within the server's max_allowed_packet of {packet} bytes (the largest "
                    f"is {self.payload_limit()} bytes) on {self.describe()}; nothing was "
                    "queued")
            if index > start and (index - start >= INSERT_CHUNK or size + row > budget):
                chunks.append(requests[start:index])
                start, size = index, 0
            size += row
        chunks.append(requests[start:])
        return chunks

    def _notify(self, cursor: Any) -> None:
        if self.dialect == "postgresql":
            # Delivered at commit, to workers LISTENing on this table and channel.
            cursor.execute("SELECT pg_notify(%(n)s, '')", {"n": self.notify_channel})

    # -- lookups and admin -----------------------------------------------------------------

    def _read(self, statement: str, params: dict[str, Any],
              fetch: Callable[[Any], T]) -> T:
        with self._transaction() as cursor:
            cursor.execute(statement, params)
            return fetch(cursor)

    def _row(self, statement: str, job_id: str) -> Any:
        """One job's row by its id, or None (an id that is not ours is no job)."""
        number = _job_number(job_id)
        if number is None:
            return None
        return self._read(statement, {"id": number, "c": self.channel},
                          lambda cursor: cursor.fetchone())

    def _status(self, raw: Any) -> JobStatus | None:
        """The status a row holds, or None when it is not one queue-core knows."""
        found = _STATUSES.get(raw) if isinstance(raw, str) else None
        if found is None and self._mysql and isinstance(raw, str):
            # The column's collation ignores case and trailing spaces: so do the server's
            # own comparisons, so a worker treats such a row as that status.
            found = _STATUSES.get(raw.rstrip(" ").lower())
        return found

    def status(self, job_id: str) -> JobStatus | None:
        row = self._row(self.sql.status, job_id)
        if row is None:
            return None
        (raw,) = row
        # A status no worker will ever move: reported as failed, so an operator sees it
        # (``get`` says why).
        return self._status(raw) or JobStatus.FAILED

    def get(self, job_id: str) -> JobInfo | None:
        row = self._row(self.sql.get, job_id)
        if row is None:
            return None
        info = self._info(row)
        if self._marks_ready():
            mark = self._read(self._mark_sql.get, {"id": int(row[0])},
                              lambda cursor: cursor.fetchone())
            if mark is not None:
                info.progress = progress.decode(mark[1], info.id)
        return info

    def oldest_waiting(self) -> float | None:
        row = self._read(self.sql.oldest_waiting, {"c": self.channel},
                         lambda cursor: cursor.fetchone())
        found = []
        for value in row or ():
            try:
                found.append(float(value))
            except (TypeError, ValueError):  # a damaged row's push time: not a time
                continue
        return min(found, default=None)

    def info(self) -> dict[JobStatus, int]:
        rows = self._read(self.sql.counts, {"c": self.channel}, lambda cursor: cursor.fetchall())
        counts = dict.fromkeys(JobStatus, 0)
        unknown: dict[Any, int] = {}
        for raw, count in rows:
            status = self._status(raw)
            if status is None:
                unknown[raw] = int(count)
            else:
                counts[status] += int(count)
        if unknown:
            self._warn_unknown(unknown)
        return counts

    def _warn_unknown(self, unknown: dict[Any, int]) -> None:
        try:
            ids = self._read(self.sql.with_status(len(unknown)),
                             {"c": self.channel, **{f"s{i}": raw for i, raw in
                                                    enumerate(unknown)}},
                             lambda cursor: [str(job_id) for (job_id,) in cursor.fetchall()])
        except DriverError:
            ids = []
        rows = sum(unknown.values())
        named = ", ".join(f"{raw!r}: {count}" for raw, count in unknown.items())
        logger.warning(
            "%s: %d row%s with a status queue-core does not know (%s), left out of the "
            "counts; 'queue-core status ID' shows such a row as failed and 'remove ID' "
            "deletes it (ids: %s)", self.describe(), rows, "" if rows == 1 else "s", named,
            ", ".join(ids) or "?")

    def jobs(self, status: JobStatus, limit: int = 100) -> list[JobInfo]:
        rows = self._read(self.sql.listing,
                          {"c": self.channel, "status": status.value, "limit": int(limit)},
                          lambda cursor: cursor.fetchall())
        return [self._info(row) for row in rows]

    def _info(self, row: Any) -> JobInfo:
        """A row as JobInfo, whatever it holds: a value that cannot be read is left out
        (None), a status queue-core does not know reads as failed, with the reason."""
        (job_id, raw_status, attempt, priority, ttr, pushed_at, started_at, finished_at,
         ready_at, error, result, payload) = row
        status = self._status(raw_status)
        if status is None:
            failure: ErrorInfo | None = ErrorInfo(
                UNREADABLE, f"its stored status {raw_status!r} is not one queue-core knows "
                f"({', '.join(_STATUSES)}); no worker will move it")
        else:
            failure = ErrorInfo.from_json(error if isinstance(error, (str, bytes)) else None)
        attempt = as_int(attempt)
        priority = as_int(priority)
        payload = as_bytes(payload)
        return JobInfo(
            id=str(job_id), status=status or JobStatus.FAILED,
            attempt=attempt if type(attempt) is int else 0,
            priority=priority if type(priority) is int else None,
            ttr=as_time(ttr), pushed_at=as_time(pushed_at), started_at=as_time(started_at),
            finished_at=as_time(finished_at),
            ready_at=as_time(ready_at) if status is JobStatus.DELAYED else None,
            error=failure, result=None if result is None else as_bytes(result),
            payload=payload if isinstance(payload, bytes) else b"")

    def remove(self, job_id: str) -> bool:
        number = _job_number(job_id)
        if number is None:
            return False
        keys = self.has_unique_table()
        with self._transaction() as cursor:
            cursor.execute(self.sql.remove, {"id": number, "c": self.channel})
            found = bool(cursor.rowcount > 0)
            if found and keys:
                cursor.execute(self._unique_sql.unhold, {"id": number, "c": self.channel})
        if found and self._marks_ready():
            self._read(self._mark_sql.forget, {"id": number}, lambda cursor: None)
        return found

    def clear(self) -> None:
        keys = self.has_unique_table()
        with self._transaction() as cursor:
            cursor.execute(self.sql.clear, {"c": self.channel})
            if keys:
                cursor.execute(self._unique_sql.clear, {"c": self.channel})
        if self._marks_ready():
            self._read(self._mark_sql.clear, {"c": self.channel}, lambda cursor: None)

    def retry(self, job_id: str, *, state: JobStatus, reset_attempts: bool = False) -> None:
        number = _job_number(job_id)
        if number is None:
            raise JobNotFoundError(f"no job {job_id!r} in {self.describe()}")
        keys = self.has_unique_table()
        with self._transaction() as cursor:
            cursor.execute(self.sql.lock_one, {"id": number, "c": self.channel})
            row = cursor.fetchone()
            if row is None:
                raise JobNotFoundError(f"no job {job_id!r} in {self.describe()}")
            (raw,) = row
            found = self._status(raw)
            if found is not state:
                stored = found or (f"stored with the status {raw!r}, which queue-core "
                                   "does not know")
                raise JobNotInStateError(f"job {job_id} is {stored}, not {state}")
            if keys:
                # Its key was freed when it finished: the retried job does not take it back.
                cursor.execute(self._unique_sql.unhold, {"id": number, "c": self.channel})
            cursor.execute(self.sql.requeue, {"id": number, "reset": int(reset_attempts)})
            if self._marks_ready():
                cursor.execute(self._mark_sql.forget, {"id": number})
            self._notify(cursor)
        self.ring()

    # -- cancellation and progress: the marks table (marks.py) ---------------------------

    def _marks_ready(self) -> bool:
        """Whether the marks table exists: made by ``create_table`` (at first use unless
        ``create_table=False``, or by ``queue-core db init``). Without it, lookups show no
        progress and ``cancel`` says how to make it."""
        if self._marks_there is None:
            self._ensure_table()
            if self._create_table:
                self._marks_there = True
            else:
                from sqlalchemy import inspect
                try:
                    there = bool(inspect(self.engine).has_table(self.marks_table))
                except self._sa_errors() as exc:
                    raise DriverError(f"db {self.describe()}: {first_line(exc)}") from exc
                if not there:
                    logger.warning("%s: the table %s is missing (create_table=False): job "
                                   "progress and cancellation are off until 'queue-core db "
                                   "init' creates it", self.describe(), self.marks_table)
                self._marks_there = there
        return self._marks_there

    def _need_marks(self) -> None:
        if not self._marks_ready():
            raise DriverError(f"db {self.describe()}: the table {self.marks_table} is "
                              "missing; 'queue-core db init' creates it")

    def cancel(self, job_id: str, *, error: ErrorInfo, keep: bool = True) -> str | None:
        number = _job_number(job_id)
        if number is None:
            return None
        self._need_marks()
        params = {"id": number, "c": self.channel}
        moved = self._mark_sql.fail_waiting if keep else self._mark_sql.delete_waiting
        keys = self.has_unique_table()
        for _ in range(3):
            with self._transaction() as cursor:
                cursor.execute(moved, {**params, "error": json.dumps(error.as_dict())})
                if cursor.rowcount > 0:
                    if keys:
                        # Failed for good: its key goes with it, in the same transaction
                        # (SQLite may give its id to the next row: see drivers/db/unique.py).
                        cursor.execute(self._unique_sql.unhold, params)
                    return "failed"
                # Locked, so that its worker cannot settle it between the look and the mark.
                cursor.execute(self.sql.lock_one, params)
                row = cursor.fetchone()
                status = None if row is None else self._status(row[0])
                if status is JobStatus.RESERVED:
                    cursor.execute(self._mark_sql.mark_cancel, {"id": number})
                    if cursor.rowcount == 0:
                        cursor.execute(self._mark_sql.insert_cancel, params)
                    self._purge_marks(cursor)
                    return "marked"
            if status not in (JobStatus.WAITING, JobStatus.DELAYED):
                return None
            # Back to waiting between the two statements (its lease ended): again.
        return None

    def cancel_requested(self, job_ids: Sequence[str]) -> set[str]:
        numbers = {number: job_id for job_id in job_ids
                   if (number := _job_number(job_id)) is not None}
        if not numbers or not self._marks_ready():
            return set()
        rows = self._read(self._mark_sql.cancelled(len(numbers)),
                          {f"i{i}": number for i, number in enumerate(numbers)},
                          lambda cursor: cursor.fetchall())
        found = set()
        for number, raw in rows:
            job_id = numbers.get(as_int(number))
            if job_id is not None and progress.cancel_mark(raw, job_id):
                found.add(job_id)
        return found

    def set_progress(self, job_id: str, value: Progress) -> None:
        number = _job_number(job_id)
        if number is None or not self._marks_ready():
            return
        params = {"id": number, "c": self.channel, "p": progress.encode(value)}
        with self._transaction() as cursor:
            cursor.execute(self._mark_sql.set_progress, params)
            if cursor.rowcount == 0:
                cursor.execute(self._mark_sql.insert_progress, params)
            self._purge_marks(cursor)

    def _purge_marks(self, cursor: Any) -> None:
        """Now and then, delete the marks of jobs that are gone (deleted when done)."""
        self._marks += 1
        if self._marks % MARKS_PURGE_EVERY == 1:
            cursor.execute(self._mark_sql.purge, {"c": self.channel})

    # -- heartbeats: a row per worker in the heartbeat table ------------------------------

    def beat(self, record: WorkerInfo) -> None:
        now = time.time()
        params = {"c": self.channel, "id": record.id,
                  "f": now + beats.forget_after(record.period),
                  "r": beats.encode(record).decode()}
        self._beats += 1
        with self._transaction() as cursor:
            cursor.execute(self._beat_sql.update, params)
            if cursor.rowcount == 0:
                cursor.execute(self._beat_sql.insert, params)
            if self._beats % PURGE_EVERY == 1:
                cursor.execute(self._beat_sql.purge, {"c": self.channel, "now": now})

    def workers(self) -> list[WorkerInfo]:
        rows = self._read(self._beat_sql.listing, {"c": self.channel},
                          lambda cursor: cursor.fetchall())
        return beats.read_records(
            ((str(worker_id), raw if isinstance(raw, (str, bytes)) else repr(raw))
             for worker_id, raw in rows), self.describe(), time.time())

    def forget_worker(self, worker_id: str) -> bool:
        return self._read(self._beat_sql.forget, {"c": self.channel, "id": str(worker_id)},
                          lambda cursor: bool(cursor.rowcount > 0))

    def after_fork(self) -> None:
        # The parent's pooled connections are the parent's: forget them without closing.
        self.engine.dispose(close=False)
        if self._doorbell is not None:
            self._doorbell.after_fork()

    def close(self) -> None:
        # Consumers close their own connections (the core closes them before the store).
        if self._doorbell is not None:
            self._doorbell.close()
        self.engine.dispose()


def _family_of(dialect: str) -> str:
    return "mysql" if dialect == "mariadb" else dialect


def _notify_name(table: str, channel: str) -> str:
    name = f"qc_{table}_{channel}"
    if len(name) > 63:  # PostgreSQL's identifier limit
        name = f"qc_{zlib.crc32(name.encode()):08x}_{name[:40]}"
    return name.replace('"', "")


def _job_number(job_id: str) -> int | None:
    try:
        number = int(job_id)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None

