"""Retention of the beanstalk driver: deletes the buried (failed) jobs of a tube beyond the
queue's ``keep_failed`` limits, and their reasons in the side tube ``<channel>.failed``.

beanstalkd keeps a tube's buried jobs in bury order and ``peek-buried`` shows the oldest,
so a count trim deletes from there while ``stats-tube`` counts more than ``max_count``
buried. Each step is one round trip: the delete of the job found last and of its reason,
the count, and the peeks at the oldest buried job and at the side tube's head. It reads
the count again each time, so that workers trimming at once delete the excess and no more.

A buried job has no bury time (its stats' ``age`` runs from its put), so an age trim reads
the failure time of the reasons (``finished_at``), which the side tube holds in failure
order: it deletes from the side tube's head while the reason is older than ``max_age``,
with its job while that is still buried. Reasons whose job is gone (trimmed by count,
removed) leave the head too, so the side tube stays about as large as the buried set.

A consumer trims every tenth of ``max_count`` buries, at the next bury a second after its
last trim (queue_core.retention.TrimPacer), and when it closes: on the store's connection,
not on the one that holds its worker's reservations. A trim that fails is logged and left
to the next one: it never fails a job.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, TypeVar

from queue_core.errors import DriverError
from queue_core.model import Retention
from queue_core.records import as_time
from queue_core.retention import TrimPacer

from . import protocol
from .errors import NotFound, ReplyError
from .jobs import REASON_TTR, read_reason
from .protocol import UINT32, Command

if TYPE_CHECKING:
    from .client import Client
    from .connection import Connection
    from .store import BeanstalkDriver

logger = logging.getLogger(__name__)

T = TypeVar("T")


class BuriedTrimmer:
    """One consumer's trims of its tube's buried jobs, paced."""

    def __init__(self, store: BeanstalkDriver) -> None:
        self._store = store
        retention = store.retention_failed
        self._pacer = TrimPacer(retention) if retention.limited else None

    def buried(self) -> None:
        """A job was buried (kept as failed): trim when the pace says so."""
        if self._pacer is not None and self._pacer.kept():
            self._trim(self._pacer)

    def flush(self) -> None:
        """Trim whatever was buried since the last trim (the consumer closes)."""
        if self._pacer is not None and self._pacer.pending:
            self._trim(self._pacer)

    def _trim(self, pacer: TrimPacer) -> None:
        # Each trim starts with one count (or one peek): its cost does not grow with the
        # number kept, so the pace stays at a tenth of max_count.
        pacer.trimmed()
        store = self._store
        try:
            removed = store._io(lambda c: trim(c, store.channel, store.reasons_tube,
                                               pacer.retention))
        except (DriverError, ReplyError) as exc:
            logger.warning("retention of failed jobs in %s: the trim failed (%s); the next "
                           "one will catch up", store.describe(), exc)
            return
        if removed:
            logger.debug("retention: %d buried job(s) removed from %s", removed,
                         store.describe())


def trim(c: Client, channel: str, reasons_tube: str, retention: Retention) -> int:
    """Delete the buried jobs of ``channel`` that ``retention`` does not keep, and the
    reasons of jobs that are gone; how many jobs it deleted."""
    gone: set[int] = set()
    removed = 0
    if retention.max_count is not None:
        removed += _trim_count(c.conn, channel, reasons_tube, retention.max_count, gone)
    removed += _trim_reasons(c.conn, channel, reasons_tube, retention.max_age, gone)
    return removed


def _answer(command: Command[T], conn: Connection) -> T | None:
    """A pipelined command's reply; None for NOT_FOUND (the job or tube is gone), which
    leaves the stream in step for the replies after it."""
    try:
        return command.read(conn)
    except NotFound:
        return None


def _count(document: bytes | None, key: str) -> int:
    """A count of a stats document; 0 when it is missing or not a number."""
    if document is None:
        return 0
    value = protocol.parse_stats(document).get(key, "")
    return int(value) if value.isdigit() else 0


def _deleted(command: Command[None], conn: Connection) -> bool:
    """A pipelined delete's reply: False when the job was gone already."""
    try:
        command.read(conn)
    except NotFound:
        return False
    return True


def _trim_count(conn: Connection, channel: str, reasons_tube: str, max_count: int,
                gone: set[int]) -> int:
    """Delete the oldest buried jobs while more than ``max_count`` are buried; how many it
    deleted. Each step also peeks at the side tube's head: a reason there that names the
    job about to go goes with it in the next step (reasons and buries come in the same
    order, except when workers fail jobs at the same moment: ``_trim_reasons`` then drops
    the rest)."""
    removed = 0
    job: int | None = None
    reason: int | None = None
    while True:
        delete_job = None if job is None else protocol.delete(job)
        delete_reason = None if reason is None else protocol.delete(reason)
        stats, oldest, head = (protocol.stats_tube(channel), protocol.peek_buried(),
                               protocol.peek_ready())
        deletes = [command for command in (delete_job, delete_reason) if command is not None]
        to_tube, to_side, back = (protocol.use(channel), protocol.use(reasons_tube),
                                  protocol.use(channel))
        conn.send(to_tube, *deletes, stats, oldest, to_side, head, back)
        to_tube.read(conn)
        if delete_job is not None and job is not None:
            removed += _deleted(delete_job, conn)
            gone.add(job)  # by this trim or another: its reason can go
        if delete_reason is not None:
            _deleted(delete_reason, conn)
        buried = _count(_answer(stats, conn), "current-jobs-buried")
        found = _answer(oldest, conn)
        to_side.read(conn)
        record = _answer(head, conn)
        back.read(conn)
        if found is None or buried <= max_count:
            return removed
        job = found.id
        data = None if record is None else read_reason(record.body)
        reason = record.id if record is not None and data is not None and (
            data["id"] == job) else None


def _trim_reasons(conn: Connection, channel: str, reasons_tube: str, max_age: float | None,
                  gone: set[int]) -> int:
    """Drop reasons from the side tube's head while their job is gone, or while they are
    older than ``max_age`` (their job deleted with them while it is still buried); stop at
    the first that stays. How many buried jobs it deleted."""
    cut = None if max_age is None else time.time() - max_age
    removed = 0
    rewritten: int | None = None
    """The first reason written again: met at the head, every older one has been seen."""
    pending: list[Command[object]] = [protocol.use(reasons_tube)]
    while True:
        peek = protocol.peek_ready()
        conn.send(*pending, peek)
        for command in pending:
            _answer(command, conn)
        pending = []
        record = _answer(peek, conn)
        if record is None or (rewritten is not None and record.id >= rewritten):
            break
        data = read_reason(record.body)
        if data is None or data["id"] in gone:
            pending.append(protocol.delete(record.id))  # not ours, or its job is gone
            continue
        job_id: int = data["id"]
        failed_at = as_time(data.get("finished_at"))
        if cut is not None and failed_at is None:
            # Its failure time cannot be read: it counts from now, at the tail, rather
            # than block the trims behind it or delete a job before its time.
            put = protocol.put(json.dumps({**data, "finished_at": time.time()}).encode(),
                               UINT32, 0, REASON_TTR)
            conn.send(put)
            new_id = put.read(conn)
            rewritten = new_id if rewritten is None else rewritten
            pending.append(protocol.delete(record.id))
            continue
        state = _state(conn, job_id, channel)
        if state is None:
            gone.add(job_id)
        elif cut is not None and failed_at is not None and failed_at < cut:
            if state == "buried":
                pending.append(protocol.delete(job_id))
                gone.add(job_id)
                removed += 1
            # else its bury was lost and the job came back to run again: only its stale
            # reason goes.
        else:
            break
        pending.append(protocol.delete(record.id))
    pending.append(protocol.use(channel))
    conn.send(*pending)
    for command in pending:
        _answer(command, conn)
    return removed


def _state(conn: Connection, job_id: int, channel: str) -> str | None:
    """The job's state (``buried``, ``ready``, ...), or None when it is gone (or is not a
    job of ``channel``: a reason read back names a job id, which is checked)."""
    command = protocol.stats_job(job_id)
    conn.send(command)
    document = _answer(command, conn)
    if document is None:
        return None
    stats = protocol.parse_stats(document)
    return stats.get("state", "") if stats.get("tube") == channel else None
