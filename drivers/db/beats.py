"""The DB driver's heartbeat table: a row per worker (channel, worker id, the record as
JSON, when to forget it), next to the queue table and created with it.

Its name is the queue table's plus ``_workers``, shortened with a checksum where that
would pass PostgreSQL's 63-character limit.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .sql import Sql

IDENTIFIER_MAX = 63
"""PostgreSQL's limit on a table name (MySQL allows 64)."""


def workers_table_name(table: str) -> str:
    name = f"{table}_workers"
    if len(name) > IDENTIFIER_MAX:
        name = f"{table[:42]}_{zlib.crc32(table.encode()):08x}_workers"
    return name


def build_workers_table(name: str) -> Any:
    """The SQLAlchemy ``Table`` of heartbeat records."""
    from sqlalchemy import Column, Double, MetaData, String, Table, Text
    from sqlalchemy.dialects import mysql

    # MySQL's TEXT holds 64 KB, a record may reach that: MEDIUMTEXT there.
    text = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
    return Table(
        name, MetaData(),
        Column("channel", String(100), primary_key=True),
        Column("id", String(200), primary_key=True),
        Column("forget_at", Double, nullable=False),
        Column("record", text, nullable=False),
    )


@dataclass(eq=False)
class BeatSql:
    """The statements on the heartbeat table, in the DB-API's parameter style."""

    sql: Sql
    """An Sql of the heartbeat table (its ``{t}`` is that table)."""

    @cached_property
    def update(self) -> str:
        return self.sql.q("UPDATE {t} SET record = :r, forget_at = :f "
                          "WHERE channel = :c AND id = :id")

    @cached_property
    def insert(self) -> str:
        return self.sql.q("INSERT INTO {t} (channel, id, forget_at, record) "
                          "VALUES (:c, :id, :f, :r)")

    @cached_property
    def purge(self) -> str:
        return self.sql.q("DELETE FROM {t} WHERE channel = :c AND forget_at < :now")

    @cached_property
    def listing(self) -> str:
        return self.sql.q("SELECT id, record FROM {t} WHERE channel = :c")

    @cached_property
    def forget(self) -> str:
        return self.sql.q("DELETE FROM {t} WHERE channel = :c AND id = :id")
