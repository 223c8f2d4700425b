"""The DB driver's rate limits: a row per limit (channel, name, state as JSON) in a table
next to the queue table, created with it.

Each call is one short transaction: the limits' rows are read locked (``FOR UPDATE`` on
PostgreSQL and MySQL, ``BEGIN IMMEDIATE`` on SQLite), changed by the core's algorithm
(queue_core.limits.take_tokens) at the database's clock, and written back; a missing row
is inserted first, ignoring a row another worker inserted meanwhile.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from queue_core.limits import Bucket, Limit, Limiter, Want, take_tokens

from .beats import IDENTIFIER_MAX
from .sql import Sql

if TYPE_CHECKING:
    from .store import DbDriver

NAME_MAX = 200
CLOCK = {
    # The statement's own time, not the transaction's: the row lock may have been waited for.
    "postgresql": "extract(epoch from clock_timestamp())",
    "mysql": "unix_timestamp(now(6))",
    "mariadb": "unix_timestamp(now(6))",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}


def limits_table_name(table: str) -> str:
    name = f"{table}_limits"
    if len(name) > IDENTIFIER_MAX:
        name = f"{table[:43]}_{zlib.crc32(table.encode()):08x}_limits"
    return name


def build_limits_table(name: str) -> Any:
    """The SQLAlchemy ``Table`` of limit states."""
    from sqlalchemy import Column, MetaData, String, Table, Text
    from sqlalchemy.dialects import mysql

    text = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
    return Table(
        name, MetaData(),
        Column("channel", String(100), primary_key=True),
        Column("name", String(NAME_MAX), primary_key=True),
        Column("state", text, nullable=False),
    )


def row_name(name: str) -> str:
    """A limit's name as its row holds it (a long job name is cut, with a checksum)."""
    if len(name) <= NAME_MAX:
        return name
    return f"{name[:NAME_MAX - 9]}_{zlib.crc32(name.encode()):08x}"


@dataclass(eq=False)
class LimitSql:
    sql: Sql
    """An Sql of the limits table (its ``{t}`` is that table)."""

    def select(self, count: int) -> str:
        names = ", ".join(f":n{i}" for i in range(count))
        lock = "" if self.sql.dialect == "sqlite" else " FOR UPDATE"
        return self.sql.q(f"SELECT name, state FROM {{t}} WHERE channel = :c AND name IN "
                          f"({names}) ORDER BY name{lock}")

    @cached_property
    def insert(self) -> str:
        dialect = self.sql.dialect
        head = {"sqlite": "INSERT OR IGNORE INTO", "mysql": "INSERT IGNORE INTO",
                "mariadb": "INSERT IGNORE INTO"}.get(dialect, "INSERT INTO")
        tail = " ON CONFLICT DO NOTHING" if dialect == "postgresql" else ""
        return self.sql.q(f"{head} {{t}} (channel, name, state) VALUES (:c, :n, :s){tail}")

    @cached_property
    def update(self) -> str:
        return self.sql.q("UPDATE {t} SET state = :s WHERE channel = :c AND name = :n")

    @cached_property
    def clock(self) -> str:
        return f"SELECT {CLOCK[self.sql.dialect]}"


class DbLimiter(Limiter):
    def __init__(self, store: DbDriver, statements: LimitSql) -> None:
        self._store = store
        self._sql = statements

    def _locked(self, cursor: Any, names: list[str]) -> dict[str, Bucket]:
        """The rows of ``names``, locked; missing ones inserted first."""
        params = {"c": self._store.channel, **{f"n{i}": n for i, n in enumerate(names)}}
        statement = self._sql.select(len(names))
        cursor.execute(statement, params)
        rows = cursor.fetchall()
        if len(rows) < len(names):
            found = {row[0] for row in rows}
            for name in names:
                if name not in found:
                    cursor.execute(self._sql.insert, {"c": self._store.channel, "n": name,
                                                      "s": "{}"})
            cursor.execute(statement, params)
            rows = cursor.fetchall()
        buckets = {str(name): Bucket.from_data(_json(state)) for name, state in rows}
        return {name: buckets.get(name) or Bucket() for name in names}

    def acquire(self, limits: Sequence[Limit], wants: Sequence[Want]) -> tuple[list[bool], float]:
        stored = [Limit(row_name(limit.name), limit.rate, limit.bucket_size,
                        limit.max_concurrent) for limit in limits]
        names = sorted({limit.name for limit in stored})
        with self._store._transaction() as cursor:
            buckets = self._locked(cursor, names)
            cursor.execute(self._sql.clock)
            now = float(cursor.fetchone()[0])
            result = take_tokens(buckets, stored, wants, now)
            for name in names:
                cursor.execute(self._sql.update, {"c": self._store.channel, "n": name,
                                                  "s": json.dumps(buckets[name].as_data())})
        return result

    def release(self, slots: Sequence[tuple[str, str]]) -> None:
        names = sorted({row_name(name) for name, _ in slots})
        with self._store._transaction() as cursor:
            buckets = self._locked(cursor, names)
            for name, token in slots:
                buckets[row_name(name)].slots.pop(token, None)
            for name in names:
                cursor.execute(self._sql.update, {"c": self._store.channel, "n": name,
                                                  "s": json.dumps(buckets[name].as_data())})


def _json(raw: Any) -> Any:
    try:
        return json.loads(raw)
    except (TypeError, ValueError, RecursionError):
        return None
