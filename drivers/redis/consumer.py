"""One worker's consumer of a Redis queue.

It fetches a few ready jobs at once (as many as the core asks for) *without starting
them*. When it begins a job it sends one script call that acks the job it just finished
and marks the next one started, without waiting for the reply (the replies are read at
the next blocking call). So Redis always knows which job is running: after a crash that
one counts as a lost run; jobs that were fetched but not begun come back after a short
lease, uncharged.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from queue_core.consumer import Consumer, Settlement, Verdict
from queue_core.errors import DriverError
from queue_core.logfields import job_extra
from queue_core.model import Message
from queue_core.records import as_bytes, as_float, as_int

from . import scripts as lua
from .connect import not_run, unreachable
from .scripts import pack

if TYPE_CHECKING:
    from .store import RedisDriver

logger = logging.getLogger(__name__)

BLOCK_MAX = 5.0
_new = tuple.__new__


@dataclass(slots=True)
class _Pending:
    """A command sent without waiting; resent after a reconnect until confirmed."""

    script: str
    packed: bytes
    """The command as sent (packed once: it is sent again as it was)."""
    on_reply: Callable[[Any], None] | None = None
    resend: bool = True
    """False for a read whose reply only its caller can use (a reserve): sent again
    after a reconnect, it would reserve jobs for no one until their lease ends."""


@dataclass(slots=True)
class _Handle:
    """A fetched job's reservation."""

    token: str
    attempts_before: Any
    """As read (a damaged record's may be no number: the core's check fails the job)."""
    fetched: float
    """time.monotonic() of the fetch."""
    clears: int
    """The store's count of ``clear`` calls at the fetch."""


class RedisConsumer(Consumer):
    """One worker's connection: fetches jobs unstarted, starts each with one script call
    that also carries the settlements the core kept back, and reads the replies of such
    calls at its next blocking call."""

    folds_settlements = True

    def __init__(self, store: RedisDriver) -> None:
        # The driver's prefetch option sets it for each store.
        self.prefetch = store.prefetch  # type: ignore[misc]
        self.store = store
        self._redis = store._redis
        self._scripts = store._scripts
        self._connector = store._connector
        self._stale = store._stale
        self._prefix = store.prefix
        self._finish_start = lua.FinishStart(store._scripts["finish_start"], store.prefix,
                                             int(store.lease_grace * 1000),
                                             store.retention_done)
        self._failed_retention = lua.retention_args(store.retention_failed)
        self._lease = int(store.prefetch_lease * 1000)
        self._fresh = store.prefetch_lease / 2
        """Seconds a fetched job may wait and still be started without a round trip."""
        self._notify = store._keys[lua.NOTIFY]
        self._conn: Any = None
        self._conn_pool: Any = None
        self._pending: deque[_Pending] = deque()
        self._unconfirmed: list[_Pending] = []
        self._tokens = f"{secrets.token_hex(6)}:{os.getpid()}"
        self._batches = 0
        self._short_writes = False

    def describe(self) -> str:
        return self.store.describe()

    # -- taking jobs -----------------------------------------------------------------

    def fetch(self, max_n: int, timeout: float,
              settle: Sequence[Settlement] = ()) -> list[Message]:
        deadline = time.monotonic() + timeout
        self._check_master()
        while True:
            found: tuple[list[Message], float, bool] = self._io(
                functools.partial(self._fetch, max_n, settle))
            messages, next_due, again = found
            settle = ()  # sent and confirmed by that round trip
            if messages:
                return messages
            if again:
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            wait = min(left, BLOCK_MAX)
            if next_due > 0:
                wait = min(wait, next_due)
            self._io(functools.partial(self._block, wait))

    def _fetch(self, max_n: int,
               settle: Sequence[Settlement]) -> tuple[list[Message], float, bool]:
        """One round trip: the settlements, then up to ``max_n`` jobs. Returns them, the
        seconds until the next delayed job is due (or -1), and whether to fetch again at
        once (damaged records took the place of jobs)."""
        self._send_settlements(settle)
        self._batches += 1
        token = f"{self._tokens}:{self._batches}"
        reply = self._call("reserve", lua.ReserveArgs(self._prefix, max_n, token, self._lease),
                           resend=False)
        server_now, jobs, next_due, damaged = (int(reply[0]), reply[1], float(reply[2]),
                                               reply[3])
        fetched, clears = time.monotonic(), self.store._clears
        messages = []
        for job_id, payload, ttr, priority, pushed, attempts, running in jobs:
            try:
                before: Any = int(attempts)
                message = Message(job_id.decode(), payload, before + 1, float(ttr),
                                  priority=int(priority), pushed_at=int(pushed) / 1000)
            except (TypeError, ValueError):
                # Not what a push wrote: kept as read, for the core's check to fail it.
                before = as_int(attempts)
                message = Message(job_id.decode(), as_bytes(payload),
                                  before + 1 if isinstance(before, int) else before,
                                  as_float(ttr), priority=as_int(priority),
                                  pushed_at=_seconds(pushed))
            message.redelivered = running == b"1"
            message.handle = _Handle(token, before, fetched, clears)
            messages.append(message)
        for job_id, reason in zip(damaged[::2], damaged[1::2], strict=True):
            text_id = job_id.decode(errors="replace")
            logger.error("job %s is damaged in the store: %s; it is failed without running",
                         text_id, reason.decode(errors="replace"),
                         extra=job_extra(self.store.channel, text_id))
        due = -1.0 if next_due < 0 else (next_due - server_now) / 1000
        return messages, due, bool(damaged) and not jobs

    def _block(self, seconds: float) -> None:
        """Wait for a push (or a delayed job's time) on the notify list."""
        conn = self._connection()
        self._drain()
        conn.send_packed_command([pack("BLPOP", self._notify, f"{max(0.01, seconds):.3f}")],
                                 check_health=False)
        conn.read_response()

    def begin(self, message: Message, settle: Sequence[Settlement] = ()) -> bool:
        """Mark ``message`` started with one script call that also acks a finished job,
        sent without waiting for the reply."""
        handle: _Handle = message.handle  # type: ignore[assignment]
        if self._stale is not None:
            self._check_master()
        try:
            if len(settle) == 1 and settle[0].verdict is Verdict.ACK:
                acked: Settlement | None = settle[0]  # once per job: the one just finished
            else:
                acked = self._send_settlements(settle, fold=True)
            ack = self._ack(acked)
            start = self._start(message, handle, ack)
            try:
                if (time.monotonic() - handle.fetched < self._fresh
                        and handle.clears == self.store._clears):
                    self._submit(start)
                    return True
                # It waited so long that its fetch lease may be over (or the queue was
                # cleared since): start it only if it is still ours, which takes a round
                # trip.
                replies: list[Any] = []
                start.on_reply = replies.append
                self._submit(start)
                self._drain()
            except BaseException:
                # Not handed to the worker: resend the ack only, never the start.
                start.packed = self._finish_start.pack(ack, None)
                raise
        except unreachable() as exc:
            raise self._lost(exc) from exc
        # Not 1: its fetch lease ran out and another worker has it (the core skips it).
        return bool(int(replies[0][1]) == 1)

    def begin_many(self, messages: Sequence[Message],
                   settle: Sequence[Settlement] = ()) -> list[bool]:
        """Start several jobs with one write: a script call each, each carrying one of the
        acks kept back."""
        if len(messages) == 1:
            return [self.begin(messages[0], settle)]
        if self._stale is not None:
            self._check_master()
        now, clears = time.monotonic(), self.store._clears
        for message in messages:
            handle: _Handle = message.handle  # type: ignore[assignment]
            if now - handle.fetched >= self._fresh or handle.clears != clears:
                # One of them waited past half its fetch lease: each is checked on its own.
                return super().begin_many(messages, settle)
        acks = [s for s in settle if s.verdict is Verdict.ACK]
        folded = [self._ack(s) for s in acks[:len(messages)]]
        folded += [None] * (len(messages) - len(folded))
        try:
            self._send_settlements([s for s in settle if s.verdict is not Verdict.ACK]
                                   + acks[len(messages):])
            starts = [self._start(message, cast(_Handle, message.handle), ack)
                      for message, ack in zip(messages, folded, strict=True)]
            try:
                self._submit_many(starts)
            except BaseException:
                # Not handed to the worker: resend the acks only, never the starts.
                for start, ack in zip(starts, folded, strict=True):
                    start.packed = self._finish_start.pack(ack, None)
                raise
        except unreachable() as exc:
            raise self._lost(exc) from exc
        return [True] * len(messages)

    def _start(self, message: Message, handle: _Handle, ack: lua.Ack | None) -> _Pending:
        """FINISH_START marking ``message`` started, carrying ``ack``."""
        # Built with tuple.__new__: the NamedTuple's own __new__ is a Python call, and this
        # runs once per job.
        return _Pending("finish_start", self._finish_start.pack(ack, _new(
            lua.Start, (message.id, handle.token, handle.attempts_before))))

    # -- settling --------------------------------------------------------------------

    def _ack(self, acked: Settlement | None) -> lua.Ack | None:
        """FINISH_START's ack of ``acked`` (if any)."""
        if acked is None:
            return None
        handle: _Handle = acked.message.handle  # type: ignore[assignment]
        return _new(lua.Ack, (acked.message.id, handle.token, acked.keep, acked.result or b""))

    def _send_settlements(self, settle: Sequence[Settlement],
                          fold: bool = False) -> Settlement | None:
        """Send each settlement without waiting for its reply; with ``fold``, keep one ack
        back and return it, for the caller's start to carry."""
        folded = None
        for s in settle:
            if s.verdict is Verdict.ACK:
                if fold and folded is None:
                    folded = s
                    continue
                self._submit(_Pending("finish_start", self._finish_start.pack(self._ack(s),
                                                                              None)))
                continue
            handle = cast(_Handle, s.message.handle)
            if s.verdict is Verdict.RELEASE:
                self._send("release", lua.ReleaseArgs(
                    self._prefix, s.message.id, handle.token, int(round(s.delay * 1000)),
                    "" if s.error is None else json.dumps(s.error.as_dict()),
                    given_back=False))
            else:
                assert s.error is not None
                self._send("fail", lua.FailArgs(self._prefix, s.message.id, handle.token,
                                                s.keep, json.dumps(s.error.as_dict()),
                                                self._failed_retention))
        return folded

    def settle(self, settlements: Sequence[Settlement]) -> None:
        """Carry out ``settlements`` in one round trip."""
        if settlements:
            self._io(functools.partial(self._confirm, settlements))

    def _confirm(self, settlements: Sequence[Settlement] = ()) -> None:
        """Send ``settlements``, then read every reply owed."""
        self._send_settlements(settlements)
        if self._unconfirmed:
            self._connection()
            self._drain()

    def give_back(self, messages: Sequence[Message]) -> None:
        """Back to waiting, uncharged: they were never started."""
        def send() -> None:
            for message in messages:
                handle = cast(_Handle, message.handle)
                self._send("release", lua.ReleaseArgs(self._prefix, message.id, handle.token,
                                                      0, "", given_back=True))
            self._confirm()
        self._io(send)

    # -- lifetime --------------------------------------------------------------------

    def after_fork(self) -> None:
        # The parent owns the connection and whatever it sent.
        self._conn = None
        self._pending = deque()
        self._unconfirmed = []

    def close(self) -> None:
        try:
            self._io(self._confirm)
        except DriverError as exc:
            logger.warning("could not send what the worker owes to %s: %s; those jobs "
                           "come back when their lease ends", self.describe(), exc)
        finally:
            self._drop_connection()

    # -- the connection --------------------------------------------------------------

    def _check_master(self) -> None:
        if self._stale is not None and self._conn is not None and self._stale(self._conn):
            # The Sentinels name another master: what is owed goes there, on a new
            # connection (commands the old one may have run check tokens and counts).
            logger.warning("redis %s: moving to the new master", self.describe())
            self._drop_connection()

    def _connection(self) -> Any:
        if self._conn is None:
            pool = self._connector.node().connection_pool
            try:
                conn: Any = pool.get_connection()
            except TypeError:  # redis-py before 5.3 wants a command name
                conn = pool.get_connection("EVALSHA")
            self._conn, self._conn_pool = conn, pool
            try:
                self._load_scripts(conn)
                # What was sent without an answer before the connection broke may not
                # have happened: every such command checks tokens and counts, so sending
                # it again is safe.
                self._pending = deque()
                for item in self._unconfirmed:
                    self._write(item)
                    self._pending.append(item)
            except BaseException:
                self._drop_connection()
                raise
        return self._conn

    def _load_scripts(self, conn: Any) -> None:
        for script in self._scripts.values():
            conn.send_command("SCRIPT", "LOAD", script.source)
        for _ in self._scripts:
            conn.read_response()

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        pool, self._conn_pool = self._conn_pool, None
        self._pending = deque()
        self._unconfirmed = [item for item in self._unconfirmed if item.resend]
        if conn is not None:
            try:
                conn.disconnect()
            finally:
                pool.release(conn)

    def _write(self, item: _Pending) -> None:
        self._conn.send_packed_command([item.packed], check_health=False)

    def _command(self, name: str, args: lua.Args, resend: bool = True) -> _Pending:
        return _Pending(name, self._scripts[name].call(args.to_args()), resend=resend)

    def _send(self, name: str, args: lua.Args, resend: bool = True) -> _Pending:
        """Send without waiting; the reply is read by the next round trip."""
        item = self._command(name, args, resend)
        self._submit(item)
        return item

    def _submit(self, item: _Pending) -> None:
        self._unconfirmed.append(item)
        if self._conn is None:
            self._connection()  # a new connection sends every unconfirmed item, this one too
        else:
            self._conn.send_packed_command([item.packed], check_health=False)
            self._pending.append(item)
        wait = self.store._wait_args
        if wait is not None and item.resend:
            self._send_wait(wait)

    def _submit_many(self, items: list[_Pending]) -> None:
        """``_submit`` for each, in one write."""
        self._unconfirmed.extend(items)
        if self._conn is None:
            self._connection()
        else:
            # Joined: redis-py writes each item of a list with a sendall of its own.
            self._conn.send_packed_command([b"".join([item.packed for item in items])],
                                           check_health=False)
            self._pending.extend(items)
        wait = self.store._wait_args
        if wait is not None:
            self._send_wait(wait)

    def _send_wait(self, args: lua.WaitArgs) -> None:
        """WAIT after a write (the wait option): its reply, read with the others, says how
        many replicas have every write of this connection so far."""
        item = _Pending("WAIT", pack("WAIT", *args.to_args()), on_reply=self._waited,
                        resend=False)
        self._unconfirmed.append(item)
        self._conn.send_packed_command([item.packed], check_health=False)
        self._pending.append(item)

    def _waited(self, reached: Any) -> None:
        wanted = self.store.wait
        short = not isinstance(reached, int) or reached < wanted
        if short and not self._short_writes:
            logger.warning("redis %s: writes reached %s of the %d replicas asked for (wait) "
                           "within %gs: a failover now can undo the latest acks, and their "
                           "jobs run again", self.describe(), reached, wanted,
                           self.store.wait_timeout)
        elif not short and self._short_writes:
            logger.warning("redis %s: writes reach %d replicas again", self.describe(),
                           wanted)
        self._short_writes = short

    def _read_pending(self) -> list[_Pending]:
        """Read the replies owed; return the commands the server did not run because it
        had lost the scripts (NOSCRIPT), to send again."""
        missing: list[_Pending] = []
        while self._pending:
            item = self._pending.popleft()
            try:
                reply = self._conn.read_response()
            except self._redis.exceptions.NoScriptError:
                missing.append(item)
                continue
            except self._redis.exceptions.ResponseError as exc:
                if not_run(exc):
                    # A demoted master, a slot that moved, a master short of replicas:
                    # nothing ran. The connection goes; a new one (to the server that
                    # serves the channel now) sends it again.
                    self._connector.moved()
                    self._drop_connection()
                    raise DriverError(f"redis {self.describe()}: the server does not take "
                                      f"the channel's writes now ({type(exc).__name__}: "
                                      f"{exc}); trying again") from exc
                # Sending it again would fail the same way; the replies still owed are
                # read by no one, so the connection starts afresh (resending the rest).
                self._unconfirmed.remove(item)
                self._drop_connection()
                raise DriverError(f"redis {self.describe()}: the {item.script} script "
                                  f"failed: {exc}") from exc
            self._unconfirmed.remove(item)
            if item.on_reply is not None:
                item.on_reply(reply)
        return missing

    def _drain(self) -> None:
        missing = self._read_pending()
        if not missing:
            return
        # The server lost its scripts (SCRIPT FLUSH, a restart, a failover to a server
        # that never loaded them): none of these commands ran. Load the scripts and send
        # them again, in order, once.
        logger.warning("redis %s had lost the queue's scripts (NOSCRIPT); loaded them "
                       "again", self.describe())
        self._load_scripts(self._conn)
        for item in missing:
            self._write(item)
            self._pending.append(item)
        if self._read_pending():
            self._drop_connection()  # the unconfirmed commands go again on a new one
            raise DriverError(f"redis {self.describe()}: the scripts vanished again right "
                              "after loading them (NOSCRIPT twice)")

    def _call(self, name: str, args: lua.Args, resend: bool = True) -> Any:
        """Send, then read every earlier reply and this one: one round trip."""
        item = self._send(name, args, resend)
        replies: list[Any] = []
        item.on_reply = replies.append
        self._drain()
        return replies[0]

    def _io(self, what: Callable[[], Any]) -> Any:
        """Run ``what``; a lost connection is dropped and becomes DriverError."""
        try:
            return what()
        except unreachable() as exc:
            raise self._lost(exc) from exc

    def _lost(self, exc: BaseException) -> DriverError:
        self._connector.moved()
        self._drop_connection()
        return DriverError(f"redis {self.describe()}: {exc}")


def _seconds(raw: Any) -> Any:
    """A stored time in ms as seconds, or the value as it was (see queue_core.records)."""
    value = as_float(raw)
    return value / 1000 if isinstance(value, float) else value

