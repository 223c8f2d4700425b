"""The DB driver's marks table: a running job's cancel mark and its latest progress, a row
per job that has either (job id, channel, cancel_at, progress), next to the queue table
and created with it, as the heartbeat table is.

A table of its own rather than columns of the queue table: tables made by earlier versions
need no ALTER (``create_table`` and ``queue-core db init`` create what is missing, with
``checkfirst``), and the hot path's statements and row size stay as they were. Rows of
jobs that are gone are purged now and then by ``set_progress`` and ``cancel``.

Its name is the queue table's plus ``_marks``, shortened with a checksum where that would
pass PostgreSQL's 63-character limit.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from .beats import IDENTIFIER_MAX
from .sql import Sql


def marks_table_name(table: str) -> str:
    name = f"{table}_marks"
    if len(name) > IDENTIFIER_MAX:
        name = f"{table[:44]}_{zlib.crc32(table.encode()):08x}_marks"
    return name


def build_marks_table(name: str) -> Any:
    """The SQLAlchemy ``Table`` of marks."""
    from sqlalchemy import BigInteger, Column, Double, Integer, MetaData, String, Table, Text

    return Table(
        name, MetaData(),
        Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
               autoincrement=False),
        Column("channel", String(100), nullable=False),
        Column("cancel_at", Double),
        Column("progress", Text),
    )


@dataclass(eq=False)
class MarkSql:
    """The statements on the marks table; ``jobs`` is the queue table's Sql."""

    sql: Sql
    jobs: Sql

    @cached_property
    def fail_waiting(self) -> str:
        """Fail a waiting or delayed job now, its attempt count as it was."""
        return self.jobs.q(
            "UPDATE {t} SET status = 'failed', finished_at = {now}, ready_at = {now}, "
            "error = :error, running = 0 WHERE id = :id AND channel = :c "
            "AND status IN ('waiting', 'delayed')")

    @cached_property
    def delete_waiting(self) -> str:
        return self.jobs.q("DELETE FROM {t} WHERE id = :id AND channel = :c "
                           "AND status IN ('waiting', 'delayed')")

    @cached_property
    def mark_cancel(self) -> str:
        return self.sql.q("UPDATE {t} SET cancel_at = coalesce(cancel_at, {now}) "
                          "WHERE id = :id")

    @cached_property
    def insert_cancel(self) -> str:
        return self.sql.q("INSERT INTO {t} (id, channel, cancel_at) VALUES (:id, :c, {now})")

    @cached_property
    def set_progress(self) -> str:
        return self.sql.q("UPDATE {t} SET progress = :p WHERE id = :id")

    @cached_property
    def insert_progress(self) -> str:
        return self.sql.q("INSERT INTO {t} (id, channel, progress) VALUES (:id, :c, :p)")

    @cached_property
    def get(self) -> str:
        return self.sql.q("SELECT cancel_at, progress FROM {t} WHERE id = :id")

    @cache  # noqa: B019 - a handful of statements per driver, kept for its life
    def cancelled(self, count: int) -> str:
        marks = ", ".join(f":i{i}" for i in range(count))
        return self.sql.q(f"SELECT id, cancel_at FROM {{t}} WHERE id IN ({marks}) "
                          "AND cancel_at IS NOT NULL")

    @cached_property
    def forget(self) -> str:
        return self.sql.q("DELETE FROM {t} WHERE id = :id")

    @cached_property
    def clear(self) -> str:
        return self.sql.q("DELETE FROM {t} WHERE channel = :c")

    @cached_property
    def purge(self) -> str:
        """Rows of this channel whose job is gone."""
        jobs = self.jobs.quote(self.jobs.table)
        return self.sql.q("DELETE FROM {t} WHERE channel = :c AND NOT EXISTS "
                          f"(SELECT 1 FROM {jobs} j WHERE j.id = {{t}}.id)")
