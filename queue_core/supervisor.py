"""``listen --workers N``: N worker processes under one supervisor.

The supervisor starts each worker as its own ``queue-core ... listen`` process, replaces a
worker that exits (at once after a clean exit such as ``--max-jobs``; with a doubling delay,
capped at 30 s, when a worker keeps crashing), forwards SIGTERM, SIGINT, SIGQUIT and
SIGHUP to every worker so each finishes its current job, and returns when all have
stopped. Workers watch the supervisor's pid and stop if it disappears.

Where the driver stores heartbeats, it also replaces a worker that stopped beating (no
beat for three periods, see beat_watch.py) while its process still lives: it is hung
(deadlocked, stuck in native code, or stopped with SIGSTOP). The supervisor SIGKILLs it,
so that its running jobs come back through their leases as lost runs, and starts another.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .beat_watch import BeatWatch
from .worker import STOP_SIGNALS, SUPERVISOR_ENV

if TYPE_CHECKING:
    from .store import Store

logger = logging.getLogger(__name__)

CRASH_WINDOW = 10.0
"""A worker that exits non-zero within this many seconds of starting counts as crashing."""
RESTART_DELAY_MAX = 30.0


@dataclass
class _Slot:
    number: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    started_at: float = 0.0
    """Wall-clock start, to match the worker's heartbeat record."""
    crashes: int = 0
    restart_at: float = 0.0
    exits: list[int] = field(default_factory=list)


class Supervisor:
    def __init__(self, command: Sequence[str], workers: int,
                 env: dict[str, str] | None = None, store: Store | None = None,
                 heartbeat: float = 0.0,
                 on_exit: Callable[[int], None] | None = None) -> None:
        self.command = list(command)
        self.slots = [_Slot(number) for number in range(1, workers + 1)]
        self.env = dict(os.environ if env is None else env)
        self.env[SUPERVISOR_ENV] = str(os.getpid())
        self.stopping = False
        self.stop_signal = signal.SIGTERM
        self.restarts = 0
        self.hung_kills = 0
        self.watch = BeatWatch(store, heartbeat) if store is not None and heartbeat else None
        """Reads the workers' heartbeats (None: the driver stores none, or they are off)."""
        self.on_exit = on_exit
        """Called with the pid of each worker that exited (metrics drop its files)."""

    def _start(self, slot: _Slot) -> None:
        slot.process = subprocess.Popen(self.command, env=self.env)
        slot.started = time.monotonic()
        slot.started_at = time.time()
        logger.info("worker %d started (pid %d)", slot.number, slot.process.pid)

    def _on_signal(self, signum: int, frame: object) -> None:
        if not self.stopping:
            logger.info("%s: stopping %d workers after their current jobs",
                        signal.Signals(signum).name, len(self.slots))
        self.stopping = True
        self.stop_signal = signal.Signals(signum)
        self._forward(signal.SIGTERM)

    def _forward(self, signum: int) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                try:
                    slot.process.send_signal(signum)
                except ProcessLookupError:
                    pass

    def _reap(self, slot: _Slot, now: float) -> None:
        assert slot.process is not None
        code = slot.process.returncode
        slot.exits.append(code)
        lived = now - slot.started
        if self.on_exit is not None:
            self.on_exit(slot.process.pid)
        slot.process = None
        if self.stopping:
            return
        if code == 0:
            slot.crashes = 0
            slot.restart_at = now
            logger.info("worker %d exited cleanly after %.1fs; replacing it", slot.number, lived)
            return
        slot.crashes = slot.crashes + 1 if lived < CRASH_WINDOW else 1
        delay = 0.0 if slot.crashes == 1 else min(0.5 * 2 ** (slot.crashes - 2),
                                                  RESTART_DELAY_MAX)
        slot.restart_at = now + delay
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        logger.warning("worker %d died (%s) after %.1fs; restarting in %.1fs", slot.number, how,
                       lived, delay)

    def _kill_silent(self) -> None:
        """SIGKILL each worker whose heartbeat stopped while its process lives on."""
        assert self.watch is not None
        live = {slot.process.pid: slot for slot in self.slots
                if slot.process is not None and slot.process.poll() is None}
        for silent in self.watch.silent({pid: slot.started_at for pid, slot in live.items()}):
            slot = live[silent.pid]
            assert slot.process is not None
            logger.error("worker %d (pid %d) has not beaten for %.1fs (period %gs) though its "
                         "process lives: it is hung; killing it (SIGKILL), its jobs come back "
                         "as lost runs", slot.number, silent.pid, silent.seconds,
                         silent.record.period)
            try:
                slot.process.kill()
            except ProcessLookupError:
                pass
            self.hung_kills += 1
            self.watch.forget(silent.record)

    def run(self) -> int:
        previous = {signum: signal.signal(signum, self._on_signal) for signum in STOP_SIGNALS}
        try:
            for slot in self.slots:
                self._start(slot)
            while True:
                now = time.monotonic()
                running = 0
                for slot in self.slots:
                    if slot.process is not None and slot.process.poll() is not None:
                        self._reap(slot, now)
                    if slot.process is None and not self.stopping and now >= slot.restart_at:
                        self.restarts += 1
                        self._start(slot)
                    if slot.process is not None:
                        running += 1
                if self.stopping and running == 0:
                    return 0
                if self.watch is not None:
                    self._kill_silent()
                time.sleep(0.05)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for slot in self.slots:
                if slot.process is not None and slot.process.poll() is None:
                    slot.process.kill()
                    slot.process.wait()
