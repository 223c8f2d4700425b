"""The DB driver's unique keys: a table of (channel, key) -> the job holding it, next to the
queue table and created with it (a new table, so existing queue tables need no change).

Its primary key is the unique index: of two pushes of one key, the second's insert
conflicts and its transaction is tried again, finding the holder. A key held for a job's
life is held while that job's row is waiting, delayed or reserved: the commit that
finishes, fails or deletes the job frees it, with no statement of its own on the hot path
of PostgreSQL and MySQL (a later push of the key, or a purge, deletes the row left
behind; their ids are never given out twice). SQLite hands a deleted row's id to the next
row, so there the settle that ends the job deletes its key in the same transaction.
A ``unique_for`` key is held until its ``expires_at``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .beats import IDENTIFIER_MAX
from .sql import Sql

LIVE = "('waiting', 'delayed', 'reserved')"
"""The statuses in which a job holds its key."""


def unique_table_name(table: str) -> str:
    name = f"{table}_unique"
    if len(name) > IDENTIFIER_MAX:
        name = f"{table[:43]}_{zlib.crc32(table.encode()):08x}_unique"
    return name


def build_unique_table(name: str) -> Any:
    """The SQLAlchemy ``Table`` of unique keys."""
    from sqlalchemy import BigInteger, Column, Double, Index, MetaData, String, Table
    from sqlalchemy.dialects import mysql

    # MySQL compares VARCHARs without case and trailing spaces: keys are bytes there.
    key = String(200).with_variant(mysql.VARBINARY(800), "mysql", "mariadb")
    table = Table(
        name, MetaData(),
        Column("channel", String(100), primary_key=True),
        Column("ukey", key, primary_key=True),
        Column("job_id", BigInteger, nullable=False),
        Column("expires_at", Double),
    )
    Index(f"ix_{name}_job", table.c.channel, table.c.job_id)
    return table


@dataclass(eq=False)
class UniqueSql:
    """The statements on the unique table (``sql``'s ``{t}``), beside the queue table."""

    sql: Sql
    jobs: str
    """The queue table's name."""

    def _q(self, statement: str) -> str:
        jobs = self.sql.quote(self.jobs).replace("{", "{{").replace("}", "}}")
        return self.sql.q(statement.replace("{jobs}", jobs))

    _STALE = ("(expires_at <= {now} OR (expires_at IS NULL AND NOT EXISTS (SELECT 1 FROM "
              "{jobs} WHERE {jobs}.id = job_id AND {jobs}.status IN " + LIVE + ")))")

    @cached_property
    def free(self) -> str:
        """Free the key :k when its window ended or its job no longer lives."""
        return self._q("DELETE FROM {t} WHERE channel = :c AND ukey = :k AND " + self._STALE)

    @cached_property
    def holder(self) -> str:
        return self._q("SELECT job_id FROM {t} WHERE channel = :c AND ukey = :k")

    @cached_property
    def take(self) -> str:
        """The key, held for the life of job :id."""
        return self._q("INSERT INTO {t} (channel, ukey, job_id) VALUES (:c, :k, :id)")

    @cached_property
    def take_for(self) -> str:
        """The key, held for :w seconds from now."""
        return self._q("INSERT INTO {t} (channel, ukey, job_id, expires_at) "
                       "VALUES (:c, :k, :id, {now} + :w)")

    @cached_property
    def purge(self) -> str:
        """Free every key of the channel no longer held (a push does now and then)."""
        return self._q("DELETE FROM {t} WHERE channel = :c AND " + self._STALE)

    @cached_property
    def unhold(self) -> str:
        """Free the key job :id holds for its life (it is removed, or retried by hand)."""
        return self._q("DELETE FROM {t} WHERE channel = :c AND job_id = :id "
                       "AND expires_at IS NULL")

    @cached_property
    def clear(self) -> str:
        return self._q("DELETE FROM {t} WHERE channel = :c")
