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
- One round trip per job: the delete of the finished job, the next reserve and the stats
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
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from queue_core.driver import (
    DEFAULT_PRIORITY,
    Capabilities,
    Driver,
    ErrorInfo,
    JobInfo,
    JobStatus,
    Message,
)
from queue_core.errors import (
    ConfigError,
    DriverError,
    InvalidArgumentError,
    JobNotFoundError,
    JobNotInStateError,
    NotSupportedError,
)
from queue_core.records import as_time

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


def _whole_seconds(value: float, what: str, minimum: int = 0) -> int:
    """Seconds as beanstalkd takes them (a 32-bit whole number), checked before sending:
    a value it cannot parse would put the connection out of step."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and 0 <= value <= _UINT32):
        raise InvalidArgumentError(f"{what} {value!r} is out of range for the beanstalk "
                                   f"driver: 0 to {_UINT32} seconds")
    return max(minimum, math.ceil(value))


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

    def cycle(self, finished: int | None, timeout: int, hint: int | None,
              peek: bool) -> tuple[wire.Job | None, Counts | None, int | None]:
        """One round trip: delete the finished job, reserve the next, read the counts of
        ``hint`` (the job the reserve is expected to return) and, with ``peek``, ask
        peek-ready for the next hint. Returns (reserved job, its counts if the hint was
        right, the job peek-ready showed)."""
        conn = self.conn
        reserve = wire.reserve_with_timeout(timeout)
        commands: list[wire.Command[object]] = [reserve]
        delete = stats = peeked = None
        if finished is not None:
            delete = wire.delete(finished)
            commands = [delete, reserve]
        if hint is not None:
            stats = wire.stats_job(hint)
            commands.append(stats)
        if peek:
            peeked = wire.peek_ready()
            commands.append(peeked)
        conn.send(*commands)
        if delete is not None:
            try:
                delete.read(conn)
            except wire.NotFound:
                pass  # its lease ran out: it runs again elsewhere
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


class BeanstalkDriver(Driver):
    name = "beanstalk"
    capabilities = Capabilities(
        delay=True, priority=True, priority_range=(0, MAX_PRIORITY), ttr_lease=True,
        retry=True, attempt_count=True, status=True, failed_store=True, keep_completed=False,
        manual_retry=True, remove=True, clear=True, info=True, listing=True,
        lease_by_connection=True)

    def __init__(self, host: str = "127.0.0.1", port: int = 11300, *, channel: str = "queue",
                 lease_grace: float = 1.0, connect_timeout: float = 5.0) -> None:
        super().__init__(channel=channel)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"beanstalk port must be 1-65535, got {port!r}", key="driver")
        self.address = (host, port)
        self.lease_grace = float(lease_grace)
        self.connect_timeout = float(connect_timeout)
        self.reasons_tube = f"{channel}.failed"
        self._client: _Client | None = None
        self._finished: int | None = None
        self._hint: int | None = None
        # Ask peek-ready for the hints (True) or guess the next id (False); a wrong hint
        # switches, so a FIFO tube guesses and a tube read out of order peeks.
        self._peek = False
        self._idle_pause = 0.02
        self._max_job_size: int | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> BeanstalkDriver:
        parts = urlsplit(url)
        if parts.query:
            raise ConfigError(f"beanstalk URL takes no options, got {parts.query!r}",
                              key="driver")
        try:
            port = parts.port or 11300
        except ValueError:
            raise ConfigError(f"beanstalk URL {url!r} has a bad port", key="driver") from None
        return cls(parts.hostname or "127.0.0.1", port, **options)

    def describe(self) -> str:
        return f"beanstalk://{self.address[0]}:{self.address[1]} tube {self.channel}"

    # -- connection ------------------------------------------------------------------

    def _conn(self) -> _Client:
        if self._client is None:
            self._client = _Client(self.address, self.channel, self.connect_timeout)
        return self._client

    def _io(self, what: Any) -> Any:
        """Run ``what(client)``. A broken connection, or any reply that is not the answer a
        command expects, drops the connection and becomes DriverError: after a protocol
        error the stream may be out of step (beanstalkd reading a body as a command), and
        every later reply would belong to the command before it."""
        try:
            return what(self._conn())
        except (wire.NotFound, wire.TimedOut, wire.DeadlineSoon):
            raise  # ordinary answers, read in full: the stream is in step
        except wire.JobTooBig:
            self._drop()
            raise
        except (OSError, ValueError, wire.BeanstalkError) as exc:
            self._drop()
            detail = str(exc) or type(exc).__name__
            raise DriverError(f"{self.describe()}: {detail}") from exc

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- push ------------------------------------------------------------------------

    def _priority(self, priority: int | None, lost: int = 0) -> int:
        ours = DEFAULT_PRIORITY if priority is None else priority
        if isinstance(ours, bool) or not isinstance(ours, int) or not 0 <= ours <= MAX_PRIORITY:
            raise InvalidArgumentError(f"priority {ours!r} is out of range for the beanstalk "
                                       f"driver: 0 to {MAX_PRIORITY}")
        return (ours << 8) | (lost & _LOST_MASK)

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
        pri, lease = self._priority(priority), self._lease(ttr)
        wait = _whole_seconds(delay, "delay")
        try:
            job_id = self._io(lambda c: c.call(wire.put(body, pri, wait, lease)))
        except wire.JobTooBig:
            raise InvalidArgumentError(
                f"a job of {len(body)} bytes is larger than {self.describe()} accepts "
                "(beanstalkd's max-job-size, -z, default 65535); nothing was queued") from None
        return str(job_id)

    # -- reserve ---------------------------------------------------------------------

    def reserve(self, timeout: float = 0.0) -> Message | None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            # beanstalkd waits in whole seconds: block for those, poll for the rest so a
            # worker can still stop within half a second.
            wait = int(left) if left >= 1 else 0
            finished, self._finished = self._finished, None
            try:
                reserved, counts, peeked = self._io(functools.partial(
                    _Client.cycle, finished=finished, timeout=wait, hint=self._hint,
                    peek=self._peek))
            except DriverError:
                self._finished = finished
                self._hint = None
                raise
            if reserved is not None:
                self._idle_pause = 0.02
                job_id = reserved.id
                if counts is None:  # no hint or a wrong one: one more round trip
                    if self._hint is not None:
                        self._peek = not self._peek
                    counts, peeked = self._io(functools.partial(_Client.counts_and_peek,
                                                               job_id=job_id))
                    if counts is None:
                        continue  # deleted meanwhile
                self._hint = peeked if self._peek else job_id + 1
                return self._message(job_id, reserved.body, counts)
            if self._peek:
                self._hint = peeked
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(left, self._idle_pause))
            self._idle_pause = min(self._idle_pause * 2, 0.1)

    def _message(self, job_id: int, body: bytes, counts: Counts) -> Message:
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

    # -- outcomes --------------------------------------------------------------------

    def ack(self, message: Message, *, result: bytes | None = None, keep: bool = False) -> None:
        # Sent with the next reserve (or by flush).
        if self._finished is not None:
            self.flush()
        self._finished = message.handle.job_id

    def _lost(self, message: Message, what: Any) -> None:
        """Run ``what`` on a reserved job; NOT_FOUND means its lease ran out first."""
        try:
            self._io(what)
        except wire.NotFound:
            logger.warning("job %s: its lease ended before the outcome was saved; it will "
                           "run again", message.id)

    def release(self, message: Message, *, delay: float, error: ErrorInfo | None) -> None:
        handle: _Handle = message.handle
        pri, wait = self._priority(handle.priority, handle.lost), _whole_seconds(delay, "delay")
        self._lost(message, lambda c: c.call(wire.release(handle.job_id, pri, wait)))

    def fail(self, message: Message, *, error: ErrorInfo, keep: bool = True) -> None:
        handle: _Handle = message.handle
        if not keep:
            self._lost(message, lambda c: c.call(wire.delete(handle.job_id)))
            return
        record = json.dumps({"id": handle.job_id, "error": error.as_dict(),
                             "finished_at": time.time()}).encode()

        def bury(c: _Client) -> None:
            # The reason first: the failed listing finds buried jobs through their reasons,
            # so a worker lost between the two moves must leave a reason without a buried
            # job (its job comes back; the listing skips and drops the reason), never a
            # buried job without a reason, which no listing would show.
            c.call(wire.use(self.reasons_tube))
            try:
                c.call(wire.put(record, wire.UINT32, 0, 3600))
            finally:
                c.call(wire.use(self.channel))
            c.call(wire.bury(handle.job_id, self._priority(handle.priority, handle.lost)))
        self._lost(message, bury)

    def flush(self) -> None:
        finished, self._finished = self._finished, None
        if finished is not None:
            def delete(c: _Client) -> None:
                try:
                    c.call(wire.delete(finished))
                except wire.NotFound:
                    pass
            try:
                self._io(delete)
            except DriverError:
                self._finished = finished
                raise

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
        return self._io(look)  # type: ignore[no-any-return]

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
        return self._io(count)  # type: ignore[no-any-return]

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
        return self._io(listed)  # type: ignore[no-any-return]

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
        return self._io(delete)  # type: ignore[no-any-return]

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
        self._finished = None

    def retry(self, job_id: str, *, state: JobStatus, reset_attempts: bool = False) -> None:
        if reset_attempts:
            raise NotSupportedError("the beanstalk driver cannot reset attempts: beanstalkd's "
                                    "reserve count of a job cannot be changed")
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
        self._client = None  # the parent's socket stays the parent's
        self._finished = None
        self._hint = None

    def close(self) -> None:
        try:
            self.flush()
        except DriverError as exc:
            logger.warning("could not delete the last finished job on %s: %s",
                           self.describe(), exc)
        self._drop()
