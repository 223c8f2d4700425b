"""Isolated jobs (``--isolate``): a pool of child processes, each running jobs one at a time.

The worker keeps the reservation, the events and every decision; a child only decodes the
payload, runs ``execute`` and sends back what happened. A child serves job after job until
it has run ``max_jobs_per_child`` of them or uses ``max_memory_per_child`` MB (it is then
retired and a fresh one takes the next job), until one of its jobs outlives its ttr (it is
killed: JobTimeoutError) or until it dies without answering (a segfault, ``os.abort``, the
OOM killer: WorkerLostError). A child whose worker is gone exits. See isolation.py for the
two ways a child is made (fork, exec) and what it reports.

Frames on the pipes: to a child ``>I`` length + payload; back ``>IB`` length, flag + the
report, the flag saying the child retires after it. A child's first frame is an empty one
flagged ready, once it has loaded what it needs: a job's ttr counts from then, so an exec
child's interpreter start is not charged to its first job, unless the start took so long that
the kill would come too late to be reported within the job's lease. A worker with ``concurrency`` N
has up to N children, one per job in flight.
"""

from __future__ import annotations

import logging
import math
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import control
from .errors import JobTimeoutError, WorkerLostError
from .host import memory_mb
from .isolation import (
    Outcome,
    decode_outcome,
    describe_exit,
    encode_outcome,
    ignore_stop_signals,
    run_and_encode,
)

if TYPE_CHECKING:
    from .queue import Queue

logger = logging.getLogger(__name__)

_TO_CHILD = struct.Struct(">IH")
"""Payload size, job id size; the id, then the payload, follow."""
_FROM_CHILD = struct.Struct(">IB")
RETIRING = 1
READY = 2
START_TIMEOUT = 60.0
"""Seconds a new child may take to say it is ready (an exec child imports the app)."""
RETIRE_WAIT = 5.0
"""Seconds a retired or closed child gets to exit by itself before it is killed."""
PARENT_CHECK = 0.5
"""Seconds between a child's checks that its worker is still there."""


# -- in the child -----------------------------------------------------------------------

def serve(queue: Queue, jobs_fd: int, reports_fd: int,
          max_memory: float | None = None) -> None:
    """A child's life: run each job that comes on ``jobs_fd`` and report it on
    ``reports_fd``, until the worker closes ``jobs_fd`` or the child uses ``max_memory``
    MB. Exits at once (code 70) if its worker dies."""
    _watch_parent(os.getppid())
    control.forget_all()
    _write_all(reports_fd, _FROM_CHILD.pack(0, READY))
    while True:
        payload = _read_exactly(jobs_fd, _TO_CHILD.size)
        if payload is None:
            return
        size, name_size = _TO_CHILD.unpack(payload)
        name = _read_exactly(jobs_fd, name_size) if name_size else b""
        payload = _read_exactly(jobs_fd, size) if size else b""
        if payload is None or name is None:
            return
        try:
            job, _ = queue.decode(payload)
        except Exception as exc:  # noqa: BLE001 - a bad payload is this job's error
            report = encode_outcome(False, exc, str(exc))
        else:
            # Progress is written from here; a cancel kills this process (the worker's
            # watch sees the mark), so cancelled() stays False in a child.
            run_control = control.begin(job, name.decode("utf-8", "replace"), queue.driver)
            try:
                report = run_and_encode(queue, job)
            finally:
                control.end(job, run_control)
        retiring = max_memory is not None and (memory_mb() or 0.0) >= max_memory
        _write_all(reports_fd, _FROM_CHILD.pack(len(report), RETIRING if retiring else 0)
                   + report)
        if retiring:
            return


def _watch_parent(parent: int) -> None:
    # A worker killed with SIGKILL cannot stop its children: the job they run comes back
    # as a lost run elsewhere, and must not go on here at the same time.
    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK)
            if os.getppid() != parent:
                os._exit(70)
    threading.Thread(target=watch, name="queue-core parent watch", daemon=True).start()


def _read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from ``fd``; None at EOF."""
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# -- in the worker ----------------------------------------------------------------------

class _Child:
    """One child process and the worker's ends of its two pipes."""

    def __init__(self, pid: int, jobs_fd: int, reports_fd: int,
                 process: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.jobs_fd = jobs_fd
        self.reports_fd = reports_fd
        self.process = process
        self.jobs = 0
        self.running: str | None = None
        """The id of the job it runs now (None: idle); changed under the pool's lock."""
        self.ready = False
        self.status: int | None = None
        """The exit status once reaped (os.waitpid form for fork, returncode for exec)."""

    def alive(self) -> bool:
        if self.status is not None:
            return False
        if self.process is not None:
            code = self.process.poll()
            if code is None:
                return True
            self.status = code
            return False
        done, status = os.waitpid(self.pid, os.WNOHANG)
        if done:
            self.status = status
        return not done

    def send(self, job_id: str, payload: bytes) -> bool:
        """False if the child is gone (its end of the pipe closed)."""
        name = job_id.encode("utf-8")[:1000]
        try:
            _write_all(self.jobs_fd, _TO_CHILD.pack(len(payload), len(name)) + name + payload)
            return True
        except (BrokenPipeError, OSError):
            return False

    def report(self, deadline: float) -> tuple[bytes | None, bool, bool]:
        """(report, retiring, timed_out); report None if the child ended without one."""
        head = self._read(_FROM_CHILD.size, deadline)
        if head is None or isinstance(head, _TimedOut):
            return None, False, isinstance(head, _TimedOut)
        size, flag = _FROM_CHILD.unpack(head)
        body = self._read(size, deadline)
        if body is None or isinstance(body, _TimedOut):
            return None, False, isinstance(body, _TimedOut)
        return body, flag == RETIRING, False

    def wait_ready(self, until: float = math.inf) -> bool:
        """Wait for the child's ready frame; a child that dies or stays silent is left
        dead, for its first job to report. False if ``until`` (monotonic) came first: the
        child is killed, and its job may not wait any longer for it."""
        self.ready = True  # or dead: either way, asked once
        start_by = time.monotonic() + START_TIMEOUT
        head = self._read(_FROM_CHILD.size, min(start_by, until))
        if isinstance(head, _TimedOut) and until < start_by:
            self.kill()
            return False
        if isinstance(head, _TimedOut):
            logger.error("child process %d did not start within %gs; killing it", self.pid,
                         START_TIMEOUT)
            self.kill()
        elif head is not None and _FROM_CHILD.unpack(head) != (0, READY):
            logger.error("child process %d began with something else than its ready frame; "
                         "killing it", self.pid)
            self.kill()
        return True

    def _read(self, size: int, deadline: float) -> bytes | _TimedOut | None:
        chunks: list[bytes] = []
        left = size
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0:
                return _TIMED_OUT
            ready, _, _ = select.select([self.reports_fd], [], [], min(wait, 1.0))
            if not ready:
                if not self.alive():
                    return None
                continue
            chunk = os.read(self.reports_fd, left)
            if not chunk:
                return None
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def kill(self) -> None:
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def end(self, wait: float) -> str:
        """Close the pipes, give the child ``wait`` seconds to exit, kill it if it has
        not; how it ended."""
        for fd in (self.jobs_fd, self.reports_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.alive():
            self.kill()
        if self.status is None:
            if self.process is not None:
                self.status = self.process.wait()
            else:
                self.status = os.waitpid(self.pid, 0)[1]
        return self.describe()

    def describe(self) -> str:
        status = self.status
        if status is None:
            return "is still running"
        if self.process is not None:
            if status == 2:
                return ("exited with code 2 (the exec command could not load the app: see "
                        "the worker's stderr)")
            return (f"died with signal {-status} ({_signal_name(-status)})" if status < 0
                    else f"exited with code {status}")
        return describe_exit(status)


class _TimedOut:
    pass


_TIMED_OUT = _TimedOut()


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


class ChildPool:
    """The children of one worker: up to ``size``, made when a job needs one.

    ``take`` belongs to the worker's main thread, which is the only one that makes
    children: a fork copies only the forking thread, and a lock another thread held at
    that moment (in the driver, in logging) would stay locked in the child forever. ``run``
    may be called from any thread; it gives the child back after the job."""

    def __init__(self, queue: Queue, mode: str, *, size: int = 1, app: str | None = None,
                 max_jobs_per_child: int | None = None,
                 max_memory_per_child: float | None = None,
                 after_fork: Callable[[], None] | None = None) -> None:
        self.queue = queue
        self.mode = mode
        self.size = size
        self.app = app
        self.max_jobs_per_child = max_jobs_per_child
        self.max_memory_per_child = max_memory_per_child
        self._after_fork = after_fork
        self._idle: list[_Child] = []
        self._all: set[_Child] = set()
        self._lock = threading.Lock()
        self.started = 0
        """Children made so far (for the logs and the tests)."""
        self._closing = False

    def warm(self) -> None:
        """Exec mode: start every child now and wait until each is ready, before the worker
        takes a job. A job's lease runs from its begin, so an interpreter starting while
        it waits would eat into it (fork children start in a moment, when needed)."""
        if self.mode != "exec":
            return
        with self._lock:
            missing = self.size - len(self._all)
        made = [self._make() for _ in range(missing)]
        for child in made:
            child.wait_ready()
        with self._lock:
            self._idle.extend(made)

    def take(self) -> _Child:
        """An idle child, a ready one first, made now if none is (call from the worker's
        main thread)."""
        idle = self._pop_idle()
        while idle is not None and not idle.alive():
            # It died while idle (the OOM killer, a signal): never hand it a job.
            logger.warning("child process %d %s while idle; starting another", idle.pid,
                           self._discard(idle))
            idle = self._pop_idle()
        return idle if idle is not None else self._make()

    def _pop_idle(self) -> _Child | None:
        with self._lock:
            for index in range(len(self._idle) - 1, -1, -1):
                if self._idle[index].ready:
                    return self._idle.pop(index)
            return self._idle.pop() if self._idle else None

    def run(self, child: _Child, job_id: str, payload: bytes, ttr: float,
            began: float = 0.0) -> Outcome:
        """Run one job in ``child`` (from ``take``); the outcome, whatever the child did.

        ``began`` is when the job was begun (``Message.began``): its lease counts from then,
        so a child slow to start eats into the job's ttr rather than into the half of the
        lease's grace that leaves time to report the kill before the lease ends."""
        latest = math.inf
        if began:
            grace = self.queue.driver.lease_seconds(ttr) - ttr
            latest = began + ttr + grace / 2
        if not child.ready:
            # Here rather than in ``take``: children made for several jobs start side by
            # side, and the main thread goes on fetching meanwhile.
            waited = time.monotonic()
            if not child.wait_ready(latest):
                self._discard(child, replace=True)
                return Outcome(False, error=JobTimeoutError(
                    f"job {job_id} exceeded its ttr of {ttr:g}s before its child process "
                    f"had started ({time.monotonic() - waited:.3g}s); its child process was "
                    "killed"))
        deadline = min(time.monotonic() + ttr, latest)
        with self._lock:
            child.running = job_id
        if not child.send(job_id, payload):
            how = self._discard(child, replace=True)
            return Outcome(False, error=WorkerLostError(
                f"the child process for job {job_id} {how} before it took the job"))
        report, retiring, timed_out = child.report(deadline)
        with self._lock:
            child.running = None
        if timed_out:
            child.kill()
            self._discard(child, replace=True)
            return Outcome(False, error=JobTimeoutError(
                f"job {job_id} exceeded its ttr of {ttr:g}s; its child process was killed"))
        if report is None:
            how = self._discard(child, replace=True)
            return Outcome(False, error=WorkerLostError(
                f"the child process running job {job_id} {how} before reporting a result"))
        child.jobs += 1
        if retiring or (self.max_jobs_per_child is not None
                        and child.jobs >= self.max_jobs_per_child):
            logger.info("child process %d retires after %d jobs%s", child.pid, child.jobs,
                        " (max_memory_per_child)" if retiring else "")
            self._discard(child, replace=True)
        else:
            with self._lock:
                self._idle.append(child)
        try:
            return decode_outcome(report)
        except Exception as exc:
            return Outcome(False, error=WorkerLostError(
                f"job {job_id}: its child process sent an unreadable report ({exc})"))

    def cancel(self, child: _Child, job_id: str) -> None:
        """Kill ``child`` if it still runs ``job_id`` (a cancelled job): never a child
        that has finished it and may run another job by now."""
        with self._lock:
            if child.running == job_id:
                child.kill()

    def kill_busy(self) -> None:
        """Kill every child running a job (the worker is told to stop at once); each of
        those jobs ends as a lost attempt."""
        self._closing = True
        with self._lock:
            busy = [child for child in self._all if child not in self._idle]
        for child in busy:
            child.kill()

    def close(self) -> None:
        """End every child (each is idle: the worker has drained its jobs)."""
        self._closing = True
        with self._lock:
            children, self._idle = list(self._all), []
            self._all.clear()
        for child in children:
            child.end(RETIRE_WAIT)

    def _make(self) -> _Child:
        with self._lock:
            open_fds = [fd for child in self._all for fd in (child.jobs_fd, child.reports_fd)]
        child = self._start_exec() if self.mode == "exec" else self._fork(open_fds)
        self.started += 1
        with self._lock:
            self._all.add(child)
        return child

    def _discard(self, child: _Child, replace: bool = False) -> str:
        """End ``child``; with ``replace`` in exec mode, start its successor at once, so
        that it is ready by the next job (its start is not charged to that job's lease)."""
        with self._lock:
            self._all.discard(child)
        how = child.end(0.0 if child.status is not None else RETIRE_WAIT)
        if replace and self.mode == "exec" and not self._closing:
            try:
                successor = self._make()
            except Exception as exc:  # noqa: BLE001 - the next job starts one and reports
                logger.warning("could not start a child process in advance: %s", exc)
            else:
                with self._lock:
                    self._idle.append(successor)
        return how

    def _fork(self, siblings_fds: list[int]) -> _Child:
        jobs_read, jobs_write = os.pipe()
        reports_read, reports_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            code = 0
            try:
                # Its siblings' pipes must not stay open here: a sibling would never see
                # the end of its own job pipe when the worker closes it.
                for fd in (*siblings_fds, jobs_write, reports_read):
                    os.close(fd)
                ignore_stop_signals()
                if hasattr(signal, "SIGALRM"):
                    signal.signal(signal.SIGALRM, signal.SIG_DFL)
                self.queue.driver.after_fork()
                if self._after_fork is not None:
                    self._after_fork()
                serve(self.queue, jobs_read, reports_write, self.max_memory_per_child)
                try:
                    self.queue.driver.close()
                except Exception:
                    pass
            except BaseException:
                code = 70
            finally:
                os._exit(code)
        os.close(jobs_read)
        os.close(reports_write)
        return _Child(pid, jobs_write, reports_read)

    def _start_exec(self) -> _Child:
        assert self.app is not None
        reports_read, reports_write = os.pipe()
        command = [sys.executable, "-m", "queue_core", "--app", self.app, "exec",
                   "--report-fd", str(reports_write)]
        if self.max_memory_per_child is not None:
            command += ["--max-memory", str(self.max_memory_per_child)]
        try:
            process = subprocess.Popen(command, stdin=subprocess.PIPE,
                                       pass_fds=(reports_write,),
                                       preexec_fn=ignore_stop_signals)
        except BaseException:
            os.close(reports_read)
            raise
        finally:
            os.close(reports_write)
        assert process.stdin is not None
        jobs_fd = os.dup(process.stdin.fileno())
        process.stdin.close()
        return _Child(process.pid, jobs_fd, reports_read, process)
