"""The beanstalk driver, on greenstalk: beanstalkd's own ttr lease, delays and priorities.

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
import socket
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


def _greenstalk() -> Any:
    try:
        import greenstalk
    except ImportError:
        raise ConfigError("the beanstalk driver needs greenstalk: pip install "
                          "'queue-core[beanstalk]'", key="driver") from None
    return greenstalk


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


# The stats a reserve needs, out of stats-job's 20-odd lines.
_COUNTS = re.compile(rb"^(pri|ttr|reserves|releases|buries): (\d+)", re.M)


def _stats(data: bytes) -> dict[str, str]:
    """beanstalkd's stats document ('---' then 'key: value' lines)."""
    found = {}
    for line in data.splitlines():
        key, sep, value = line.partition(b": ")
        if sep:
            found[key.decode()] = value.decode()
    return found


class _Client:
    """greenstalk's client, plus two pipelined commands the worker needs per job: the
    delete of the finished job with the next reserve, and stats-job read without a YAML
    parser."""

    def __init__(self, address: tuple[str, int], tube: str, timeout: float) -> None:
        greenstalk = _greenstalk()
        self.greenstalk = greenstalk
        sock = socket.create_connection(address, timeout=timeout)
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self.client = greenstalk.Client(sock, encoding=None, use=tube, watch=tube)

    def _line(self) -> bytes:
        line: bytes = self.client._reader.readline()
        if not line:
            raise ConnectionError("beanstalkd closed the connection")
        return line

    def _check(self, line: bytes, expected: bytes) -> list[bytes]:
        parse = self.greenstalk._parse_response
        return parse(line, expected)  # type: ignore[no-any-return]

    def cycle(self, finished: int | None, timeout: int, hint: int | None,
              peek: bool) -> tuple[tuple[int, bytes] | None, dict[bytes, bytes] | None,
                                   int | None]:
        """One round trip: delete the finished job, reserve the next, read the counts of
        ``hint`` (the job the reserve is expected to return) and, with ``peek``, ask
        peek-ready for the next hint. Returns (reserved job, its counts if the hint was
        right, the job peek-ready showed)."""
        command = b"reserve-with-timeout %d\r\n" % timeout
        if finished is not None:
            command = b"delete %d\r\n" % finished + command
        if hint is not None:
            command += b"stats-job %d\r\n" % hint
        if peek:
            command += b"peek-ready\r\n"
        self.client._sock.sendall(command)
        if finished is not None:
            line = self._line()
            if not line.startswith(b"DELETED") and not line.startswith(b"NOT_FOUND"):
                self._check(line, b"DELETED")
        reserved = None
        line = self._line()
        if line.startswith(b"RESERVED "):
            _, job_id, size = line.split()
            reserved = int(job_id), self._chunk(int(size))
        elif not (line.startswith(b"TIMED_OUT") or line.startswith(b"DEADLINE_SOON")):
            self._check(line, b"RESERVED")
        counts = None
        if hint is not None:
            counts = self._counts_reply()
            if reserved is None or reserved[0] != hint:
                counts = None
        return reserved, counts, self._peek_reply() if peek else None

    def _chunk(self, size: int) -> bytes:
        data: bytes = self.client._reader.read(size + 2)
        if len(data) != size + 2:
            raise ConnectionError("beanstalkd closed the connection")
        return data[:-2]

    def _peek_reply(self) -> int | None:
        line = self._line()
        if line.startswith(b"NOT_FOUND"):
            return None
        job_id, size = (int(n) for n in self._check(line, b"FOUND"))
        self._chunk(size)
        return job_id

    def _stats_document(self) -> bytes | None:
        """The reply to stats-job: the document, or None for a job that is gone."""
        line = self._line()
        if line.startswith(b"NOT_FOUND"):
            return None
        (size,) = self._check(line, b"OK")
        return self._chunk(int(size))

    def _counts_reply(self) -> dict[bytes, bytes] | None:
        document = self._stats_document()
        return None if document is None else dict(_COUNTS.findall(document))

    def counts_and_peek(self, job_id: int) -> tuple[dict[bytes, bytes] | None, int | None]:
        self.client._sock.sendall(b"stats-job %d\r\npeek-ready\r\n" % job_id)
        return self._counts_reply(), self._peek_reply()

    def _stats_reply(self) -> dict[str, str] | None:
        document = self._stats_document()
        return None if document is None else _stats(document)

    def job_stats(self, job_id: int) -> dict[str, str] | None:
        self.client._sock.sendall(b"stats-job %d\r\n" % job_id)
        return self._stats_reply()

    def close(self) -> None:
        try:
            self.client.close()
        except OSError:
            pass


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
        _greenstalk()
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

    @staticmethod
    def _gs() -> Any:
        return _greenstalk()

    def _conn(self) -> _Client:
        if self._client is None:
            self._client = _Client(self.address, self.channel, self.connect_timeout)
        return self._client

    def _io(self, what: Any) -> Any:
        """Run ``what(client)``. A broken connection, or any reply that is not the answer a
        command expects, drops the connection and becomes DriverError: after a protocol
        error the stream may be out of step (beanstalkd reading a body as a command), and
        every later reply would belong to the command before it."""
        gs = self._gs()
        try:
            return what(self._conn())
        except (gs.NotFoundError, gs.TimedOutError, gs.DeadlineSoonError):
            raise  # ordinary answers, read in full: the stream is in step
        except gs.JobTooBigError:
            self._drop()
            raise
        except (OSError, ConnectionError, ValueError, gs.Error) as exc:
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
                stats = self._io(lambda c: c.client.stats())
                self._max_job_size = int(stats.get("max-job-size", 65535))
            except (DriverError, TypeError, ValueError) as exc:
                logger.debug("cannot read max-job-size from %s: %s", self.describe(), exc)
                return None
        return max(0, self._max_job_size - _BODY_HEADER_MAX)

    def push(self, payload: bytes, *, ttr: float, delay: float = 0.0,
             priority: int | None = None) -> str:
        body = _body(payload, ttr, time.time())
        gs = self._gs()
        pri, lease = self._priority(priority), self._lease(ttr)
        wait = _whole_seconds(delay, "delay")
        try:
            job_id = self._io(lambda c: c.client.put(body, priority=pri, delay=wait, ttr=lease))
        except gs.JobTooBigError:
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
                job_id = reserved[0]
                if counts is None:  # no hint or a wrong one: one more round trip
                    if self._hint is not None:
                        self._peek = not self._peek
                    counts, peeked = self._io(functools.partial(_Client.counts_and_peek,
                                                               job_id=job_id))
                    if counts is None:
                        continue  # deleted meanwhile
                self._hint = peeked if self._peek else job_id + 1
                return self._message(job_id, reserved[1], counts)
            if self._peek:
                self._hint = peeked
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(left, self._idle_pause))
            self._idle_pause = min(self._idle_pause * 2, 0.1)

    def _message(self, job_id: int, body: bytes, counts: dict[bytes, bytes]) -> Message:
        ttr, pushed_at, payload = _unbody(body)
        pri = int(counts.get(b"pri", 0))
        reserves = int(counts.get(b"reserves", 1))
        lost = reserves - 1 - int(counts.get(b"releases", 0)) - int(counts.get(b"buries", 0))
        if ttr is None:  # not pushed by us: beanstalkd's ttr is all there is
            ttr = float(counts.get(b"ttr", 60))
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
        except self._gs().NotFoundError:
            logger.warning("job %s: its lease ended before the outcome was saved; it will "
                           "run again", message.id)

    def release(self, message: Message, *, delay: float, error: ErrorInfo | None) -> None:
        handle: _Handle = message.handle
        job = self._gs().Job(handle.job_id, b"")
        pri, wait = self._priority(handle.priority, handle.lost), _whole_seconds(delay, "delay")
        self._lost(message, lambda c: c.client.release(job, priority=pri, delay=wait))

    def fail(self, message: Message, *, error: ErrorInfo, keep: bool = True) -> None:
        handle: _Handle = message.handle
        if not keep:
            self._lost(message, lambda c: c.client.delete(handle.job_id))
            return
        record = json.dumps({"id": handle.job_id, "error": error.as_dict(),
                             "finished_at": time.time()}).encode()

        def bury(c: _Client) -> None:
            # The reason first: the failed listing finds buried jobs through their reasons,
            # so a worker lost between the two moves must leave a reason without a buried
            # job (its job comes back; the listing skips and drops the reason), never a
            # buried job without a reason, which no listing would show.
            c.client.use(self.reasons_tube)
            try:
                c.client.put(record, priority=2**32 - 1, ttr=3600)
            finally:
                c.client.use(self.channel)
            c.client.bury(self._gs().Job(handle.job_id, b""),
                          priority=self._priority(handle.priority, handle.lost))
        self._lost(message, bury)

    def flush(self) -> None:
        finished, self._finished = self._finished, None
        if finished is not None:
            gs = self._gs()

            def delete(c: _Client) -> None:
                try:
                    c.client.delete(finished)
                except gs.NotFoundError:
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
        gs = self._gs()
        found: dict[int, dict[str, Any]] = {}
        held = []
        c.client.watch(self.reasons_tube)
        c.client.ignore(self.channel)
        try:
            while limit is None or len(found) < limit:
                try:
                    record = c.client.reserve(0)
                except gs.TimedOutError:
                    break
                data = _reason(record.body)
                if data is None or (drop is not None and data["id"] in drop):
                    c.client.delete(record)  # unreadable, or the reason of a job that goes
                    continue
                found[data["id"]] = data
                held.append(record)
        finally:
            for record in held:
                c.client.release(record, priority=2**32 - 1)
            c.client.watch(self.channel)
            c.client.ignore(self.reasons_tube)
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
        gs = self._gs()

        def look(c: _Client) -> JobInfo | None:
            stats = c.job_stats(number)
            if stats is None:
                return None
            try:
                body = c.client.peek(number).body
            except gs.NotFoundError:
                return None
            return self._info(number, stats, body, c)
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
        gs = self._gs()

        def count(c: _Client) -> dict[JobStatus, int]:
            try:
                stats = c.client.stats_tube(self.channel)
            except gs.NotFoundError:
                stats = {}
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
        gs = self._gs()

        def listed(c: _Client) -> list[JobInfo]:
            found = []
            gone = set()
            for number, reason in sorted(self._reasons(c).items()):
                stats = c.job_stats(number)
                if stats is None:
                    gone.add(number)
                if stats is None or stats.get("state") != "buried":
                    continue
                try:
                    body = c.client.peek(number).body
                except gs.NotFoundError:
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
        gs = self._gs()

        def delete(c: _Client) -> bool:
            stats = c.job_stats(number)
            try:
                c.client.delete(number)
            except gs.NotFoundError:
                return False
            if stats is not None and stats.get("state") == "buried":
                self._reasons(c, drop={number})
            return True
        return self._io(delete)  # type: ignore[no-any-return]

    def clear(self) -> None:
        gs = self._gs()

        def empty(c: _Client, tube: str) -> None:
            try:
                stats = c.client.stats_tube(tube)
            except gs.NotFoundError:
                return
            c.client.use(tube)
            for peek, count in ((c.client.peek_ready, "current-jobs-ready"),
                                (c.client.peek_delayed, "current-jobs-delayed"),
                                (c.client.peek_buried, "current-jobs-buried")):
                # The jobs there at the start, and no more: pushes racing the clear must
                # not keep it going forever.
                for _ in range(int(stats.get(count, 0))):
                    try:
                        c.client.delete(peek())
                    except gs.NotFoundError:
                        break
            c.client.use(self.channel)

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
            c.client.kick_job(number)
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
