"""The driver's connection to its tube: opened on first use, dropped on any error that may
leave it out of step, and the pipelined exchanges the worker makes over it per job.

The store's connection serves pushes and admin, one thread at a time; each worker's
consumer has its own, which holds the jobs it reserved (closing it gives them back).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from queue_core.errors import DriverError
from queue_core.logfields import job_extra

from . import protocol
from .connection import Connection
from .errors import BeanstalkError, DeadlineSoon, JobTooBig, NotFound, TimedOut
from .protocol import Command, Job

if TYPE_CHECKING:
    from .store import BeanstalkDriver

logger = logging.getLogger(__name__)

T = TypeVar("T")

LEASE_ENDED = "job %s: its lease ended before the outcome was saved; it will run again"

# The stats a reserve needs, out of stats-job's lines, as bounded numbers (the document is
# read back from the network): in one match of the lines as beanstalkd writes them, or key
# by key for a server that writes them otherwise.
_COUNT_NAMES = (b"pri", b"ttr", b"reserves", b"releases", b"buries")
_COUNTS_IN_ORDER = re.compile(
    rb"---\nid: \d+\ntube: [^\n]*\nstate: [a-z]+\npri: (\d{1,20})\nage: \d+\ndelay: \d+\n"
    rb"ttr: (\d{1,20})\ntime-left: \d+\nfile: \d+\nreserves: (\d{1,20})\ntimeouts: \d+\n"
    rb"releases: (\d{1,20})\nburies: (\d{1,20})\n")
_COUNTS_BY_KEY = re.compile(rb"^(pri|ttr|reserves|releases|buries): (\d{1,20})$", re.M)

_new = tuple.__new__  # builds the per-job NamedTuples without their Python-level __new__


class Counts(NamedTuple):
    """The stats a reserve needs: each the digits sent, or None when missing."""

    pri: bytes | None
    ttr: bytes | None
    reserves: bytes | None
    releases: bytes | None
    buries: bytes | None


class Cycle(NamedTuple):
    """What one cycle read back."""

    job: Job | None
    """The job reserved; None when none came in time."""
    counts: Counts | None
    """The reserved job's counts, when the hint was right."""
    peeked: int | None
    """The job peek-ready showed, when asked."""


class Lookup(NamedTuple):
    """A reserved job's counts (None when it is gone) and the job peek-ready showed."""

    counts: Counts | None
    peeked: int | None


def _parse_counts(document: bytes) -> Counts:
    found = _COUNTS_IN_ORDER.match(document)
    if found is not None:
        return _new(Counts, found.groups())
    named = dict(_COUNTS_BY_KEY.findall(document))
    return _new(Counts, (named.get(name) for name in _COUNT_NAMES))


class Client:
    """A connection using and watching the channel's tube, plus the pipelined exchanges
    the worker needs per job."""

    def __init__(self, address: tuple[str, int], tube: str, timeout: float) -> None:
        self.conn = Connection.connect(address, timeout)
        self.tube = tube
        setup: list[Command[object]] = [protocol.use(tube), protocol.watch(tube)]
        if tube != "default":
            setup.append(protocol.ignore("default"))
        try:
            self.conn.send(*setup)
            for command in setup:
                command.read(self.conn)
        except BaseException:
            self.conn.close()
            raise

    def call(self, command: Command[T]) -> T:
        return self.conn.call(command)

    def cycle(self, owed: Sequence[Owed], timeout: int, hint: int | None,
              peek: bool) -> Cycle:
        """One round trip: settle ``owed`` (the finished jobs' deletes and releases),
        reserve the next job, read the counts of ``hint`` (the job the reserve is expected
        to return) and, with ``peek``, ask peek-ready for the next hint."""
        conn = self.conn
        reserve = protocol.reserve_with_timeout(timeout)
        commands: list[Command[object]] = [item.command for item in owed]
        commands.append(reserve)
        stats = peeked = None
        if hint is not None:
            stats = protocol.stats_job(hint)
            commands.append(stats)
        if peek:
            peeked = protocol.peek_ready()
            commands.append(peeked)
        conn.send(*commands)
        _read_owed(owed, conn)
        reserved: Job | None
        try:
            reserved = reserve.read(conn)
        except (TimedOut, DeadlineSoon):
            reserved = None
        counts = None
        if stats is not None:
            counts = _counts(stats, conn)
            if reserved is None or reserved.id != hint:
                counts = None
        return _new(Cycle, (reserved, counts, None if peeked is None else _peeked(peeked, conn)))

    def settle(self, owed: Sequence[Owed]) -> None:
        """One round trip: the deletes and releases, with no reserve."""
        self.conn.send(*(item.command for item in owed))
        _read_owed(owed, self.conn)

    def counts_and_peek(self, job_id: int) -> Lookup:
        stats, peeked = protocol.stats_job(job_id), protocol.peek_ready()
        self.conn.send(stats, peeked)
        return Lookup(_counts(stats, self.conn), _peeked(peeked, self.conn))

    def job_stats(self, job_id: int) -> dict[str, str] | None:
        try:
            return protocol.parse_stats(self.conn.call(protocol.stats_job(job_id)))
        except NotFound:
            return None

    def tube_stats(self, tube: str) -> dict[str, str]:
        """The tube's stats; none for a tube beanstalkd has dropped (it had no jobs)."""
        try:
            return protocol.parse_stats(self.conn.call(protocol.stats_tube(tube)))
        except NotFound:
            return {}

    def peek_body(self, job_id: int) -> bytes | None:
        try:
            return self.conn.call(protocol.peek(job_id)).body
        except NotFound:
            return None

    def close(self) -> None:
        self.conn.close()


class Owed(NamedTuple):
    """A settlement that is one command, so that it can share a write with others."""

    command: Command[None]
    job: str
    warn: bool
    """Warn when beanstalkd no longer knows the reservation: the job runs again. Not for
    an ack's delete, where it may only mean that an earlier try of it went through."""


def _read_owed(owed: Sequence[Owed], conn: Connection) -> None:
    for item in owed:
        try:
            item.command.read(conn)
        except NotFound:
            if item.warn:
                logger.warning(LEASE_ENDED, item.job, extra=job_extra(None, str(item.job)))


def _counts(command: Command[bytes], conn: Connection) -> Counts | None:
    """The counts of a stats-job reply, or None for a job that is gone."""
    try:
        document = command.read(conn)
    except NotFound:
        return None
    found = _COUNTS_IN_ORDER.match(document)
    return _parse_counts(document) if found is None else _new(Counts, found.groups())


def _peeked(command: Command[Job], conn: Connection) -> int | None:
    """The id a peek-ready reply shows, or None for an empty tube."""
    try:
        return command.read(conn).id
    except NotFound:
        return None


class Link:
    """One connection to the store's beanstalkd, using and watching its tube, opened on
    first use. Not thread-safe: the store guards its own, and each consumer has one."""

    def __init__(self, store: BeanstalkDriver) -> None:
        self.store = store
        self.client: Client | None = None

    def io(self, what: Callable[..., T], *args: Any) -> T:
        """``what(client, *args)``. A broken connection, or any reply that is not the answer a
        command expects, drops the connection and becomes DriverError: after a protocol
        error the stream may be out of step (beanstalkd reading a body as a command), and
        every later reply would belong to the command before it."""
        try:
            if self.client is None:
                store = self.store
                self.client = Client(store.address, store.channel, store.connect_timeout)
            return what(self.client, *args)
        except (NotFound, TimedOut, DeadlineSoon):
            raise  # ordinary answers, read in full: the stream is in step
        except JobTooBig:
            self.drop()
            raise
        except (OSError, ValueError, BeanstalkError) as exc:
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
