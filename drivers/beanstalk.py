"""The beanstalk driver: beanstalkd's own ttr lease, delays and priorities.

It speaks beanstalkd's protocol itself (``beanstalk_wire``): no client library, so nothing a
client's release changes can break the pipelining below.

- The tube is the channel. beanstalkd's ttr is the lease (whole seconds: ttr plus the
  grace, rounded up); the worker enforces the real ttr, which travels in the job body.
- Attempts are the job's ``reserves`` stat. A retry is ``release`` with the core's delay;
  a final failure ``bury``s the job and writes the reason to the side tube
  ``<channel>.failed``; ``retry`` ``kick``s it back.
- A lost run (the worker's connection closed, or beanstalkd timed the reservation out) is
  told apart from a normal end by the job's priority. Every reservation ends in a
  release, a bury, or a loss (a timeout, or a closed connection, which beanstalkd does not
  count), so ``reserves - 1 - releases - buries`` is the number of lost runs. beanstalkd's
  32-bit priority carries ours in its upper 24 bits and, in the lower 8, that number as
  of the job's last normal end; a job that comes back with a larger one was lost.
- The store's connection serves pushes and admin, one thread at a time; each worker's
  consumer has its own, which holds the jobs it reserved (closing it gives them back).
- One round trip per job: the delete (or release) of the finished job, which the core
  keeps back for the consumer to fold into its next fetch, the next reserve and the stats
  of the job that reserve will most likely return go out together. The guess is the id
  after the last job (beanstalkd numbers jobs in push order, so a FIFO tube hits every
  time), or, after a wrong guess, the job peek-ready shows. A wrong guess costs one more
  round trip. Jobs are reserved by beanstalkd's own ``reserve``, never ahead of time, so
  a crash never charges a job that had not started.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar, cast
from urllib.parse import urlsplit

from queue_core.consumer import Consumer, Settlement, Verdict
from queue_core.errors import (
    ConfigError,
    DriverError,
    InvalidArgumentError,
    JobNotFoundError,
    JobNotInStateError,
    NotSupportedError,
)
from queue_core.model import (
    DEFAULT_PRIORITY,
    Capabilities,
    ErrorInfo,
    JobInfo,
    JobStatus,
    Message,
)
from queue_core.options import (
    ADDRESS,
    CHANNEL,
    LEASE_GRACE,
    Option,
    check_options,
    documented,
    seconds,
    text,
    url_and_options,
    whole,
)
from queue_core.records import as_time
from queue_core.store import Store

from . import beanstalk_wire as wire

logger = logging.getLogger(__name__)

PRIORITY_BITS = 24
MAX_PRIORITY = 2**PRIORITY_BITS - 1
_LOST_MASK = 0xFF
_BODY = b"QCB1 "
_STATE = {"ready": JobStatus.WAITING, "delayed": JobStatus.DELAYED,
          "reserved": JobStatus.RESERVED, "buried": JobStatus.FAILED}


_UINT32 = 2**32 - 1
_BODY_HEADER_MAX = 64
"""Bytes our body header (marker, ttr, push time) may take ahead of the payload."""
_LEASE_ENDED = "job %s: its lease ended before the outcome was saved; it will run again"

T = TypeVar("T")


def _whole_seconds(value: float, what: str, minimum: int = 0) -> int:
    """Seconds as beanstalkd takes them (a 32-bit whole number), checked before sending:
    a value it cannot parse would put the connection out of step."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and 0 <= value <= _UINT32):
        raise InvalidArgumentError(f"{what} {value!r} is out of range for the beanstalk "
                                   f"driver: 0 to {_UINT32} seconds")
    return max(minimum, math.ceil(value))


def _priority(priority: int | None, lost: int = 0) -> int:
    """Our priority in beanstalkd's upper 24 bits, the lost runs so far in the lower 8."""
    ours = DEFAULT_PRIORITY if priority is None else priority
    if isinstance(ours, bool) or not isinstance(ours, int) or not 0 <= ours <= MAX_PRIORITY:
        raise InvalidArgumentError(f"priority {ours!r} is out of range for the beanstalk "
                                   f"driver: 0 to {MAX_PRIORITY}")
    return (ours << 8) | (lost & _LOST_MASK)


def _body(payload: bytes, ttr: float, pushed_at: float) -> bytes:
    return b"%s%r %r\n%s" % (_BODY, float(ttr), pushed_at, payload)


def _unbody(body: bytes) -> tuple[float | None, float | None, bytes]:
    """(ttr, pushed_at, payload); a body not written by us is all payload."""
    if not body.startswith(_BODY):
        return None, None, body
    head, _, payload = body.partition(b"\n")
    try:
        ttr, pushed = head[len(_BODY):].split()
        return float(ttr), float(pushed), payload
    except ValueError:
        return None, None, body


def _reason(body: bytes) -> dict[str, Any] | None:
    """A failure record of the side tube, or None when it is not one of ours."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or isinstance(data.get("id"), bool) or not isinstance(
            data.get("id"), int):
        return None
    return data


# The stats a reserve needs, out of stats-job's lines, as bounded numbers (the document is
# read back from the network): in one match of the lines as beanstalkd writes them, or key
# by key for a server that writes them otherwise.
_COUNT_NAMES = (b"pri", b"ttr", b"reserves", b"releases", b"buries")
_COUNTS_IN_ORDER = re.compile(
    rb"---\nid: \d+\ntube: [^\n]*\nstate: [a-z]+\npri: (\d{1,20})\nage: \d+\ndelay: \d+\n"
    rb"ttr: (\d{1,20})\ntime-left: \d+\nfile: \d+\nreserves: (\d{1,20})\ntimeouts: \d+\n"
    rb"releases: (\d{1,20})\nburies: (\d{1,20})\n")
_COUNTS_BY_KEY = re.compile(rb"^(pri|ttr|reserves|releases|buries): (\d{1,20})$", re.M)

Counts = tuple[bytes | None, ...]
"""pri, ttr, reserves, releases, buries: each the digits sent, or None when missing."""


def _parse_counts(document: bytes) -> Counts:
    found = _COUNTS_IN_ORDER.match(document)
    if found is not None:
        return found.groups()
    named = dict(_COUNTS_BY_KEY.findall(document))
    return tuple(named.get(name) for name in _COUNT_NAMES)


class _Client:
    """A connection using and watching the channel's tube, plus the pipelined exchanges
    the worker needs per job."""

    def __init__(self, address: tuple[str, int], tube: str, timeout: float) -> None:
        self.conn = wire.Connection.connect(address, timeout)
        self.tube = tube
        setup: list[wire.Command[object]] = [wire.use(tube), wire.watch(tube)]
        if tube != "default":
            setup.append(wire.ignore("default"))
        try:
            self.conn.send(*setup)
            for command in setup:
                command.read(self.conn)
        except BaseException:
            self.conn.close()
            raise

    def call(self, command: wire.Command[wire.T]) -> wire.T:
        return self.conn.call(command)

    def cycle(self, owed: Sequence[_Owed], timeout: int, hint: int | None,
              peek: bool) -> tuple[wire.Job | None, Counts | None, int | None]:
        """One round trip: settle ``owed`` (the finished jobs' deletes and releases),
        reserve the next job, read the counts of ``hint`` (the job the reserve is expected
        to return) and, with ``peek``, ask peek-ready for the next hint. Returns (reserved
        job, its counts if the hint was right, the job peek-ready showed)."""
        conn = self.conn
        reserve = wire.reserve_with_timeout(timeout)
        commands: list[wire.Command[object]] = [item.command for item in owed]
        commands.append(reserve)
        stats = peeked = None
        if hint is not None:
            stats = wire.stats_job(hint)
            commands.append(stats)
        if peek:
            peeked = wire.peek_ready()
            commands.append(peeked)
        conn.send(*commands)
        _read_owed(owed, conn)
        reserved: wire.Job | None
        try:
            reserved = reserve.read(conn)
        except (wire.TimedOut, wire.DeadlineSoon):
            reserved = None
        counts = None
        if stats is not None:
            counts = _counts(stats, conn)
            if reserved is None or reserved.id != hint:
                counts = None
        return reserved, counts, None if peeked is None else _peeked(peeked, conn)

    def settle(self, owed: Sequence[_Owed]) -> None:
        """One round trip: the deletes and releases, with no reserve."""
        self.conn.send(*(item.command for item in owed))
        _read_owed(owed, self.conn)

    def counts_and_peek(self, job_id: int) -> tuple[Counts | None, int | None]:
        stats, peeked = wire.stats_job(job_id), wire.peek_ready()
        self.conn.send(stats, peeked)
        return _counts(stats, self.conn), _peeked(peeked, self.conn)

    def job_stats(self, job_id: int) -> dict[str, str] | None:
        try:
            return wire.parse_stats(self.conn.call(wire.stats_job(job_id)))
        except wire.NotFound:
            return None

    def tube_stats(self, tube: str) -> dict[str, str]:
        """The tube's stats; none for a tube beanstalkd has dropped (it had no jobs)."""
        try:
            return wire.parse_stats(self.conn.call(wire.stats_tube(tube)))
        except wire.NotFound:
            return {}

    def peek_body(self, job_id: int) -> bytes | None:
        try:
            return self.conn.call(wire.peek(job_id)).body
        except wire.NotFound:
            return None

    def close(self) -> None:
        self.conn.close()


class _Owed(NamedTuple):
    """A settlement that is one command, so that it can share a write with others."""

    command: wire.Command[None]
    job: str
    warn: bool
    """Warn when beanstalkd no longer knows the reservation: the job runs again. Not for
    an ack's delete, where it may only mean that an earlier try of it went through."""


def _read_owed(owed: Sequence[_Owed], conn: wire.Connection) -> None:
    for item in owed:
        try:
            item.command.read(conn)
        except wire.NotFound:
            if item.warn:
                logger.warning(_LEASE_ENDED, item.job)


def _counts(command: wire.Command[bytes], conn: wire.Connection) -> Counts | None:
    """The counts of a stats-job reply, or None for a job that is gone."""
    try:
        document = command.read(conn)
    except wire.NotFound:
        return None
    found = _COUNTS_IN_ORDER.match(document)
    return _parse_counts(document) if found is None else found.groups()


def _peeked(command: wire.Command[wire.Job], conn: wire.Connection) -> int | None:
    """The id a peek-ready reply shows, or None for an empty tube."""
    try:
        return command.read(conn).id
    except wire.NotFound:
        return None


@dataclass
class _Handle:
    job_id: int
    priority: int
    lost: int
    """Lost runs so far, written into the priority at this run's normal end."""


def _message(job_id: int, body: bytes, counts: Counts) -> Message:
    ttr, pushed_at, payload = _unbody(body)
    pri_sent, ttr_sent, reserves_sent, releases, buries = counts
    pri = int(pri_sent or 0)
    reserves = int(reserves_sent or 1)
    lost = reserves - 1 - int(releases or 0) - int(buries or 0)
    if ttr is None:  # not pushed by us: beanstalkd's ttr is all there is
        ttr = float(ttr_sent or 60)
    return Message(
        str(job_id), payload, reserves, ttr, priority=pri >> 8, pushed_at=pushed_at,
        redelivered=(lost & _LOST_MASK) != (pri & _LOST_MASK),
        handle=_Handle(job_id, pri >> 8, lost))


class _Link:
    """One connection to the store's beanstalkd, using and watching its tube, opened on
    first use. Not thread-safe: the store guards its own, and each consumer has one."""

    def __init__(self, store: BeanstalkDriver) -> None:
        self.store = store
        self.client: _Client | None = None

    def io(self, what: Callable[[_Client], T]) -> T:
        """``what(client)``. A broken connection, or any reply that is not the answer a
        command expects, drops the connection and becomes DriverError: after a protocol
        error the stream may be out of step (beanstalkd reading a body as a command), and
        every later reply would belong to the command before it."""
        try:
            if self.client is None:
                store = self.store
                self.client = _Client(store.address, store.channel, store.connect_timeout)
            return what(self.client)
        except (wire.NotFound, wire.TimedOut, wire.DeadlineSoon):
            raise  # ordinary answers, read in full: the stream is in step
        except wire.JobTooBig:
            self.drop()
            raise
        except (OSError, ValueError, wire.BeanstalkError) as exc:
            self.drop()
            detail = str(exc) or type(exc).__name__
            raise DriverError(f"{self.store.describe()}: {detail}") from exc

    def drop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()

    def forget(self) -> None:
        """In a forked child: the parent's socket stays the parent's."""
        self.client = None


OPTIONS = (
    Option("host", text(), "127.0.0.1", "The beanstalkd server's host name or address.",
           ADDRESS),
    Option("port", whole(1, 65535), 11300, "The beanstalkd server's port.", ADDRESS),
    CHANNEL,
    LEASE_GRACE,
    Option("connect_timeout", seconds(0, above=True), 5.0,
           "Seconds to wait for a connection to the server."),
)


@documented(OPTIONS)
class BeanstalkDriver(Store):
    """Jobs in a beanstalkd tube: ``beanstalk://host:port`` (the channel is the tube)."""

    name = "beanstalk"
    options = OPTIONS
    capabilities = Capabilities(
        delay=True, priority=True, priority_range=(0, MAX_PRIORITY), ttr_lease=True,
        retry=True, attempt_count=True, status=True, failed_store=True, keep_completed=False,
        manual_retry=True, remove=True, clear=True, info=True,
        listing=frozenset({JobStatus.FAILED}),
        lease_by_connection=True)

    def __init__(self, host: str = "127.0.0.1", port: int = 11300, *, channel: str = "queue",
                 lease_grace: float = 1.0, connect_timeout: float = 5.0) -> None:
        super().__init__(channel=channel)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"beanstalk port must be 1-65535, got {port!r}", key="driver")
        checked = check_options(self.name, self.options, {
            "lease_grace": lease_grace, "connect_timeout": connect_timeout})
        self.address = (host, port)
        self.lease_grace = checked["lease_grace"]
        self.connect_timeout: float = checked["connect_timeout"]
        self.reasons_tube = f"{channel}.failed"
        # Pushes and admin of every thread share one connection, one call at a time;
        # each worker's consumer has its own.
        self._link = _Link(self)
        self._lock = threading.Lock()
        self._max_job_size: int | None = None

    @classmethod
    def from_url(cls, url: str, **given: Any) -> BeanstalkDriver:
        base, values = url_and_options(cls.name, cls.options, url, given)
        parts = urlsplit(base)
        try:
            port = parts.port or 11300
        except ValueError:
            raise ConfigError(f"beanstalk URL {url!r} has a bad port", key="driver") from None
        return cls(parts.hostname or "127.0.0.1", port, **values)

    def describe(self) -> str:
        return f"beanstalk://{self.address[0]}:{self.address[1]} tube {self.channel}"

    def open_consumer(self) -> Consumer:
        return _BeanstalkConsumer(self)

    def _io(self, what: Callable[[_Client], T]) -> T:
        with self._lock:
            return self._link.io(what)

    # -- push ------------------------------------------------------------------------

    def _lease(self, ttr: float) -> int:
        return _whole_seconds(ttr + self.lease_grace, "ttr", minimum=1)

    payload_limit_setting = "beanstalkd's max-job-size, its -z option"

    def payload_limit(self) -> int | None:
        """beanstalkd's max-job-size (its -z option), less the header our body carries."""
        if self._max_job_size is None:
            try:
                stats = self._io(lambda c: wire.parse_stats(c.call(wire.stats())))
                self._max_job_size = int(stats.get("max-job-size", 65535))
            except (DriverError, TypeError, ValueError) as exc:
                logger.debug("cannot read max-job-size from %s: %s", self.describe(), exc)
                return None
        return max(0, self._max_job_size - _BODY_HEADER_MAX)

    def push(self, payload: bytes, *, ttr: float, delay: float = 0.0,
             priority: int | None = None) -> str:
        body = _body(payload, ttr, time.time())
        pri, lease = _priority(priority), self._lease(ttr)
        wait = _whole_seconds(delay, "delay")
        try:
            job_id = self._io(lambda c: c.call(wire.put(body, pri, wait, lease)))
        except wire.JobTooBig:
            raise InvalidArgumentError(
                f"a job of {len(body)} bytes is larger than {self.describe()} accepts "
                "(beanstalkd's max-job-size, -z, default 65535); nothing was queued") from None
        return str(job_id)

    # -- failure reasons -------------------------------------------------------------

    def _reasons(self, c: _Client, limit: int | None = None,
                 drop: set[int] | None = None) -> dict[int, dict[str, Any]]:
        """The records of the side tube, read by reserving each and releasing it back
        (beanstalkd cannot list ready jobs otherwise). Records of ``drop`` are deleted."""
        found: dict[int, dict[str, Any]] = {}
        held = []
        c.call(wire.watch(self.reasons_tube))
        c.call(wire.ignore(self.channel))
        try:
            while limit is None or len(found) < limit:
                try:
                    record = c.call(wire.reserve_with_timeout(0))
                except (wire.TimedOut, wire.DeadlineSoon):
                    # DEADLINE_SOON: this connection also holds a job whose ttr is nearly
                    # up; the records read so far are the answer.
                    break
                data = _reason(record.body)
                if data is None or (drop is not None and data["id"] in drop):
                    c.call(wire.delete(record.id))  # unreadable, or the reason of a job that goes
                    continue
                found[data["id"]] = data
                held.append(record.id)
        finally:
            for record_id in held:
                c.call(wire.release(record_id, wire.UINT32, 0))
            c.call(wire.watch(self.channel))
            c.call(wire.ignore(self.reasons_tube))
        return found

    # -- lookups and admin -----------------------------------------------------------

    def _job_id(self, job_id: str) -> int | None:
        try:
            number = int(job_id)
        except (TypeError, ValueError):
            return None
        return number if number > 0 else None

    def status(self, job_id: str) -> JobStatus | None:
        number = self._job_id(job_id)
        if number is None:
            return None
        stats = self._io(lambda c: c.job_stats(number))
        return None if stats is None else _STATE.get(stats.get("state", ""))

    def get(self, job_id: str) -> JobInfo | None:
        number = self._job_id(job_id)
        if number is None:
            return None
        def look(c: _Client) -> JobInfo | None:
            stats = c.job_stats(number)
            if stats is None:
                return None
            body = c.peek_body(number)
            return None if body is None else self._info(number, stats, body, c)
        return self._io(look)

    def _info(self, number: int, stats: dict[str, str], body: bytes, c: _Client,
              reason: dict[str, Any] | None = None) -> JobInfo:
        ttr, pushed_at, payload = _unbody(body)
        state = _STATE.get(stats.get("state", ""), JobStatus.WAITING)
        if state is JobStatus.FAILED and reason is None:
            reason = self._reasons(c).get(number)
        now = time.time()
        delay_left = int(stats.get("time-left", 0)) if state is JobStatus.DELAYED else 0
        return JobInfo(
            id=str(number), status=state, attempt=int(stats.get("reserves", 0)),
            priority=int(stats.get("pri", 0)) >> 8,
            ttr=ttr if ttr is not None else float(stats.get("ttr", 0)), pushed_at=pushed_at,
            ready_at=now + delay_left if delay_left else None,
            finished_at=None if reason is None else as_time(reason.get("finished_at")),
            error=None if reason is None else ErrorInfo.from_dict(reason.get("error")),
            payload=payload)

    def info(self) -> dict[JobStatus, int]:
        def count(c: _Client) -> dict[JobStatus, int]:
            stats = c.tube_stats(self.channel)
            return {JobStatus.WAITING: int(stats.get("current-jobs-ready", 0)),
                    JobStatus.DELAYED: int(stats.get("current-jobs-delayed", 0)),
                    JobStatus.RESERVED: int(stats.get("current-jobs-reserved", 0)),
                    JobStatus.DONE: 0,
                    JobStatus.FAILED: int(stats.get("current-jobs-buried", 0))}
        return self._io(count)

    def jobs(self, status: JobStatus, limit: int = 100) -> list[JobInfo]:
        if status is not JobStatus.FAILED:
            raise NotSupportedError("the beanstalk driver can only list failed jobs: "
                                    "beanstalkd cannot list the others without taking them")
        def listed(c: _Client) -> list[JobInfo]:
            found = []
            gone = set()
            for number, reason in sorted(self._reasons(c).items()):
                stats = c.job_stats(number)
                if stats is None:
                    gone.add(number)
                if stats is None or stats.get("state") != "buried":
                    continue
                body = c.peek_body(number)
                if body is None:
                    continue
                found.append(self._info(number, stats, body, c, reason))
                if len(found) >= limit:
                    break
            if gone:
                self._reasons(c, drop=gone)  # reasons of jobs since deleted
            return found
        return self._io(listed)

    def remove(self, job_id: str) -> bool:
        number = self._job_id(job_id)
        if number is None:
            return False
        def delete(c: _Client) -> bool:
            stats = c.job_stats(number)
            try:
                c.call(wire.delete(number))
            except wire.NotFound:
                return False
            if stats is not None and stats.get("state") == "buried":
                self._reasons(c, drop={number})
            return True
        return self._io(delete)

    def clear(self) -> None:
        def empty(c: _Client, tube: str) -> None:
            stats = c.tube_stats(tube)
            if not stats:
                return
            c.call(wire.use(tube))
            for peek, count in ((wire.peek_ready, "current-jobs-ready"),
                                (wire.peek_delayed, "current-jobs-delayed"),
                                (wire.peek_buried, "current-jobs-buried")):
                # The jobs there at the start, and no more: pushes racing the clear must
                # not keep it going forever.
                for _ in range(int(stats.get(count, 0))):
                    try:
                        c.call(wire.delete(c.call(peek()).id))
                    except wire.NotFound:
                        break
            c.call(wire.use(self.channel))

        def run(c: _Client) -> None:
            empty(c, self.channel)
            empty(c, self.reasons_tube)
        self._io(run)

    def retry(self, job_id: str, *, state: JobStatus, reset_attempts: bool = False) -> None:
        number = self._job_id(job_id)
        if number is None:
            raise JobNotFoundError(f"no job {job_id!r} in {self.describe()}")

        def kick(c: _Client) -> None:
            stats = c.job_stats(number)
            if stats is None:
                raise JobNotFoundError(f"no job {job_id!r} in {self.describe()}")
            actual = _STATE.get(stats.get("state", ""))
            if actual is not JobStatus.FAILED:
                raise JobNotInStateError(f"job {job_id} is {actual}, not {state}")
            c.call(wire.kick_job(number))
            self._reasons(c, drop={number})
        self._io(kick)

    def after_fork(self) -> None:
        self._link.forget()
        self._lock = threading.Lock()  # a thread of the parent may have held it

    def close(self) -> None:
        with self._lock:
            self._link.drop()


class _BeanstalkConsumer(Consumer):
    """One worker's connection. Jobs are reserved one at a time by beanstalkd's own
    reserve, never ahead, so a crash never charges a job that had not started; the deletes
    and releases the core keeps back go out in the same write as the next reserve."""

    prefetch = 1
    folds_settlements = True

    def __init__(self, store: BeanstalkDriver) -> None:
        self.store = store
        self._link = _Link(store)
        self._hint: int | None = None
        # Ask peek-ready for the hints (True) or guess the next id (False); a wrong hint
        # switches, so a FIFO tube guesses and a tube read out of order peeks.
        self._peek = False
        self._idle_pause = 0.02

    def fetch(self, max_n: int, timeout: float,
              settle: Sequence[Settlement] = ()) -> list[Message]:
        owed = self._folded(settle)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            # Wait on beanstalkd itself: it hands a put to a waiting reserve at once, where
            # polling finds it only at the next poll. It waits in whole seconds, so the wait
            # rounds up (an idle worker notices a stop within about a second, not half).
            # The reserve is read to its end before this call returns, never left pending:
            # whatever beanstalkd hands over is returned and run, so a worker that stops
            # meanwhile neither loses a job nor charges an attempt to one it did not run.
            wait = min(math.ceil(left), wire.UINT32) if left > 0 else 0
            try:
                reserved, counts, peeked = self._link.io(functools.partial(
                    _Client.cycle, owed=owed, timeout=wait, hint=self._hint,
                    peek=self._peek))
            except DriverError:
                self._hint = None
                raise
            owed = []
            if reserved is not None:
                self._idle_pause = 0.02
                job_id = reserved.id
                if counts is None:  # no hint or a wrong one: one more round trip
                    if self._hint is not None:
                        self._peek = not self._peek
                    counts, peeked = self._link.io(functools.partial(
                        _Client.counts_and_peek, job_id=job_id))
                    if counts is None:
                        continue  # deleted meanwhile
                self._hint = peeked if self._peek else job_id + 1
                return [_message(job_id, reserved.body, counts)]
            if self._peek:
                self._hint = peeked
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            # A wait ended early by DEADLINE_SOON (this connection holds a job whose lease is
            # nearly up) would be answered so again at once: pause instead of spinning.
            time.sleep(min(left, self._idle_pause))
            self._idle_pause = min(self._idle_pause * 2, 0.1)

    # -- outcomes --------------------------------------------------------------------

    def settle(self, settlements: Sequence[Settlement]) -> None:
        owed, buries = self._split(settlements)
        if owed:
            self._link.io(functools.partial(_Client.settle, owed=owed))
        for settlement in buries:
            assert settlement.error is not None
            self._bury(settlement.message, settlement.error)

    def give_back(self, messages: Sequence[Message]) -> None:
        # beanstalkd cannot take back the reserve it counted, but a release ends the run
        # as a normal one, where the closing connection would make it a lost run.
        self.settle([Settlement(Verdict.RELEASE, message) for message in messages])

    def _folded(self, settlements: Sequence[Settlement]) -> list[_Owed]:
        """What of ``settlements`` goes out with the next reserve. A bury cannot (its
        commands must go in order, see _bury): with one, all are carried out first."""
        owed, buries = self._split(settlements)
        if not buries:
            return owed
        self.settle(settlements)
        return []

    @staticmethod
    def _split(settlements: Sequence[Settlement]) -> tuple[list[_Owed], list[Settlement]]:
        """The settlements that are one command each (deletes, releases), and the buries."""
        owed, buries = [], []
        for s in settlements:
            handle = cast(_Handle, s.message.handle)
            if s.verdict is Verdict.ACK:
                owed.append(_Owed(wire.delete(handle.job_id), s.message.id, False))
            elif s.verdict is Verdict.RELEASE:
                command = wire.release(handle.job_id, _priority(handle.priority, handle.lost),
                                       _whole_seconds(s.delay, "delay"))
                owed.append(_Owed(command, s.message.id, True))
            elif s.keep:
                buries.append(s)
            else:
                owed.append(_Owed(wire.delete(handle.job_id), s.message.id, True))
        return owed, buries

    def _bury(self, message: Message, error: ErrorInfo) -> None:
        handle = cast(_Handle, message.handle)
        store = self.store
        pri = _priority(handle.priority, handle.lost)
        record = json.dumps({"id": handle.job_id, "error": error.as_dict(),
                             "finished_at": time.time()}).encode()

        def bury(c: _Client) -> None:
            # The reason first: the failed listing finds buried jobs through their reasons,
            # so a worker lost between the two moves must leave a reason without a buried
            # job (its job comes back; the listing skips and drops the reason), never a
            # buried job without a reason, which no listing would show.
            c.call(wire.use(store.reasons_tube))
            try:
                c.call(wire.put(record, wire.UINT32, 0, 3600))
            finally:
                c.call(wire.use(store.channel))
            c.call(wire.bury(handle.job_id, pri))
        try:
            self._link.io(bury)
        except wire.NotFound:
            logger.warning(_LEASE_ENDED, message.id)

    # -- lifetime --------------------------------------------------------------------

    def after_fork(self) -> None:
        self._link.forget()
        self._hint = None

    def close(self) -> None:
        self._link.drop()
