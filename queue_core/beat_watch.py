"""How a supervisor tells that one of its worker processes stopped beating.

It reads the channel's heartbeat records through the Store four times a period, keeps those
of its own children (this host, a child's pid, a session begun after the child started:
a pid is reused, a session id is not) and notes, on its own monotonic clock, when each
record's beat last changed. A record that has not changed for three of its periods
belongs to a worker that is hung (or stopped): the supervisor kills it. Timing on the
supervisor's clock means a clock step, or another host's clock, changes nothing; after
a failed read everything is timed afresh, since beats written meanwhile were not seen.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .model import STALE_PERIODS, WorkerInfo

if TYPE_CHECKING:
    from .store import Store

logger = logging.getLogger(__name__)

START_SLACK = 5.0
"""Seconds a session may seem to start before its process did (clocks read apart)."""


@dataclass
class Silent:
    """A child whose record stopped changing."""

    pid: int
    record: WorkerInfo
    seconds: float
    """How long the supervisor has seen the same beat."""


class BeatWatch:
    def __init__(self, store: Store, period: float) -> None:
        self.store = store
        self.period = period
        self.every = min(max(period / 4, 0.05), 5.0)
        self.host = socket.gethostname()
        self._next = 0.0
        self._seen: dict[str, tuple[float, float]] = {}
        """Record id -> (its beat time, when this supervisor saw that beat first)."""
        self._failing = False

    def silent(self, children: dict[int, float], now: float | None = None) -> list[Silent]:
        """The children (pid -> wall-clock start) whose beat has not changed for three of
        their periods; reads the store at most four times a period."""
        now = time.monotonic() if now is None else now
        if now < self._next:
            return []
        self._next = now + self.every
        try:
            records = self.store.workers()
        except Exception as exc:  # noqa: BLE001 - no beats seen: nobody is judged
            if not self._failing:
                self._failing = True
                logger.warning("cannot read the heartbeats from %s (%s): hung workers are "
                               "not replaced until it answers", self.store.describe(), exc)
            self._seen.clear()
            return []
        if self._failing:
            self._failing = False
            logger.warning("heartbeats can be read from %s again", self.store.describe())
        newest: dict[int, WorkerInfo] = {}
        for record in records:
            started = children.get(record.pid)
            if (record.host != self.host or started is None
                    or record.started_at < started - START_SLACK):
                continue
            known = newest.get(record.pid)
            if known is None or record.started_at > known.started_at:
                newest[record.pid] = record
        found = []
        seen: dict[str, tuple[float, float]] = {}
        for pid, record in newest.items():
            beat, since = self._seen.get(record.id, (None, now))
            if beat != record.beat_at:
                since = now
            seen[record.id] = (record.beat_at, since)
            if now - since > STALE_PERIODS * record.period:
                found.append(Silent(pid, record, now - since))
        self._seen = seen
        return found

    def forget(self, record: WorkerInfo) -> None:
        """Delete the record of a worker that was killed: it will not beat again."""
        self._seen.pop(record.id, None)
        try:
            self.store.forget_worker(record.id)
        except Exception as exc:  # noqa: BLE001 - it is forgotten when it expires
            logger.debug("could not delete the heartbeat record %s: %s", record.id, exc)
