"""The beanstalk driver's store: pushes, lookups and admin on a beanstalkd tube.

- The tube is the channel. beanstalkd's ttr is the lease (whole seconds: ttr plus the
  grace, rounded up); the worker enforces the real ttr, which travels in the job body.
- Attempts are the job's ``reserves`` stat. A retry is ``release`` with the core's delay;
  a final failure ``bury``s the job and writes the reason to the side tube
  ``<channel>.failed``; ``retry`` ``kick``s it back. ``keep_failed`` limits are trimmed
  by the consumers (retention.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

from queue_core.consumer import Consumer
from queue_core.errors import (
    ConfigError,
    DriverError,
    InvalidArgumentError,
    JobNotFoundError,
    JobNotInStateError,
    NotSupportedError,
)
from queue_core.model import Capabilities, ErrorInfo, JobInfo, JobStatus
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

from . import protocol
from .client import Client, Link
from .consumer import BeanstalkConsumer
from .errors import DeadlineSoon, JobTooBig, NotFound, TimedOut
from .jobs import (
    BODY_HEADER_MAX,
    LOST_BITS,
    MAX_PRIORITY,
    decode_body,
    encode_body,
    encode_priority,
    read_reason,
    whole_seconds,
)
from .protocol import UINT32

logger = logging.getLogger(__name__)

T = TypeVar("T")

_STATE = {"ready": JobStatus.WAITING, "delayed": JobStatus.DELAYED,
          "reserved": JobStatus.RESERVED, "buried": JobStatus.FAILED}


class Address(NamedTuple):
    """Where the beanstalkd server listens."""

    host: str
    port: int


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
        retention=True, manual_retry=True, remove=True, clear=True, info=True,
        listing=frozenset({JobStatus.FAILED}),
        lease_by_connection=True)

    def __init__(self, host: str = "127.0.0.1", port: int = 11300, *, channel: str = "queue",
                 lease_grace: float = 1.0, connect_timeout: float = 5.0) -> None:
        super().__init__(channel=channel)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"beanstalk port must be 1-65535, got {port!r}", key="driver")
        checked = check_options(self.name, self.options, {
            "lease_grace": lease_grace, "connect_timeout": connect_timeout})
        self.address = Address(host, port)
        self.lease_grace = checked["lease_grace"]
        self.connect_timeout: float = checked["connect_timeout"]
        self.reasons_tube = f"{channel}.failed"
        # Pushes and admin of every thread share one connection, one call at a time;
        # each worker's consumer has its own.
        self._link = Link(self)
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
        return f"beanstalk://{self.address.host}:{self.address.port} tube {self.channel}"

    def open_consumer(self) -> Consumer:
        return BeanstalkConsumer(self)

    def _io(self, what: Callable[[Client], T]) -> T:
        with self._lock:
            return self._link.io(what)

    # -- push ------------------------------------------------------------------------

    def _lease(self, ttr: float) -> int:
        return whole_seconds(ttr + self.lease_grace, "ttr", minimum=1)

    payload_limit_setting = "beanstalkd's max-job-size, its -z option"

    def payload_limit(self) -> int | None:
        """beanstalkd's max-job-size (its -z option), less the header our body carries."""
        if self._max_job_size is None:
            try:
                stats = self._io(lambda c: protocol.parse_stats(c.call(protocol.stats())))
                self._max_job_size = int(stats.get("max-job-size", 65535))
            except (DriverError, TypeError, ValueError) as exc:
                logger.debug("cannot read max-job-size from %s: %s", self.describe(), exc)
                return None
        return max(0, self._max_job_size - BODY_HEADER_MAX)

    def push(self, payload: bytes, *, ttr: float, delay: float = 0.0,
             priority: int | None = None) -> str:
        body = encode_body(payload, ttr, time.time())
        pri, lease = encode_priority(priority), self._lease(ttr)
        wait = whole_seconds(delay, "delay")
        try:
            job_id = self._io(lambda c: c.call(protocol.put(body, pri, wait, lease)))
        except JobTooBig:
            raise InvalidArgumentError(
                f"a job of {len(body)} bytes is larger than {self.describe()} accepts "
                "(beanstalkd's max-job-size, -z, default 65535); nothing was queued") from None
        return str(job_id)

    # -- failure reasons -------------------------------------------------------------

    def _reasons(self, c: Client, limit: int | None = None,
                 drop: set[int] | None = None) -> dict[int, dict[str, Any]]:
        """The records of the side tube, read by reserving each and releasing it back
        (beanstalkd cannot list ready jobs otherwise). Records of ``drop`` are deleted."""
        found: dict[int, dict[str, Any]] = {}
        held = []
        c.call(protocol.watch(self.reasons_tube))
        c.call(protocol.ignore(self.channel))
        try:
            while limit is None or len(found) < limit:
                try:
                    record = c.call(protocol.reserve_with_timeout(0))
                except (TimedOut, DeadlineSoon):
                    # DEADLINE_SOON: this connection also holds a job whose ttr is nearly
                    # up; the records read so far are the answer.
                    break
                data = read_reason(record.body)
                if data is None or (drop is not None and data["id"] in drop):
                    # unreadable, or the reason of a job that goes
                    c.call(protocol.delete(record.id))
                    continue
                found[data["id"]] = data
                held.append(record.id)
        finally:
            for record_id in held:
                c.call(protocol.release(record_id, UINT32, 0))
            c.call(protocol.watch(self.channel))
            c.call(protocol.ignore(self.reasons_tube))
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
        def look(c: Client) -> JobInfo | None:
            stats = c.job_stats(number)
            if stats is None:
                return None
            body = c.peek_body(number)
            return None if body is None else self._info(number, stats, body, c)
        return self._io(look)

    def _info(self, number: int, stats: dict[str, str], body: bytes, c: Client,
              reason: dict[str, Any] | None = None) -> JobInfo:
        decoded = decode_body(body)
        state = _STATE.get(stats.get("state", ""), JobStatus.WAITING)
        if state is JobStatus.FAILED and reason is None:
            reason = self._reasons(c).get(number)
        now = time.time()
        delay_left = int(stats.get("time-left", 0)) if state is JobStatus.DELAYED else 0
        return JobInfo(
            id=str(number), status=state, attempt=int(stats.get("reserves", 0)),
            priority=int(stats.get("pri", 0)) >> LOST_BITS,
            ttr=decoded.ttr if decoded.ttr is not None else float(stats.get("ttr", 0)),
            pushed_at=decoded.pushed_at,
            ready_at=now + delay_left if delay_left else None,
            finished_at=None if reason is None else as_time(reason.get("finished_at")),
            error=None if reason is None else ErrorInfo.from_dict(reason.get("error")),
            payload=decoded.payload)

    def info(self) -> dict[JobStatus, int]:
        def count(c: Client) -> dict[JobStatus, int]:
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
        def listed(c: Client) -> list[JobInfo]:
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
        def delete(c: Client) -> bool:
            stats = c.job_stats(number)
            try:
                c.call(protocol.delete(number))
            except NotFound:
                return False
            if stats is not None and stats.get("state") == "buried":
                self._reasons(c, drop={number})
            return True
        return self._io(delete)

    def clear(self) -> None:
        def empty(c: Client, tube: str) -> None:
            stats = c.tube_stats(tube)
            if not stats:
                return
            c.call(protocol.use(tube))
            for peek, count in ((protocol.peek_ready, "current-jobs-ready"),
                                (protocol.peek_delayed, "current-jobs-delayed"),
                                (protocol.peek_buried, "current-jobs-buried")):
                # The jobs there at the start, and no more: pushes racing the clear must
                # not keep it going forever.
                for _ in range(int(stats.get(count, 0))):
                    try:
                        c.call(protocol.delete(c.call(peek()).id))
                    except NotFound:
                        break
            c.call(protocol.use(self.channel))

        def run(c: Client) -> None:
            empty(c, self.channel)
            empty(c, self.reasons_tube)
        self._io(run)

    def retry(self, job_id: str, *, state: JobStatus, reset_attempts: bool = False) -> None:
        number = self._job_id(job_id)
        if number is None:
            raise JobNotFoundError(f"no job {job_id!r} in {self.describe()}")

        def kick(c: Client) -> None:
            stats = c.job_stats(number)
            if stats is None:
                raise JobNotFoundError(f"no job {job_id!r} in {self.describe()}")
            actual = _STATE.get(stats.get("state", ""))
            if actual is not JobStatus.FAILED:
                raise JobNotInStateError(f"job {job_id} is {actual}, not {state}")
            c.call(protocol.kick_job(number))
            self._reasons(c, drop={number})
        self._io(kick)

    def after_fork(self) -> None:
        self._link.forget()
        self._lock = threading.Lock()  # a thread of the parent may have held it

    def close(self) -> None:
        with self._lock:
            self._link.drop()

