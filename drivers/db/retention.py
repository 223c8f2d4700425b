"""Retention of the DB driver: deletes the kept done and failed rows beyond the queue's
limits.

A kept row's ``ready_at`` is its finish time (ready_at means nothing else once a job is
finished), so the ``(channel, status, ready_at)`` index that reserve uses for due rows
also orders kept rows by finish time: no index of its own, no schema change. A count trim
walks that index backwards ``max_count`` entries to the newest row it deletes, then
deletes the range below it; an age trim deletes one range. Walking costs ``max_count``
entries, so a consumer trims only every tenth of ``max_count`` kept jobs
(queue_core.retention.TrimPacer), in a transaction of its own after the settle's, and when
it closes. A trim that fails is
logged and left to the next one: it never fails a job.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from queue_core.errors import DriverError
from queue_core.retention import TrimPacer

if TYPE_CHECKING:
    from .store import DbDriver

logger = logging.getLogger(__name__)


class DbTrimmer:
    """One consumer's trims of its channel's kept rows, paced."""

    def __init__(self, store: DbDriver) -> None:
        self._store = store
        self._pacers = {status: TrimPacer(retention) for status, retention in (
            ("done", store.retention_done), ("failed", store.retention_failed))
            if retention.limited}
        self._due: list[str] = []

    @property
    def active(self) -> bool:
        return bool(self._pacers)

    @property
    def due(self) -> bool:
        return bool(self._due)

    def kept(self, status: str) -> None:
        """A settle kept a row as ``status`` ('done' or 'failed')."""
        pacer = self._pacers.get(status)
        if pacer is not None and pacer.kept() and status not in self._due:
            self._due.append(status)

    def trim_due(self, conn: Any) -> None:
        """Trim what the pace says is due, on ``conn``, after the settle committed."""
        while self._due:
            self._trim(conn, self._due.pop())

    def flush(self, conn: Any) -> None:
        """Trim whatever was kept since the last trim (the consumer closes)."""
        self._due.clear()
        for status, pacer in self._pacers.items():
            if pacer.pending:
                self._trim(conn, status)

    def _trim(self, conn: Any, status: str) -> None:
        pacer = self._pacers[status]
        retention = pacer.retention
        # A count trim walks max_count index entries; an age trim reads only what it deletes.
        pacer.trimmed(retention.max_count or 0)
        store, sql = self._store, self._store.sql
        params: dict[str, Any] = {"c": store.channel, "s": status}
        removed = 0
        try:
            with store._transaction(conn) as cursor:
                if retention.max_count is not None:
                    cursor.execute(sql.kept_cutoff, {**params, "n": retention.max_count})
                    row = cursor.fetchone()
                    if row is not None:
                        cursor.execute(sql.trim_below, {**params, "f": row[0], "id": row[1]})
                        removed += max(0, int(cursor.rowcount))
                if retention.max_age is not None:
                    cursor.execute(sql.trim_older, {**params, "age": retention.max_age})
                    removed += max(0, int(cursor.rowcount))
        except DriverError as exc:
            # Another worker trimming the same rows, a lock timeout: the next trim catches up.
            logger.warning("retention of %s jobs in %s: the trim failed (%s); the next one "
                           "will catch up", status, store.describe(), exc)
            return
        if removed:
            logger.debug("retention: %d kept %s job(s) removed", removed, status)
