"""The DB driver: one table on SQLAlchemy 2 (SQLite, PostgreSQL, MySQL/MariaDB).

What Yii2-queue's DB driver is known for, and what this one does instead:
- A global mutex around every reserve: here each reserve is one short transaction that
  takes one row with ``FOR UPDATE SKIP LOCKED`` (SQLite: ``BEGIN IMMEDIATE``, which is one
  writer at a time by nature, in WAL mode with a busy timeout), so workers never wait on
  each other's jobs.
- Deadlocks between lease recovery and deletes: expired leases are taken back by the
  reserve itself (row by row, skipping locked rows), never by a sweep over the table.
- Slow reserves with a large delayed backlog: delayed rows live under their own status, and
  reserve reads two index ranges that hold only due or waiting rows.

``DbDriver`` is the store (pushes and admin, on pooled connections); each worker opens a
consumer with a connection of its own. The consumer folds the outcome of the finished job
into the transaction of its next reserve: on PostgreSQL the ack, the promotion of due rows
and the reserve of the next job are one statement, so one round trip and one commit per
job. An idle PostgreSQL consumer LISTENs and wakes on the NOTIFY every push, release and
retry sends; on SQLite and MySQL they ring a same-host doorbell (for MySQL, pushers on
other hosts do not reach it: their jobs wait for the poll, at a short interval that grows
while the queue stays empty).
"""

from __future__ import annotations

import json
import logging
import re
import select
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlencode

from queue_core.consumer import Consumer, Settlement, Verdict
from queue_core.errors import (
    ConfigError,
    DriverError,
    InvalidArgumentError,
    JobNotFoundError,
    JobNotInStateError,
)
from queue_core.model import (
    DEFAULT_PRIORITY,
    UNREADABLE,
    Capabilities,
    ErrorInfo,
    JobInfo,
    JobStatus,
    Message,
    PushRequest,
)
from queue_core.options import (
    ADDRESS,
    CHANNEL,
    FLAG,
    LEASE_GRACE,
    SETTINGS,
    URL,
    Kind,
    Option,
    anything,
    check_options,
    documented,
    mapping,
    number,
    redact_url,
    seconds,
    text,
    url_and_options,
    whole,
)
from queue_core.records import as_bytes, as_float, as_int, as_time
from queue_core.store import Store

from . import db_cli
from .db_sql import Sql, build_table, ddl
from .local_wakeup import Doorbell, doorbell_beside, doorbell_on_host

logger = logging.getLogger(__name__)

T = TypeVar("T")
INSERT_CHUNK = 500
"""Rows per INSERT in push_many (SQLite allows 32,766 parameters per statement)."""
PACKET_HEAD = 512
"""Bytes of a MySQL INSERT before its rows, with room to spare (table name included)."""
PACKET_ROW = 512
"""Bytes of one row of that INSERT besides twice its payload (PyMySQL sends a payload
as hex; a client that escapes it instead needs at most as much)."""
IDLE_RECHECK = 5.0
"""Seconds an idle PostgreSQL worker goes without looking at the table, when no
notification came and nothing delayed or leased comes due: every change that makes a job
ready (push, release, retry) NOTIFYs, so this only bounds the cost of a lost one."""
IDLE_PING = 1.0
"""Seconds a pooled connection may sit unused before it is tested on checkout (a server
restart in between leaves it dead); one in use more often goes without the round trip."""
PROMOTE_EVERY = 0.5
"""MySQL: seconds a worker that keeps finding waiting jobs goes without promoting due
delayed jobs and ended leases (it promotes at once whenever it finds nothing waiting)."""
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,59}$")
_STATUSES = {status.value: status for status in JobStatus}


_DBAPI_URL_OPTIONS = (
    # libpq (psycopg)
    "application_name", "channel_binding", "client_encoding", "connect_timeout",
    "gssencmode", "host", "hostaddr", "keepalives", "keepalives_count", "keepalives_idle",
    "keepalives_interval", "krbsrvname", "load_balance_hosts", "options", "passfile", "port",
    "require_auth", "requirepeer", "service", "ssl_max_protocol_version",
    "ssl_min_protocol_version", "sslcert", "sslcertmode", "sslcompression", "sslcrl",
    "sslcrldir", "sslkey", "sslmode", "sslnegotiation", "sslpassword", "sslrootcert",
    "sslsni", "target_session_attrs", "tcp_user_timeout",
    # PyMySQL, as SQLAlchemy's MySQL dialect reads them
    "autocommit", "binary_prefix", "charset", "client_flag", "init_command", "local_infile",
    "program_name", "read_timeout", "server_public_key", "sql_mode", "ssl_ca", "ssl_capath",
    "ssl_cert", "ssl_check_hostname", "ssl_cipher", "ssl_disabled", "ssl_key",
    "ssl_verify_cert", "ssl_verify_identity", "unix_socket", "write_timeout",
    # sqlite3, as SQLAlchemy's pysqlite dialect reads them
    "cache", "cached_statements", "check_same_thread", "immutable", "mode", "nolock",
    "timeout", "uri", "vfs",
)
"""The database clients' own query options, passed on in the URL: libpq's, PyMySQL's
and sqlite3's."""
_ENGINE_OPTIONS = (
    Option("connect_args", mapping(), None, "Keyword arguments of the DB-API connect call.",
           SETTINGS, passed_on=True, none=True),
    Option("echo", anything("true, false or 'debug'"), False, "Log every statement.",
           SETTINGS, passed_on=True),
    Option("echo_pool", anything("true, false or 'debug'"), False,
           "Log the pool's checkouts.", SETTINGS, passed_on=True),
    Option("execution_options", mapping(), None, "Execution options of every connection.",
           SETTINGS, passed_on=True, none=True),
    Option("hide_parameters", FLAG, False, "Leave statement parameters out of errors.",
           SETTINGS, passed_on=True),
    Option("isolation_level", text(), None, "The isolation level of every connection.",
           SETTINGS, passed_on=True, none=True),
    Option("logging_name", text(), None, "The engine's logger name.", SETTINGS,
           passed_on=True, none=True),
    Option("max_overflow", whole(-1), 10, "Connections beyond pool_size (-1: no limit).",
           SETTINGS, passed_on=True),
    Option("pool_pre_ping", FLAG, False,
           "Test a pooled connection before every use (without it, one unused for over a "
           "second is tested).", SETTINGS, passed_on=True),
    Option("pool_recycle", number(-1), -1,
           "Seconds after which a pooled connection is replaced (-1: never).", SETTINGS,
           passed_on=True),
    Option("pool_reset_on_return", anything("'rollback', 'commit' or None"), "rollback",
           "What a connection does when it goes back to the pool.", SETTINGS,
           passed_on=True, none=True),
    Option("pool_size", whole(0), 5, "Connections the pool keeps open.", SETTINGS,
           passed_on=True),
    Option("pool_timeout", seconds(0), 30.0,
           "Seconds to wait for a free connection of the pool.", SETTINGS, passed_on=True),
    Option("pool_use_lifo", FLAG, False, "Reuse the most recently returned connection.",
           SETTINGS, passed_on=True),
    Option("poolclass", anything("a SQLAlchemy Pool class"), None,
           "The pool class (SQLAlchemy's choice by default).", SETTINGS, passed_on=True,
           none=True),
    Option("query_cache_size", whole(0), 500, "Statements kept compiled.", SETTINGS,
           passed_on=True),
)
"""``sqlalchemy.create_engine``'s keyword options the driver passes on."""
_TABLE = Kind("str", "1 to 60 letters, digits or '_', not starting with a digit",
              lambda raw: raw, lambda value: isinstance(value, str)
              and bool(_TABLE_NAME.match(value)))
OPTIONS = (
    Option("url_or_engine", anything("a database URL or an SQLAlchemy Engine"),
           "sqlite:///queue.db",
           "The database: a URL (sqlite:///path.db, postgresql://user:pass@host/db, "
           "mysql://user:pass@host/db) or an SQLAlchemy Engine.", ADDRESS),
    CHANNEL,
    Option("table", _TABLE, "queue", "The table; several channels share it."),
    Option("create_table", FLAG, True,
           "Create the table and its indexes on first use if they are missing."),
    LEASE_GRACE,
    Option("poll_interval", seconds(0, above=True), 0.05,
           "First wait of an idle worker on SQLite and MySQL; doubles while idle."),
    Option("max_poll_interval", seconds(0, above=True), 1.0,
           "Longest such wait (PostgreSQL workers LISTEN instead of polling)."),
    *_ENGINE_OPTIONS,
    *(Option(name, text(empty=True), None,
             "The database client's own option (libpq, PyMySQL or sqlite3).", URL,
             passed_on=True) for name in _DBAPI_URL_OPTIONS),
)


@documented(OPTIONS)
class DbDriver(Store):
    """Jobs in one table of SQLite, PostgreSQL or MySQL/MariaDB, through SQLAlchemy Core.

    The URL's query string takes the options below; the database client's own
    (``sslmode``, ``charset``, ...) stay in the URL the client reads."""

    name = "db"
    options = OPTIONS
    cli_commands = db_cli.COMMANDS
    capabilities = Capabilities(
        delay=True, priority=True, priority_range=(-(2**31), 2**31 - 1), ttr_lease=True,
        retry=True, attempt_count=True, status=True, failed_store=True, last_error=True,
        keep_completed=True, manual_retry=True, remove=True, clear=True, info=True,
        listing=frozenset(JobStatus), reset_attempts=True, bulk_push=True)

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
            self.engine = _make_engine(url_or_engine, engine_options)
        else:
            raise ConfigError(f"the db driver takes a URL or an SQLAlchemy Engine, got "
                              f"{type(url_or_engine).__name__}", key="driver")
        self.dialect = self.engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql", "mysql", "mariadb"):
            raise ConfigError(f"the db driver supports sqlite, postgresql and mysql/mariadb, "
                              f"not {self.dialect}", key="driver")
        dbapi: Any = self.engine.dialect.dbapi
        self._errors: tuple[type[BaseException], ...] = (dbapi.Error, OSError)
        self.sql = Sql(self.dialect, table, dbapi.paramstyle)
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

    @classmethod
    def from_url(cls, url: str, **given: Any) -> DbDriver:
        base, values = url_and_options(cls.name, cls.options, url, given)
        kept = {key: values.pop(key) for key in _DBAPI_URL_OPTIONS if key in values}
        return cls(f"{base}?{urlencode(kept)}" if kept else base, **values)

    def describe(self) -> str:
        return (f"{redact_url(self.engine.url.render_as_string(hide_password=False))} "
                f"table {self.table} channel {self.channel}")

    def open_consumer(self) -> Consumer:
        return _DbConsumer(self)

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
        """The statements that create the table and its indexes on this database."""
        return ddl(build_table(self.table), self.engine.dialect)

    def create_table(self) -> None:
        """Create the table and its indexes unless they exist (what ``db init`` does)."""
        table = build_table(self.table)
        try:
            table.metadata.create_all(self.engine, checkfirst=True)
        except self._sa_errors() as exc:
            # Two processes creating it at the same moment: the loser finds it there.
            from sqlalchemy import inspect
            try:
                if inspect(self.engine).has_table(self.table):
                    return
            except self._sa_errors():
                pass
            raise DriverError(f"db {self.describe()}: cannot create the table: "
                              f"{_first_line(exc)}") from exc

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
            raise DriverError(f"db {self.describe()}: {_first_line(exc)}") from exc

    @contextmanager
    def _transaction(self, conn: Any | None = None, *,
                     one_statement: bool = False) -> Iterator[Any]:
        """A cursor in one transaction on ``conn`` (or a pooled connection): committed at
        the end, rolled back on error; a broken connection is thrown away. With
        ``one_statement`` on a connection that autocommits, the statement is the
        transaction: no BEGIN, no COMMIT."""
        own = conn is None
        if conn is None:
            conn = self._checkout()
        try:
            cursor = conn.cursor()
            try:
                autocommits = self._autocommits(conn)
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
                raise DriverError(f"db {self.describe()}: {_first_line(exc)}") from exc
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
        if self._mysql:
            chunks = self._packet_chunks(requests)
        else:
            chunks = [requests[start:start + INSERT_CHUNK]
                      for start in range(0, len(requests), INSERT_CHUNK)]
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
            return [str(row[0]) for row in cursor.fetchall()]
        # MySQL gives the first id of a multi-row insert; InnoDB hands one statement
        # consecutive ids.
        first = int(cursor.lastrowid)
        return [str(first + i) for i in range(rows)]

    def _insert_alone(self, chunk: Sequence[PushRequest]) -> list[str]:
        """A push of one INSERT as its own transaction, in one round trip where the
        connection allows: PostgreSQL sends its NOTIFY in the same statement, on a
        connection switched to autocommit (no BEGIN, no COMMIT); MySQL's pooled connections
        autocommit (see _make_engine). The commit is as durable as the server makes it."""
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
            row = self._read("SELECT @@max_allowed_packet", {},
                             lambda cursor: cursor.fetchone())
            self._max_packet = int(row[0])
        return self._max_packet

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
        # A status no worker will ever move: reported as failed, so an operator sees it
        # (``get`` says why).
        return self._status(row[0]) or JobStatus.FAILED

    def get(self, job_id: str) -> JobInfo | None:
        row = self._row(self.sql.get, job_id)
        return None if row is None else self._info(row)

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
                             lambda cursor: [str(row[0]) for row in cursor.fetchall()])
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
        return self._read(self.sql.remove, {"id": number, "c": self.channel},
                          lambda cursor: bool(cursor.rowcount > 0))

    def clear(self) -> None:
        self._read(self.sql.clear, {"c": self.channel}, lambda cursor: None)

    def retry(self, job_id: str, *, state: JobStatus, reset_attempts: bool = False) -> None:
        number = _job_number(job_id)
        if number is None:
            raise JobNotFoundError(f"no job {job_id!r} in {self.describe()}")
        with self._transaction() as cursor:
            cursor.execute(self.sql.lock_one, {"id": number, "c": self.channel})
            row = cursor.fetchone()
            if row is None:
                raise JobNotFoundError(f"no job {job_id!r} in {self.describe()}")
            found = self._status(row[0])
            if found is not state:
                stored = found or (f"stored with the status {row[0]!r}, which queue-core "
                                   "does not know")
                raise JobNotInStateError(f"job {job_id} is {stored}, not {state}")
            cursor.execute(self.sql.requeue, {"id": number, "reset": int(reset_attempts)})
            self._notify(cursor)
        self.ring()

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


class _DbConsumer(Consumer):
    """One worker's side of the table, on a connection of its own: it reserves, settles and
    waits (LISTEN on PostgreSQL, the doorbell on SQLite and MySQL, with a poll behind it)."""

    prefetch = 1
    folds_settlements = True
    """The core hands the outcomes of finished jobs to the next fetch, which carries them
    out in its own transaction (on PostgreSQL an ack is part of the reserve's statement)."""

    def __init__(self, store: DbDriver) -> None:
        self.store = store
        self.sql = store.sql
        self._conn: Any = None
        self._listener: Any = None
        self._idle = store.poll_interval
        self._quiet_until = 0.0
        self._promote_at = 0.0
        self._doorbell = store.doorbell()
        self._inherited: list[Any] = []

    # -- connections ---------------------------------------------------------------------

    def _connection(self) -> Any:
        # One thrown away as broken (store._transaction invalidates it) is replaced.
        if self._conn is None or not self._conn.is_valid:
            store = self.store
            conn = store._checkout()
            try:
                if store.dialect == "postgresql":
                    # One statement per move, each its own transaction: autocommit saves
                    # the round trip of a COMMIT.
                    conn.driver_connection.autocommit = True
                    with conn.cursor() as cursor:
                        # The worker's own commits (reserve and ack) need not wait for the
                        # disk: a crash of the server can forget the last of them, which
                        # only runs a job again. Pushes keep the server's durable setting.
                        cursor.execute("SET synchronous_commit TO off")
                        # A queue table swings from empty to 100,000 rows in seconds, so
                        # its statistics are always stale; a plan made while it looked
                        # empty would scan the whole table per job. Reserve is written for
                        # its indexes: tell the planner to use them.
                        cursor.execute("SET enable_seqscan TO off")
                elif store._mysql:
                    # The pool's connections autocommit; a worker's moves are transactions
                    # of several statements, begun implicitly.
                    conn.driver_connection.autocommit(False)
                    with conn.cursor() as cursor:
                        # InnoDB's default (repeatable read) also locks the gaps between
                        # index entries: workers deleting and reserving rows side by side
                        # deadlock on each other's gaps. Every move names its rows by id or
                        # locks them (SKIP LOCKED), which read committed keeps.
                        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            except store._errors as exc:
                conn.invalidate()
                conn.close()
                raise DriverError(f"db {store.describe()}: {_first_line(exc)}") from exc
            self._conn = conn
        return self._conn

    # -- reserve ---------------------------------------------------------------------------

    def fetch(self, max_n: int, timeout: float,
              settle: Sequence[Settlement] = ()) -> list[Message]:
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if timeout > 0 and not settle and self._quiet(now):
                # Nothing can have become ready since the last look: no notification came
                # and the next delayed or leased job is not due yet. (A fetch that does
                # not wait, as ``run`` does, always looks.)
                left = deadline - now
                if left <= 0:
                    return []
                if self._wait_for_notify(min(left, self._quiet_until - now)):
                    self._quiet_until = 0.0
                continue
            message, promoted = self._reserve_once(settle)
            settle = ()
            if message is not None:
                self._idle = self.store.poll_interval
                return [message]
            if promoted:
                continue  # rows came due: they are waiting now
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            due = self._seconds_to_next_due()
            wait = min(left, due)
            if self.store.dialect == "postgresql":
                self._quiet_until = time.monotonic() + min(due, IDLE_RECHECK)
                if self._wait_for_notify(max(0.0, wait)):
                    self._quiet_until = 0.0
                    continue
            else:
                nap = max(0.0, min(wait, self._idle))
                if self._doorbell is not None:
                    self._doorbell.wait(nap)  # a commit that readies a job rings
                else:
                    time.sleep(nap)
                self._idle = min(self._idle * 2, self.store.max_poll_interval)

    def _quiet(self, now: float) -> bool:
        """Whether an idle PostgreSQL consumer may skip looking at the table: it listens and
        its quiet time has not run out."""
        return now < self._quiet_until and self._listener is not None

    def _reserve_once(self, settle: Sequence[Settlement]) -> tuple[Message | None, int]:
        """Carry out ``settle`` and reserve one job, in one transaction."""
        readied = False
        with self.store._transaction(self._connection()) as cursor:
            if self.store.dialect == "postgresql":
                # The common case, one ack, rides in the reserve's own statement.
                folded = settle[0] if len(settle) == 1 and (
                    settle[0].verdict is Verdict.ACK) else None
                if folded is None:
                    readied = self._settle_rows(cursor, settle)
                row, promoted = self._pg_cycle(cursor, folded)
            elif self.store.dialect == "sqlite":
                readied = self._settle_rows(cursor, settle)
                promoted = self._promote(cursor)
                row = self._take(cursor)
            else:
                readied = self._settle_rows(cursor, settle)
                row, promoted = self._mysql_take(cursor)
        if readied:
            self.store.ring()
        if row is None:
            return None, promoted
        job_id, payload, attempt, ttr, priority, pushed_at, running = row
        # Built leniently: a value that is not what it should be reaches the core's check
        # as it was read, and the job fails instead of coming back with every lease. The
        # attempt as read is the reservation token an ack, release or fail must name.
        running = as_int(running)
        return Message(str(job_id), as_bytes(payload), as_int(attempt), as_float(ttr),
                       priority=as_int(priority), pushed_at=as_float(pushed_at),
                       redelivered=type(running) is int and running > 1,
                       handle=attempt), promoted

    def _pg_cycle(self, cursor: Any, ack: Settlement | None) -> tuple[Any, int]:
        params: dict[str, Any] = {"c": self.store.channel, "grace": self.store.lease_grace,
                                  "aid": 0}
        kind = None
        if ack is not None:
            kind = "keep" if ack.keep else "delete"
            params.update(aid=int(ack.message.id), aatt=ack.message.handle, ares=ack.result)
        cursor.execute(self.sql.pg_cycle(kind), params)
        row = cursor.fetchone()
        return (None if row[0] is None else row[:7]), int(row[7])

    def _mysql_take(self, cursor: Any) -> tuple[Any, int]:
        """Reserve a waiting job, promoting due rows first only every PROMOTE_EVERY seconds
        or when none is waiting: a promotion is a round trip that mostly finds nothing."""
        now = time.monotonic()
        promoted = 0
        promote_first = now >= self._promote_at
        if promote_first:
            promoted = self._promote(cursor)
        row = self._take(cursor)
        if row is None and not promote_first:
            promoted = self._promote(cursor)
            if promoted:
                row = self._take(cursor)
        if promote_first or row is None:
            self._promote_at = now + PROMOTE_EVERY
        return row, promoted

    def _promote(self, cursor: Any) -> int:
        channel = {"c": self.store.channel}
        if self.store.dialect == "sqlite":
            cursor.execute(self.sql.promote, channel)
            return max(0, int(cursor.rowcount))
        cursor.execute(self.sql.promote_select, channel)
        ids = [row[0] for row in cursor.fetchall()]
        if ids:
            cursor.execute(self.sql.promote_ids(len(ids)),
                           {f"i{i}": job_id for i, job_id in enumerate(ids)})
        return len(ids)

    def _take(self, cursor: Any) -> Any:
        params = {"c": self.store.channel, "grace": self.store.lease_grace}
        if self.store.dialect == "sqlite":
            cursor.execute(self.sql.take_returning, params)
            return cursor.fetchone()
        # The row is read locked with its counts as the take leaves them, which saves
        # reading it again after the UPDATE (MySQL has no UPDATE ... RETURNING).
        cursor.execute(self.sql.pick_taken, params)
        picked = cursor.fetchone()
        if picked is None:
            return None
        cursor.execute(self.sql.take, {**params, "id": picked[0]})
        return picked

    # -- waiting ---------------------------------------------------------------------------

    def _seconds_to_next_due(self) -> float:
        with self.store._transaction(self._connection()) as cursor:
            cursor.execute(self.sql.next_due, {"c": self.store.channel})
            delayed, leased, now = cursor.fetchone()
        # A time that is no number (SQLite text, a NaN) never comes due: waiting for it
        # would spin or fail.
        dues = [due - float(now) for due in map(as_time, (delayed, leased)) if due is not None]
        return max(0.0, min(dues)) if dues else float("inf")

    def _wait_for_notify(self, seconds: float) -> bool:
        """Wait on LISTEN for a push; True when one came. The first call only subscribes
        (a push just before it would be missed), so the caller looks again at once."""
        if self._listener is None:
            self._listener = self._listen()
            return True
        driver_conn = self._listener.driver_connection
        try:
            ready, _, _ = select.select([driver_conn.fileno()], [], [], seconds)
            if not ready:
                return False
            # Read what arrived (several pushes wake us once); a closed connection raises.
            for _ in driver_conn.notifies(timeout=0, stop_after=64):
                pass
            return True
        except (self.store._errors + (ValueError,)) as exc:
            self._drop_listener()
            raise DriverError(f"db {self.store.describe()}: listening: "
                              f"{_first_line(exc)}") from exc

    def _listen(self) -> Any:
        store = self.store
        conn = store._checkout()
        try:
            conn.driver_connection.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f'LISTEN "{store.notify_channel}"')
        except store._errors as exc:
            conn.invalidate()
            conn.close()
            raise DriverError(f"db {store.describe()}: listening: {_first_line(exc)}") from exc
        return conn

    def _drop_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.invalidate()
                listener.close()
            except self.store._errors:
                pass

    # -- outcomes --------------------------------------------------------------------------

    def ack(self, message: Message, *, result: bytes | None = None, keep: bool = False) -> None:
        self.settle([Settlement(Verdict.ACK, message, result=result, keep=keep)])

    def release(self, message: Message, *, delay: float, error: ErrorInfo | None) -> None:
        self.settle([Settlement(Verdict.RELEASE, message, delay=delay, error=error)])

    def fail(self, message: Message, *, error: ErrorInfo, keep: bool = True) -> None:
        self.settle([Settlement(Verdict.FAIL, message, error=error, keep=keep)])

    def settle(self, settlements: Sequence[Settlement]) -> None:
        if not settlements:
            return
        with self.store._transaction(self._connection()) as cursor:
            readied = self._settle_rows(cursor, settlements)
        if readied:
            self.store.ring()

    def _settle_rows(self, cursor: Any, settlements: Sequence[Settlement]) -> bool:
        """Carry out ``settlements`` in the transaction of ``cursor``; True when a release
        made a job ready (or due later), which idle consumers are told of."""
        sql = self.sql
        readied = False
        for s in settlements:
            # The attempt a reservation read is its token: a row reserved again since
            # (its lease ran out) does not match, and stays as the new worker has it.
            params: dict[str, Any] = {"aid": int(s.message.id), "aatt": s.message.handle}
            if s.verdict is Verdict.ACK and s.keep:
                cursor.execute(sql.ack_keep, {**params, "ares": s.result})
            elif s.verdict is Verdict.RELEASE:
                cursor.execute(sql.release, {
                    **params, "status": "delayed" if s.delay > 0 else "waiting",
                    "delay": float(s.delay),
                    "error": None if s.error is None else json.dumps(s.error.as_dict())})
                readied = True
            elif s.verdict is Verdict.FAIL and s.keep:
                assert s.error is not None
                cursor.execute(sql.fail, {**params, "error": json.dumps(s.error.as_dict())})
            else:
                cursor.execute(sql.ack_delete, params)
        if readied:
            self.store._notify(cursor)
        return readied

    # -- lifetime --------------------------------------------------------------------------

    def after_fork(self) -> None:
        # The parent's connections are the parent's. They stay referenced: collected, the
        # pool would roll them back over the parent's sockets.
        self._inherited += [conn for conn in (self._conn, self._listener) if conn is not None]
        self._conn = self._listener = None
        if self._doorbell is not None:
            self._doorbell.after_fork()

    def close(self) -> None:
        self._drop_listener()
        if self._doorbell is not None:
            self._doorbell.close()
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                if self.store.dialect == "postgresql":
                    conn.driver_connection.autocommit = False  # the pool's default again
                elif self.store._mysql:
                    conn.driver_connection.autocommit(True)
                conn.close()
            except self.store._errors:
                pass


def _make_engine(url: str, options: dict[str, Any]) -> Any:
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
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
    return engine


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


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

