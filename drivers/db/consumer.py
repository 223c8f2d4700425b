"""One worker's consumer of the DB driver's table, on a connection of its own.

The consumer folds the outcome of the finished job into the transaction of its next
reserve: on PostgreSQL the ack, the promotion of due rows and the reserve of the next job
are one statement, so one round trip and one commit per job. An idle PostgreSQL consumer
LISTENs and wakes on the NOTIFY every push, release and retry sends; on SQLite and MySQL
they ring a same-host doorbell (for MySQL, pushers on other hosts do not reach it: their
jobs wait for the poll, at a short interval that grows while the queue stays empty).

What Yii2-queue's DB driver is known for, and what this one does instead:
- A global mutex around every reserve: here each reserve is one short transaction that
  takes one row with ``FOR UPDATE SKIP LOCKED`` (SQLite: ``BEGIN IMMEDIATE``, which is one
  writer at a time by nature, in WAL mode with a busy timeout), so workers never wait on
  each other's jobs.
- Deadlocks between lease recovery and deletes: expired leases are taken back by the
  reserve itself (row by row, skipping locked rows), never by a sweep over the table.
- Slow reserves with a large delayed backlog: delayed rows live under their own status, and
  reserve reads two index ranges that hold only due or waiting rows.
"""

from __future__ import annotations

import json
import logging
import select
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from queue_core.consumer import Consumer, Settlement, Verdict
from queue_core.errors import DriverError
from queue_core.model import ErrorInfo, Message
from queue_core.records import as_bytes, as_float, as_int, as_time

from .engine import first_line
from .retention import DbTrimmer

if TYPE_CHECKING:
    from .store import DbDriver

logger = logging.getLogger(__name__)

IDLE_RECHECK = 5.0
"""Seconds an idle PostgreSQL worker goes without looking at the table, when no
notification came and nothing delayed or leased comes due: every change that makes a job
ready (push, release, retry) NOTIFYs, so this only bounds the cost of a lost one."""
PROMOTE_EVERY = 0.5
"""MySQL: seconds a worker that keeps finding waiting jobs goes without promoting due
delayed jobs and ended leases (it promotes at once whenever it finds nothing waiting)."""


class Taken(NamedTuple):
    """A row as a reserve leaves it, in the order of ``Sql._TAKEN`` (``pick_taken`` reads
    the same columns)."""

    id: Any
    payload: Any
    attempt: Any
    ttr: Any
    priority: Any
    pushed_at: Any
    running: Any


class DbConsumer(Consumer):
    """One worker's side of the table, on a connection of its own: it reserves, settles and
    waits (LISTEN on PostgreSQL, the doorbell on SQLite and MySQL, with a poll behind it)."""

    prefetch = 1
    folds_settlements = True
    """The core hands the outcomes of finished jobs to the next fetch, which carries them
    out in its own transaction (on PostgreSQL an ack is part of the reserve's statement)."""

    def __init__(self, store: DbDriver) -> None:
        self.store = store
        self.sql = store.sql
        self._unhold = (store._unique_sql.unhold if store.dialect == "sqlite"
                        and store.has_unique_table() else None)
        self._conn: Any = None
        self._listener: Any = None
        self._idle = store.poll_interval
        self._quiet_until = 0.0
        self._promote_at = 0.0
        self._doorbell = store.doorbell()
        self._inherited: list[Any] = []
        self._trimmer = DbTrimmer(store)

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
                raise DriverError(f"db {store.describe()}: {first_line(exc)}") from exc
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
        self._trim_due()
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

    def _pg_cycle(self, cursor: Any, ack: Settlement | None) -> tuple[Taken | None, int]:
        params: dict[str, Any] = {"c": self.store.channel, "grace": self.store.lease_grace,
                                  "aid": 0}
        kind = None
        if ack is not None:
            kind = "keep" if ack.keep else "delete"
            if ack.keep:
                self._trimmer.kept("done")
            params.update(aid=int(ack.message.id), aatt=ack.message.handle, ares=ack.result)
        cursor.execute(self.sql.pg_cycle(kind), params)
        *taken, promoted = cursor.fetchone()
        row = Taken(*taken)  # all NULL when none was taken
        return (None if row.id is None else row), int(promoted)

    def _mysql_take(self, cursor: Any) -> tuple[Taken | None, int]:
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
        ids = [job_id for (job_id,) in cursor.fetchall()]
        if ids:
            cursor.execute(self.sql.promote_ids(len(ids)),
                           {f"i{i}": job_id for i, job_id in enumerate(ids)})
        return len(ids)

    def _take(self, cursor: Any) -> Taken | None:
        params = {"c": self.store.channel, "grace": self.store.lease_grace}
        if self.store.dialect == "sqlite":
            cursor.execute(self.sql.take_returning, params)
            row = cursor.fetchone()
            return None if row is None else Taken(*row)
        # The row is read locked with its counts as the take leaves them, which saves
        # reading it again after the UPDATE (MySQL has no UPDATE ... RETURNING).
        cursor.execute(self.sql.pick_taken, params)
        row = cursor.fetchone()
        if row is None:
            return None
        picked = Taken(*row)
        cursor.execute(self.sql.take, {**params, "id": picked.id})
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
                              f"{first_line(exc)}") from exc

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
            raise DriverError(f"db {store.describe()}: listening: {first_line(exc)}") from exc
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
        self._trim_due()

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
                self._trimmer.kept("done")
            elif s.verdict is Verdict.RELEASE:
                cursor.execute(sql.release, {
                    **params, "status": "delayed" if s.delay > 0 else "waiting",
                    "delay": float(s.delay),
                    "error": None if s.error is None else json.dumps(s.error.as_dict())})
                readied = True
            elif s.verdict is Verdict.FAIL and s.keep:
                assert s.error is not None
                cursor.execute(sql.fail, {**params, "error": json.dumps(s.error.as_dict())})
                self._trimmer.kept("failed")
            else:
                cursor.execute(sql.ack_delete, params)
            if self._unhold is not None and s.verdict is not Verdict.RELEASE:
                # SQLite gives a deleted row's id to the next row: the key must go with
                # its job here, not be judged later by a row that may be another job's
                # (drivers/db/unique.py). In-process, it costs no round trip.
                cursor.execute(self._unhold, {"id": int(s.message.id), "c": self.store.channel})
        if readied:
            self.store._notify(cursor)
        return readied

    def give_back(self, messages: Sequence[Message]) -> None:
        """Fetched and never begun (held back by a rate limit, or the worker stops): back
        to waiting with the attempt their take counted undone."""
        with self.store._transaction(self._connection()) as cursor:
            for message in messages:
                cursor.execute(self.sql.give_back, {"aid": int(message.id),
                                                    "aatt": message.handle})
            self.store._notify(cursor)
        self.store.ring()

    def _trim_due(self) -> None:
        """Retention's trim, when due, after the settle committed: on the connection only
        while it is usable, so that a trim never stands between a reserve and its job."""
        if self._trimmer.due and self._conn is not None and self._conn.is_valid:
            self._trimmer.trim_due(self._conn)

    # -- lifetime --------------------------------------------------------------------------

    def after_fork(self) -> None:
        # The parent's connections are the parent's. They stay referenced: collected, the
        # pool would roll them back over the parent's sockets.
        self._inherited += [conn for conn in (self._conn, self._listener) if conn is not None]
        self._conn = self._listener = None
        if self._doorbell is not None:
            self._doorbell.after_fork()

    def close(self) -> None:
        if self._trimmer.active and self._conn is not None and self._conn.is_valid:
            try:
                self._trimmer.flush(self._conn)
            except Exception:  # noqa: BLE001 - closing must go on whatever the trim met
                logger.exception("retention: the trim at close failed")
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

