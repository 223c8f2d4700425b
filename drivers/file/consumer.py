"""One worker's consumer of a file queue: its claims, the chores it does between them, and
the doorbell it waits on when there is nothing to claim.

A claim is one rename of a job's marker into ``reserved/`` (two workers racing both try,
exactly one succeeds); ``begin`` then bumps the attempt and sets the running flag in the
record, so a job given back unbegun was never charged. The consumer keeps the names it
has seen in memory (a heap of ready ids, a heap of delayed ones) and only rescans a
directory when its mtime says it changed. Between claims it sends back jobs whose lease
ran out, promotes due delayed jobs and collects dead segments.
"""

from __future__ import annotations

import base64
import heapq
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from queue_core.consumer import Consumer, Settlement
from queue_core.logfields import job_extra
from queue_core.model import ErrorInfo, Message
from queue_core.records import as_float, usable_ttr

from ..local_wakeup import Doorbell
from .layout import ID_RE
from .records import NS, Target, encode, mutable, parse
from .retention import Trimmer
from .segments import Files

if TYPE_CHECKING:
    from .store import FileDriver

logger = logging.getLogger(__name__)

BULK_ADOPT = 64
"""Above this many names in new/, a worker moves them all to waiting/ and its heap rather
than rescanning new/ on every claim."""
LEASE_SCAN_EVERY = 1.0
WAITING_RESCAN_EVERY = 5.0
DELAYED_RESCAN_EVERY = 30.0
SEGMENT_GC_EVERY = 10.0
SCAN_COST_FACTOR = 20
"""A periodic rescan waits at least this many times its own last duration."""
UNREADABLE_LEASE = 300.0
"""The lease of a reserved job whose record cannot be read when its lease is checked."""


class DirWatch:
    """Tells whether a directory may have changed since it was last listed.

    Directory mtimes come from the kernel's coarse clock, so a change in the same tick as
    our listing would keep the same mtime. A listing only counts as clean if the directory
    had been quiet for longer than any tick before the listing began."""

    QUIET_NS = 50_000_000

    def __init__(self, path: str) -> None:
        self.path = path
        self.seen = -1
        self.clean = False

    def _mtime(self) -> int:
        try:
            return os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return -1

    def changed(self) -> bool:
        return not self.clean or self._mtime() != self.seen

    def begin(self) -> tuple[int, int]:
        return self._mtime(), time.time_ns()

    def done(self, token: tuple[int, int]) -> None:
        self.seen, started = token
        self.clean = started - self.seen > self.QUIET_NS


@dataclass
class Handle:
    """A claim: the reserved marker, its record, and the run's attempt and start."""

    path: str
    target: Target
    meta: dict[str, Any]
    attempt: int
    started_ns: int


class FileConsumer(Consumer):
    """One worker's claims on a file queue."""

    prefetch = 1
    """Every claim is a rename of its own: claiming several at once saves no call."""

    def __init__(self, store: FileDriver) -> None:
        self.store = store
        self._files = Files(store.root, store.mode, store.fsync)
        self._ready: list[str] = []
        # Names from the last listing of new/ not yet claimed: new/ may not change again
        # to say they are there, so they are kept until claimed or listed afresh.
        self._fresh: list[str] = []
        self._delayed: list[tuple[int, str]] = []
        self._watch = {state: DirWatch(self._files.dirs[state])
                       for state in ("new", "waiting", "delayed")}
        self._next_lease_scan = 0
        self._next_waiting_rescan = 0
        self._next_delayed_rescan = 0
        self._delayed_scanned = 0
        self._delayed_gap = 0
        self._next_gc = 0
        self._doorbell = Doorbell(store.root / "wake", mode=store.mode)
        self._trimmer = Trimmer(
            self._files.dirs, {"done": store.retention_done, "failed": store.retention_failed},
            store._remove_marker)

    # -- fetch -----------------------------------------------------------------------

    def fetch(self, max_n: int, timeout: float,
              settle: Sequence[Settlement] = ()) -> list[Message]:
        if settle:
            self.settle(settle)
        deadline = time.monotonic() + timeout
        pause = 0.002
        poll = self.store.poll_interval
        while True:
            taken: list[Message] = []
            while len(taken) < max_n and (message := self._reserve_once()) is not None:
                taken.append(message)
            if taken:
                return taken
            left = deadline - time.monotonic()
            if left <= 0:
                return taken
            # A push rings the doorbell; the poll only covers what does not ring.
            nap = min(poll if self._doorbell.listening else pause, left)
            if self._delayed:
                nap = min(nap, max(0.0, (self._delayed[0][0] - time.time_ns()) / NS))
            if self._watch["delayed"].changed():
                # A delayed push rang while its rescan was held back: look once allowed.
                nap = min(nap, max(0.0, (self._delayed_scanned + self._delayed_gap
                                         - time.time_ns()) / NS))
            self._doorbell.wait(nap)
            pause = min(pause * 2, poll)

    def begin(self, message: Message, settle: Sequence[Settlement] = ()) -> bool:
        if settle:
            self.settle(settle)
        handle: Handle = message.handle  # type: ignore[assignment]
        # The run counts from here: a job fetched and given back was never charged.
        handle.started_ns = time.time_ns()
        self._files.update_header(message.id, handle.target,
                                  mutable(handle.attempt, True, handle.started_ns))
        return True

    def give_back(self, messages: Sequence[Message]) -> None:
        for message in messages:
            handle = cast(Handle, message.handle)
            try:
                os.rename(handle.path, self._files.path("new", message.id))
            except FileNotFoundError:
                continue  # its lease ran out: it is back already
        self._doorbell.ring()

    def _reserve_once(self) -> Message | None:
        now_ns = time.time_ns()
        self._maintain(now_ns)
        self._promote_due(now_ns)
        if self._watch["new"].changed():
            self._fresh = self._scan_new()
        fresh = self._fresh
        if not self._ready and self._watch["waiting"].changed():
            self._relist_waiting()
        position = 0
        while position < len(fresh) or self._ready:
            if self._ready and (position >= len(fresh) or self._ready[0] < fresh[position]):
                message = self._claim("waiting", heapq.heappop(self._ready), now_ns)
            else:
                message = self._claim("new", fresh[position], now_ns)
                position += 1
            if message is not None:
                del fresh[:position]
                return message
        fresh.clear()
        return None

    def _scan_new(self) -> list[str]:
        watch = self._watch["new"]
        token = watch.begin()
        names = [n for n in os.listdir(self._files.dirs["new"]) if ID_RE.match(n)]
        watch.done(token)
        if len(names) <= BULK_ADOPT:
            names.sort()
            return names
        for name in names:
            try:
                os.rename(self._files.path("new", name), self._files.path("waiting", name))
            except FileNotFoundError:
                continue
            heapq.heappush(self._ready, name)
        return []

    def _relist_waiting(self) -> None:
        watch = self._watch["waiting"]
        token = watch.begin()
        self._ready = [n for n in os.listdir(self._files.dirs["waiting"]) if ID_RE.match(n)]
        heapq.heapify(self._ready)
        watch.done(token)

    def _claim(self, state: str, job_id: str, now_ns: int) -> Message | None:
        """Take a job by renaming its marker into reserved/; its lease starts now, its
        attempt when the worker begins it."""
        path = self._files.path("reserved", f"{job_id}~{now_ns}")
        try:
            os.rename(self._files.path(state, job_id), path)
        except FileNotFoundError:
            return None
        try:
            target = Target.parse(os.readlink(path))
            record = parse(self._files.read(job_id, target))
        except (OSError, ValueError) as exc:
            self._quarantine(path, job_id, exc)
            return None
        attempt = record.attempt + 1
        meta = record.meta
        return Message(job_id, record.payload, attempt, as_float(meta.get("ttr")),
                       priority=int(job_id[:8], 16), pushed_at=as_float(meta.get("pushed_at")),
                       redelivered=record.running,
                       handle=Handle(path, target, meta, attempt, now_ns))

    def _quarantine(self, path: str, job_id: str, exc: Exception) -> None:
        """A marker whose record cannot be read: keep it where an operator will see it."""
        logger.error("job %s cannot be read (%s); moved to failed/", job_id, exc,
                     extra=job_extra(self.store.channel, job_id))
        try:
            os.rename(path, self._files.path("failed", job_id))
        except FileNotFoundError:
            pass

    # -- background chores, done by whichever worker fetches -------------------------

    def _maintain(self, now_ns: int) -> None:
        if now_ns >= self._next_lease_scan:
            self._next_lease_scan = now_ns + int(LEASE_SCAN_EVERY * NS)
            self._recover_leases(now_ns)
        if now_ns >= self._next_delayed_rescan or (
                now_ns >= self._delayed_scanned + self._delayed_gap
                and self._watch["delayed"].changed()):
            self._rescan_delayed(now_ns)
        if self._ready and now_ns >= self._next_waiting_rescan:
            started = time.monotonic()
            self._relist_waiting()
            cost = time.monotonic() - started
            self._next_waiting_rescan = now_ns + int(
                max(WAITING_RESCAN_EVERY, SCAN_COST_FACTOR * cost) * NS)
        if now_ns >= self._next_gc:
            started = time.monotonic()
            self.store._collect(now_ns)
            cost = time.monotonic() - started
            self._next_gc = now_ns + int(max(SEGMENT_GC_EVERY, SCAN_COST_FACTOR * cost) * NS)

    def _rescan_delayed(self, now_ns: int) -> None:
        started = time.monotonic()
        watch = self._watch["delayed"]
        token = watch.begin()
        found = []
        for name in os.listdir(self._files.dirs["delayed"]):
            if not ID_RE.match(name):
                continue
            try:
                found.append((Target.parse(os.readlink(
                    self._files.path("delayed", name))).ready_ns, name))
            except (OSError, ValueError):
                continue
        watch.done(token)
        heapq.heapify(found)
        self._delayed = found
        cost = time.monotonic() - started
        self._delayed_scanned = now_ns
        self._delayed_gap = int(max(0.05, SCAN_COST_FACTOR * cost) * NS)
        self._next_delayed_rescan = now_ns + int(
            max(DELAYED_RESCAN_EVERY, SCAN_COST_FACTOR * cost) * NS)

    def _promote_due(self, now_ns: int) -> None:
        while self._delayed and self._delayed[0][0] <= now_ns:
            _, job_id = heapq.heappop(self._delayed)
            path = self._files.path("delayed", job_id)
            try:
                # Released again with a later time since we listed it: not due yet.
                if Target.parse(os.readlink(path)).ready_ns > now_ns:
                    continue
                os.rename(path, self._files.path("new", job_id))
            except (OSError, ValueError):
                continue

    def _recover_leases(self, now_ns: int) -> None:
        for name in os.listdir(self._files.dirs["reserved"]):
            job_id, _, started = name.partition("~")
            if not ID_RE.match(job_id) or not started.isdigit():
                continue
            path = self._files.path("reserved", name)
            try:
                target = Target.parse(os.readlink(path))
                ttr = as_float(parse(self._files.read(job_id, target)).meta.get("ttr"))
            except FileNotFoundError:
                continue
            except (OSError, ValueError):
                ttr = UNREADABLE_LEASE  # perhaps read while being rewritten: look later
            if not usable_ttr(ttr):
                ttr = 0.0  # no worker runs a job with such a ttr: back at once, to be failed
            if now_ns < int(started) + int(self.store.lease_seconds(ttr) * NS):
                continue
            try:
                os.rename(path, self._files.path("new", job_id))
            except FileNotFoundError:
                continue
            logger.warning("job %s: lease expired (worker lost); back to waiting", job_id,
                           extra=job_extra(self.store.channel, job_id))

    # -- outcomes --------------------------------------------------------------------

    def _finish(self, message: Message, state: str, changes: dict[str, Any] | None = None, *,
                running: bool = False, ready_ns: int = 0) -> None:
        """Move a reserved job to ``state``. With ``changes`` (an error, a result) its
        record is rewritten to records/<id> first and its old record freed."""
        handle = cast(Handle, message.handle)
        target = handle.target
        files = self._files
        if not os.path.lexists(handle.path):
            logger.warning("job %s: its lease ended before the outcome was saved; it will "
                           "run again", message.id, extra=self._extra(message))
            return
        if changes:
            new_target = files.write_record_file(message.id, encode(
                {**handle.meta, **changes}, message.payload, handle.attempt, running,
                handle.started_ns))
        else:
            files.update_header(message.id, target,
                                mutable(handle.attempt, running, handle.started_ns))
            new_target = target
        if changes or ready_ns:
            if not files.repoint(handle.path, new_target, ready_ns):
                if changes:
                    files.bury_record(message.id, new_target)
                logger.warning("job %s: removed, or back from its lease, before the outcome "
                               "was saved", message.id, extra=self._extra(message))
                return
            if changes:
                files.bury_record(message.id, target)
        try:
            os.rename(handle.path, files.path(state, message.id))
        except FileNotFoundError:
            logger.warning("job %s: moved by another worker while saving its outcome",
                           message.id, extra=self._extra(message))
        files.sync_dir(state)

    def _extra(self, message: Message) -> dict[str, Any]:
        return job_extra(self.store.channel, message.id, attempt=message.attempt)

    def _drop(self, message: Message) -> None:
        handle: Handle = message.handle  # type: ignore[assignment]
        try:
            os.unlink(handle.path)
        except FileNotFoundError:
            logger.warning("job %s: its lease ended before it finished; it may run again",
                           message.id, extra=self._extra(message))
            return
        self._files.bury_record(message.id, handle.target)

    def ack(self, message: Message, *, result: bytes | None = None, keep: bool = False) -> None:
        if not keep:
            self._drop(message)
            return
        encoded = None if result is None else base64.b64encode(result).decode()
        self._finish(message, "done", {"finished_at": time.time(), "result": encoded,
                                       "error": None})
        self._trimmer.kept("done")

    def release(self, message: Message, *, delay: float, error: ErrorInfo | None) -> None:
        changes = None if error is None else {"error": error.as_dict()}
        if delay > 0:
            ready_ns = time.time_ns() + int(delay * NS)
            self._finish(message, "delayed", changes, ready_ns=ready_ns)
            heapq.heappush(self._delayed, (ready_ns, message.id))
        else:
            self._finish(message, "new", changes)
        # Other idle workers take it at once (or, when delayed, sleep until it is due).
        self._doorbell.ring()

    def fail(self, message: Message, *, error: ErrorInfo, keep: bool = True) -> None:
        if not keep:
            self._drop(message)
            return
        self._finish(message, "failed", {"finished_at": time.time(), "error": error.as_dict()})
        self._trimmer.kept("failed")

    # -- lifetime --------------------------------------------------------------------

    def after_fork(self) -> None:
        self._files.after_fork()
        self._doorbell.after_fork()

    def close(self) -> None:
        try:
            self._trimmer.flush()
        finally:
            self._files.close()
            self._doorbell.close()
