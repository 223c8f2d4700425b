"""The table of the DB driver and the SQL of every move, per dialect.

Statements are written once with ``:name`` placeholders and translated to the DB-API's own
parameter style, because the hot path runs them on the raw DB-API connection (a statement
through SQLAlchemy's expression layer costs more than the round trip it makes).

Rows and states:
- ``status`` is one of waiting, delayed, reserved, done, failed.
- ``ready_at`` is when a delayed job comes due and, while a job is reserved, when its lease
  ends. Reserve first turns due delayed rows and reserved rows whose lease ended back into
  waiting rows (the same statement on PostgreSQL, the same transaction elsewhere), then takes
  the first waiting row by (priority, id). Both are index range scans on
  ``(channel, status, ...)`` however many rows are delayed: no sweep, no global lock.
- ``attempt`` counts reserves, and doubles as the reservation token: an ack, release or fail
  names the attempt it ends, so a worker whose lease was taken over changes nothing.
- ``running`` counts runs begun without a verdict; a reserve that makes it 2 or more tells
  the core the previous run was lost.
Times come from the database, so workers on several hosts agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

NOW = {
    # now() (the transaction's start) rather than clock_timestamp(): a volatile function
    # cannot bound an index scan, and every statement of ours is its own short transaction.
    "postgresql": "extract(epoch from now())",
    "mysql": "unix_timestamp(now(6))",
    "mariadb": "unix_timestamp(now(6))",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}

PROMOTE_BATCH = 500
"""Due rows turned back into waiting ones per reserve, so one reserve stays short."""


def build_table(name: str) -> Any:
    """The SQLAlchemy ``Table``: used to create it and to print its DDL."""
    from sqlalchemy import (
        BigInteger,
        Column,
        Double,
        Index,
        Integer,
        LargeBinary,
        MetaData,
        String,
        Table,
        Text,
    )
    from sqlalchemy.dialects import mysql

    blob = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
    text = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
    table = Table(
        name, MetaData(),
        # SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
        Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
               autoincrement=True),
        Column("channel", String(100), nullable=False),
        Column("status", String(8), nullable=False),
        Column("priority", Integer, nullable=False),
        Column("ready_at", Double, nullable=False),
        Column("ttr", Double, nullable=False),
        Column("attempt", Integer, nullable=False, default=0),
        Column("running", Integer, nullable=False, default=0),
        Column("pushed_at", Double, nullable=False),
        Column("started_at", Double),
        Column("finished_at", Double),
        Column("error", text),
        Column("result", blob),
        Column("payload", blob, nullable=False),
        # Ids never come back on SQLite either: without AUTOINCREMENT a new row takes the
        # highest id plus one, so once the newest job is deleted, the next push would get
        # its id, and a status looked up by the old id would show the new job.
        sqlite_autoincrement=True,
    )
    Index(f"ix_{name}_next", table.c.channel, table.c.status, table.c.priority, table.c.id)
    Index(f"ix_{name}_due", table.c.channel, table.c.status, table.c.ready_at)
    return table


def ddl(table: Any, dialect: Any) -> list[str]:
    from sqlalchemy.schema import CreateIndex, CreateTable
    statements = [str(CreateTable(table).compile(dialect=dialect)).strip()]
    statements += [str(CreateIndex(index).compile(dialect=dialect)).strip()
                   for index in sorted(table.indexes, key=lambda index: index.name)]
    return statements


INT_MAX = 2**31 - 1
"""The largest value of an INTEGER column on PostgreSQL and MySQL."""


def _bumped(column: str) -> str:
    return f"CASE WHEN {column} < {INT_MAX} THEN {column} + 1 ELSE {column} END"


_PLACEHOLDER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@dataclass(eq=False)
class Sql:
    """Every statement of one table on one dialect, in the DB-API's parameter style."""

    dialect: str
    table: str
    paramstyle: str

    def __post_init__(self) -> None:
        self.now = NOW[self.dialect]
        self.returning = self.dialect in ("postgresql", "sqlite")

    def q(self, statement: str) -> str:
        """``statement`` with ``{t}`` and ``{now}`` filled in and ``:name`` placeholders in
        the driver's style."""
        text = statement.format(t=self.quote(self.table), now=self.now)
        if self.paramstyle in ("pyformat", "format"):
            text = text.replace("%", "%%")
            return _PLACEHOLDER.sub(r"%(\1)s", text)
        return text  # sqlite3 takes :name with a dict whatever its declared style

    def quote(self, name: str) -> str:
        if self.dialect in ("mysql", "mariadb"):
            return "`" + name.replace("`", "``") + "`"
        return '"' + name.replace('"', '""') + '"'

    # -- statements ------------------------------------------------------------------

    @cache  # noqa: B019 - a handful of statements per driver, kept for its life
    def insert(self, rows: int, returning: bool) -> str:
        values = ", ".join(
            f"(:c, :s{i}, :p{i}, {{now}} + :d{i}, :ttr{i}, 0, 0, {{now}}, :pl{i})"
            for i in range(rows))
        tail = " RETURNING id" if returning else ""
        return self.q("INSERT INTO {t} (channel, status, priority, ready_at, ttr, attempt, "
                      f"running, pushed_at, payload) VALUES {values}{tail}")

    @cache  # noqa: B019 - a handful of statements per driver, kept for its life
    def insert_alone(self, rows: int, returning: bool) -> str:
        """An INSERT that is its own transaction; on PostgreSQL it also NOTIFYs the
        channel's listeners (:n), delivered at its commit."""
        insert = self.insert(rows, returning)
        if self.dialect != "postgresql":
            return insert
        notify = "pg_notify(:n, '')" if self.paramstyle not in ("pyformat", "format") \
            else "pg_notify(%(n)s, '')"
        return f"WITH ins AS ({insert}) SELECT id, {notify} FROM ins"

    @cached_property
    def promote_select(self) -> str:
        return self.q(
            "SELECT id FROM {t} WHERE channel = :c AND status IN ('delayed', 'reserved') "
            f"AND ready_at <= {{now}} LIMIT {PROMOTE_BATCH} FOR UPDATE SKIP LOCKED")

    @cached_property
    def promote(self) -> str:
        """Due delayed rows and reserved rows whose lease ended become waiting again."""
        return self.q(
            "UPDATE {t} SET status = 'waiting' WHERE channel = :c "
            "AND status IN ('delayed', 'reserved') AND ready_at <= {now}")

    @cache  # noqa: B019 - a handful of statements per driver, kept for its life
    def promote_ids(self, count: int) -> str:
        marks = ", ".join(f":i{i}" for i in range(count))
        return self.q(f"UPDATE {{t}} SET status = 'waiting' WHERE id IN ({marks})")

    # A damaged row must not make the reserve itself fail (an INTEGER at its largest
    # would overflow on +1, for every reserve of the channel): such a count is left as it
    # is, and a count SQLite holds as text or a blob compares above any number, so it is
    # left as it was too and the core's check of the message fails the job.
    _TAKE_SET = (f"status = 'reserved', attempt = {_bumped('attempt')}, "
                 f"running = {_bumped('running')}, "
                 "started_at = {now}, ready_at = {now} + ttr + :grace")
    _TAKEN = "id, payload, attempt, ttr, priority, pushed_at, running"

    @cached_property
    def pick_taken(self) -> str:
        """MySQL: the next waiting row, locked, as ``take`` leaves it (the counts bumped)."""
        return self.q(
            f"SELECT id, payload, {_bumped('attempt')}, ttr, priority, pushed_at, "
            f"{_bumped('running')} FROM {{t}} WHERE channel = :c AND status = 'waiting' "
            "ORDER BY priority, id LIMIT 1 FOR UPDATE SKIP LOCKED")

    @cached_property
    def take(self) -> str:
        """Reserve the row picked (MySQL, which has no UPDATE ... RETURNING)."""
        return self.q(f"UPDATE {{t}} SET {self._TAKE_SET} WHERE id = :id")

    @cached_property
    def take_returning(self) -> str:
        """SQLite: pick and reserve in one statement, inside BEGIN IMMEDIATE."""
        return self.q(
            f"UPDATE {{t}} SET {self._TAKE_SET} WHERE id = ("
            "SELECT id FROM {t} WHERE channel = :c AND status = 'waiting' "
            f"ORDER BY priority, id LIMIT 1) RETURNING {self._TAKEN}")

    @cache  # noqa: B019 - a handful of statements per driver, kept for its life
    def pg_cycle(self, ack: str | None) -> str:
        """PostgreSQL: the ack of the finished job, the promotion of due rows and the reserve
        of the next job, in one statement and so one round trip and one commit. The
        promoted rows are only visible to the next statement: the count tells the driver to
        look again at once."""
        finish = {
            None: "",
            "delete": "fin AS (DELETE FROM {t} WHERE id = :aid AND status = 'reserved' "
                      "AND attempt = :aatt RETURNING 1), ",
            "keep": "fin AS (UPDATE {t} SET status = 'done', finished_at = {now}, "
                    "ready_at = {now}, result = :ares, error = NULL, running = 0 WHERE id = :aid "
                    "AND status = 'reserved' AND attempt = :aatt RETURNING 1), ",
        }[ack]
        return self.q(
            "WITH " + finish +
            "due AS (UPDATE {t} SET status = 'waiting' WHERE id IN ("
            "SELECT id FROM {t} WHERE channel = :c AND status IN ('delayed', 'reserved') "
            f"AND ready_at <= {{now}} AND id <> :aid LIMIT {PROMOTE_BATCH} "
            "FOR UPDATE SKIP LOCKED) RETURNING 1), "
            "pick AS (SELECT id FROM {t} WHERE channel = :c AND status = 'waiting' "
            "ORDER BY priority, id LIMIT 1 FOR UPDATE SKIP LOCKED), "
            f"took AS (UPDATE {{t}} SET {self._TAKE_SET} FROM pick WHERE {{t}}.id = pick.id "
            f"RETURNING {', '.join('{t}.' + c for c in self._TAKEN.split(', '))}) "
            f"SELECT {self._TAKEN}, (SELECT count(*) FROM due) FROM took "
            "UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, (SELECT count(*) FROM due) "
            "WHERE NOT EXISTS (SELECT 1 FROM took)")

    @cached_property
    def next_due(self) -> str:
        """Seconds until the next delayed job or lease end (each an index lookup)."""
        return self.q(
            "SELECT (SELECT min(ready_at) FROM {t} WHERE channel = :c AND status = 'delayed'), "
            "(SELECT min(ready_at) FROM {t} WHERE channel = :c AND status = 'reserved'), "
            "{now}")

    @cached_property
    def ack_delete(self) -> str:
        return self.q("DELETE FROM {t} WHERE id = :aid AND status = 'reserved' "
                      "AND attempt = :aatt")

    @cached_property
    def ack_keep(self) -> str:
        return self.q("UPDATE {t} SET status = 'done', finished_at = {now}, "
                      "ready_at = {now}, result = :ares, error = NULL, running = 0 "
                      "WHERE id = :aid AND status = 'reserved' AND attempt = :aatt")

    @cached_property
    def release(self) -> str:
        return self.q("UPDATE {t} SET status = :status, ready_at = {now} + :delay, "
                      "running = 0, error = coalesce(:error, error) WHERE id = :aid "
                      "AND status = 'reserved' AND attempt = :aatt")

    @cached_property
    def give_back(self) -> str:
        """A reserved row back to waiting as it was before its take: uncharged."""
        return self.q("UPDATE {t} SET status = 'waiting', ready_at = {now}, "
                      "attempt = CASE WHEN attempt > 0 THEN attempt - 1 ELSE 0 END, "
                      "running = CASE WHEN running > 0 THEN running - 1 ELSE 0 END "
                      "WHERE id = :aid AND status = 'reserved' AND attempt = :aatt")

    @cached_property
    def fail(self) -> str:
        return self.q("UPDATE {t} SET status = 'failed', finished_at = {now}, "
                      "ready_at = {now}, error = :error, running = 0 WHERE id = :aid "
                      "AND status = 'reserved' AND attempt = :aatt")

    # Retention (retention.py): a kept row's ready_at is its finish time, so the index
    # on (channel, status, ready_at) orders kept rows by finish time.

    @cached_property
    def kept_cutoff(self) -> str:
        """The newest kept row beyond the :n newest (by finish time, then id)."""
        return self.q("SELECT ready_at, id FROM {t} WHERE channel = :c AND status = :s "
                      "ORDER BY ready_at DESC, id DESC LIMIT 1 OFFSET :n")

    @cached_property
    def trim_below(self) -> str:
        """Delete the kept rows up to the cutoff row (:f, :id), that one included."""
        return self.q("DELETE FROM {t} WHERE channel = :c AND status = :s AND "
                      "(ready_at < :f OR (ready_at = :f AND id <= :id))")

    @cached_property
    def trim_older(self) -> str:
        """Delete the kept rows that finished more than :age seconds ago."""
        return self.q("DELETE FROM {t} WHERE channel = :c AND status = :s "
                      "AND ready_at < {now} - :age")

    _ROW = ("id, status, attempt, priority, ttr, pushed_at, started_at, finished_at, ready_at, "
            "error, result, payload")

    @cached_property
    def get(self) -> str:
        return self.q(f"SELECT {self._ROW} FROM {{t}} WHERE id = :id AND channel = :c")

    @cached_property
    def status(self) -> str:
        return self.q("SELECT status FROM {t} WHERE id = :id AND channel = :c")

    @cached_property
    def listing(self) -> str:
        return self.q(f"SELECT {self._ROW} FROM {{t}} WHERE channel = :c AND status = :status "
                      "ORDER BY id LIMIT :limit")

    @cached_property
    def oldest_waiting(self) -> str:
        """The push time of the first waiting row (ids grow in push order; the min reads
        the (channel, status, ...) index), and of due delayed rows not yet promoted."""
        return self.q(
            "SELECT (SELECT pushed_at FROM {t} WHERE id = (SELECT min(id) FROM {t} "
            "WHERE channel = :c AND status = 'waiting')), (SELECT min(pushed_at) FROM {t} "
            "WHERE channel = :c AND status = 'delayed' AND ready_at <= {now})")

    @cached_property
    def counts(self) -> str:
        return self.q("SELECT status, count(*) FROM {t} WHERE channel = :c GROUP BY status")

    @cache  # noqa: B019 - a handful of statements per driver, kept for its life
    def with_status(self, count: int) -> str:
        """The first ids of rows whose status is one of ``count`` values (info names the
        rows whose status it does not know)."""
        marks = ", ".join(f":s{i}" for i in range(count))
        return self.q(f"SELECT id FROM {{t}} WHERE channel = :c AND status IN ({marks}) "
                      "ORDER BY id LIMIT 10")

    @cached_property
    def remove(self) -> str:
        return self.q("DELETE FROM {t} WHERE id = :id AND channel = :c")

    @cached_property
    def clear(self) -> str:
        return self.q("DELETE FROM {t} WHERE channel = :c")

    @cached_property
    def lock_one(self) -> str:
        lock = "" if self.dialect == "sqlite" else " FOR UPDATE"
        return self.q(f"SELECT status FROM {{t}} WHERE id = :id AND channel = :c{lock}")

    @cached_property
    def requeue(self) -> str:
        return self.q("UPDATE {t} SET status = 'waiting', ready_at = {now}, error = NULL, "
                      "result = NULL, started_at = NULL, finished_at = NULL, running = 0, "
                      "attempt = CASE WHEN :reset = 1 THEN 0 ELSE attempt END WHERE id = :id")
