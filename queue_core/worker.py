"""The worker loop: ``run`` (what is ready, then return) and ``listen`` (until stopped).

ttr is a real time limit: in the main thread a SIGALRM timer raises JobTimeoutError inside
the job, and keeps raising every second if the job swallows it (where there is no SIGALRM,
as on Windows, a watchdog thread does the same: see watchdog.py); in isolated mode the job
runs in a child process that is killed at its ttr (see job_children.py). SIGTERM, SIGINT,
SIGQUIT and SIGHUP let the current job finish, then the worker stops; an idle worker stops
within half a second (about a second on beanstalk, whose server waits in whole seconds).
``max_jobs``, ``max_memory`` and ``max_time`` make it stop cleanly (exit code 0) so that a
supervisor replaces it. A back end that fails while the worker
waits is retried with capped backoff, logged once per outage. While ``listen`` runs, a
heartbeat thread (heartbeat.py) writes the worker's record to the store every
``heartbeat`` seconds, as long as the worker is healthy; the loops tell it their progress
and the jobs they begin and end (``Activity``).

This module imports on any platform: what only some have (``resource``, ``os.fork``,
``signal.setitimer``) is looked up when a worker starts (host.py), and a worker that needs
what is missing refuses to start with one sentence saying so.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from . import bounds, control, events, host
from .consuming import Consumption
from .dispatch import Dispatcher, Runners, stuck_message
from .driver import Message
from .errors import (
    ConfigError,
    DriverError,
    InvalidArgumentError,
    JobTimeoutError,
    NotSupportedError,
    SerializationError,
    WorkerLostError,
)
from .events import ExecEvent, WorkerEvent
from .heartbeat import Activity, Heartbeat, check_period
from .inflight import Run
from .job import Job
from .job_children import ChildPool
from .job_loop import is_async
from .records import damage
from .serializers import PickleSerializer
from .watchdog import TtrExpired, Watchdog
from .watchdog import available as watchdog_available

if TYPE_CHECKING:
    from .queue import Queue

logger = logging.getLogger(__name__)
T = TypeVar("T")

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP")
                     if hasattr(signal, name))
WAIT_SLICE = 0.5
"""Longest single wait asked of the back end, so that an idle worker notices a stop soon
(a back end may round it up: beanstalkd waits in whole seconds)."""
SAME_STOP_REQUEST = 0.5
"""Seconds within which a second stop signal is the same request as the first: a Ctrl-C
reaches a supervisor and its workers at once, and the supervisor passes it on."""
OUTAGE_BACKOFF_MAX = 10.0
SUPERVISOR_ENV = "QUEUE_CORE_SUPERVISOR_PID"
"""Set by ``listen --workers``: a worker whose supervisor is gone stops after its job."""


def memory_mb() -> float | None:
    """Resident memory of this process now (peak where /proc is missing), in MB; None
    where the platform offers no reading."""
    return host.memory_mb()


def _no_name(payload: bytes) -> None:
    return None


def _positive_or_none(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InvalidArgumentError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _check_platform(isolate: str | None, max_memory: float | None) -> None:
    """Refuse at once what this platform cannot do, rather than fail on the first job."""
    if isolate == "fork" and not host.has_fork():
        raise NotSupportedError(host.no_fork_message())
    if isolate == "exec" and not host.has_fd_passing():
        raise NotSupportedError(host.no_exec_message())
    if max_memory is not None and host.memory_mb() is None:
        raise NotSupportedError(host.no_memory_message())


class Worker:
    def __init__(self, queue: Queue, *, timeout: float = 3.0, handle_signals: bool = True,
                 enforce_ttr: bool = True, max_jobs: int | None = None,
                 max_memory: float | None = None, max_time: float | None = None,
                 isolate: bool | str | None = None, app: str | None = None,
                 emit_events: bool = True, concurrency: int | None = None,
                 async_concurrency: int | None = None,
                 max_jobs_per_child: int | None = None,
                 max_memory_per_child: float | None = None,
                 heartbeat: float | None = None) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise InvalidArgumentError(f"timeout must be seconds >= 0, got {timeout!r}")
        if max_jobs is not None and (isinstance(max_jobs, bool) or not isinstance(max_jobs, int)
                                     or max_jobs < 1):
            raise InvalidArgumentError(f"max_jobs must be a whole number >= 1, got {max_jobs!r}")
        if max_jobs_per_child is not None and (
                isinstance(max_jobs_per_child, bool) or not isinstance(max_jobs_per_child, int)
                or max_jobs_per_child < 1):
            raise InvalidArgumentError("max_jobs_per_child must be a whole number >= 1, got "
                                       f"{max_jobs_per_child!r}")
        self.queue = queue
        self.max_memory = _positive_or_none(max_memory, "max_memory")
        self.max_time = _positive_or_none(max_time, "max_time")
        self.isolate = queue.isolate if isolate is None else queue.isolation(isolate)
        self.concurrency = queue.concurrency if concurrency is None else bounds.concurrency(
            concurrency)
        self.async_concurrency = (queue.async_concurrency if async_concurrency is None
                                  else bounds.concurrency(async_concurrency, "async_concurrency"))
        # At concurrency 1 synchronous jobs run one at a time in the main thread, and async
        # ones side by side on the event loop; with concurrency N, N counts both kinds.
        self._async_beside = (self.concurrency == 1 and not self.isolate
                              and self.async_concurrency > 1)
        self.max_jobs_per_child = max_jobs_per_child
        self.max_memory_per_child = _positive_or_none(max_memory_per_child,
                                                      "max_memory_per_child")
        if not self.isolate and (max_jobs_per_child is not None
                                 or max_memory_per_child is not None):
            raise InvalidArgumentError("max_jobs_per_child and max_memory_per_child limit "
                                       "the child processes of isolated jobs: add --isolate")
        _check_platform(self.isolate, self.max_memory or self.max_memory_per_child)
        if enforce_ttr and self.concurrency > 1 and not watchdog_available():
            raise NotSupportedError(
                "ttr cannot be enforced on job threads: this interpreter cannot raise an "
                "exception in another thread (no ctypes.pythonapi); run with concurrency 1 "
                "or enforce_ttr=False")
        self.heartbeat = queue.heartbeat if heartbeat is None else check_period(heartbeat)
        """Seconds between heartbeats while ``listen`` runs (0: none); see heartbeat.py."""
        self._activity: Activity | None = None
        self._beating: Heartbeat | None = None
        self.app = app or os.environ.get("QUEUE_APP")
        supervisor = os.environ.get(SUPERVISOR_ENV, "")
        self.supervisor_pid = int(supervisor) if supervisor.isdigit() else None
        self.started_at = time.monotonic()
        self._processed_at_start = 0
        self.timeout = float(timeout)
        self.handle_signals = handle_signals
        self.enforce_ttr = enforce_ttr
        self.max_jobs = max_jobs
        self.emit_events = emit_events
        self.exit_code: int | None = None
        self.processed = 0
        self.stopping = False
        self.hurry = False
        """Told to stop at once (a second stop signal): running jobs are interrupted."""
        self._signalled = 0.0
        """When the first stop signal came (0: none yet)."""
        self._in_job = False
        self._timed_out = False
        self._current: Message | None = None
        self._current_ttr = 0.0
        self._ttr_guard: str | None = None
        """How ttr is enforced in-process: "signal", "watchdog" or None (not at all)."""
        self._watchdog: Watchdog | None = None
        self._outage_since: float | None = None
        self._outage_delay = 0.0
        self._active = 0
        self._consumption: Consumption | None = None
        self._runners: Runners | None = None
        self._children: ChildPool | None = None

    # -- control ---------------------------------------------------------------------

    def stop(self, exit_code: int = 0) -> None:
        """Stop after the current job (safe from a signal handler or another thread)."""
        if self.exit_code is None:
            self.exit_code = exit_code
        self.stopping = True

    def _should_stop(self) -> bool:
        if self.stopping:
            return True
        if self.max_jobs is not None and self.processed >= self.max_jobs:
            logger.info("processed %d jobs (max_jobs): stopping", self.processed)
            self.stop(0)
        elif self.max_time is not None and time.monotonic() - self.started_at >= self.max_time:
            logger.info("ran for %.0fs (max_time): stopping", self.max_time)
            self.stop(0)
        elif (self.max_memory is not None and self.processed > self._processed_at_start
              and (used := memory_mb()) is not None and used >= self.max_memory):
            # Only after a job: a limit below the start-up size must not make a supervised
            # worker exit and come back forever without doing any work.
            logger.info("uses %.0f MB (max_memory %.0f MB): stopping", used, self.max_memory)
            self.stop(0)
        elif self.supervisor_pid is not None and os.getppid() != self.supervisor_pid:
            logger.warning("the supervisor (pid %d) is gone: stopping", self.supervisor_pid)
            self.stop(0)
        return self.stopping

    # -- the loops -------------------------------------------------------------------

    def run(self) -> int:
        """Process every job that is ready now; return how many were processed."""
        before = self.processed
        with self._session():
            if self.concurrency > 1:
                Dispatcher(self, self._job_runners(), self.concurrency).run()
                return self.processed - before
            beside = self._async_beside
            while not self._should_stop():
                consumption = self._consuming()
                message = consumption.next(0)
                if message is None:
                    if consumption.throttled:
                        continue  # ready jobs wait for the rate limits: not done yet
                    break
                handed = self._take(message, beside)
                if handed is not None:
                    self._run_beside(handed, None)
                    break
                self._loop_event()
        return self.processed - before

    def listen(self) -> int:
        """Process jobs until a signal, ``stop()`` or an event's ``exit_code``; return the
        exit code."""
        wait = max(0.05, min(self.timeout, WAIT_SLICE))
        with self._session(beating=True):
            if self.concurrency > 1:
                Dispatcher(self, self._job_runners(), self.concurrency).listen(wait)
                return self.exit_code or 0
            beside = self._async_beside
            while not self._should_stop():
                message = self._reserve(wait)
                if message is not None:
                    handed = self._take(message, beside)
                    if handed is not None:
                        self._run_beside(handed, wait)
                        break
                self._loop_event()
        return self.exit_code or 0

    def _reserve(self, wait: float) -> Message | None:
        try:
            message = (self._consumption or self._consuming()).next(wait)
        except Exception as exc:
            self._outage(exc)
            return None
        if self._outage_since is not None:
            self._outage_over()
        return message

    def _reserve_many(self, wait: float, room: int,
                      last: Callable[[Message], bool] | None = None) -> list[Message]:
        """``_reserve`` of up to ``room`` jobs, begun together (see ``next_many``)."""
        try:
            messages = self._consuming().next_many(wait, room, last)
        except Exception as exc:
            self._outage(exc)
            return []
        if self._outage_since is not None:
            self._outage_over()
        return messages

    def _outage_over(self) -> None:
        assert self._outage_since is not None
        logger.warning("%s is reachable again after %.1fs", self.queue.driver.describe(),
                       time.monotonic() - self._outage_since)
        self._outage_since = None

    def _job_runners(self) -> Runners:
        if self._runners is None:
            self._runners = Runners(self.queue, self.concurrency, self.enforce_ttr,
                                    self._child_pool() if self.isolate else None)
        return self._runners

    def _child_pool(self) -> ChildPool:
        if self._children is None:
            self._children = ChildPool(
                self.queue, self.isolate or "fork", size=self.concurrency, app=self.app,
                max_jobs_per_child=self.max_jobs_per_child,
                max_memory_per_child=self.max_memory_per_child,
                after_fork=self._after_fork)
        return self._children

    def _after_fork(self) -> None:
        # In a child made by fork: the consumer's state is the worker's, never the child's.
        if self._consumption is not None:
            self._consumption.after_fork()

    def _consuming(self) -> Consumption:
        if self._consumption is None:
            self._consumption = self.queue.consume()
            if self.concurrency > 1:
                self._consumption.allow_in_flight(self.concurrency)
        return self._consumption

    def _outage(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
            self._outage_delay = 0.1
            where = self.queue.driver.describe()
            if isinstance(exc, DriverError):
                # Drivers name themselves in their errors; the address is said once.
                text = str(exc)
                logger.error("cannot reach %s; retrying with backoff",
                             text if where in text else f"{where}: {text}")
            else:
                logger.exception("reserve on %s failed; retrying with backoff", where)
        else:
            self._outage_delay = min(self._outage_delay * 2, OUTAGE_BACKOFF_MAX)
        self._sleep(self._outage_delay)

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopping:
            if self._activity is not None:
                self._activity.progress()  # waiting out an outage is no hang
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

    def _loop_event(self) -> None:
        if self._activity is not None:
            self._activity.progress_at = time.monotonic()  # progress(), written out
        if self.emit_events and self.queue.has_handlers(events.WORKER_LOOP):
            event = self.queue.trigger(events.WORKER_LOOP, WorkerEvent(self))
            if event.exit_code is not None:
                self.stop(event.exit_code)

    def _start_heartbeat(self) -> None:
        """The heartbeat thread, where the driver stores heartbeats and one is wanted."""
        if not self.heartbeat:
            return
        store = self.queue.driver
        if not store.capabilities.heartbeats:
            logger.debug("the %s driver stores no heartbeats: this worker is not listed "
                         "by 'queue-core workers'", store.name)
            return
        serializer = self.queue.serializer
        # A pickled payload's name is read by unpickling it: not again, not on this thread.
        names = (_no_name if isinstance(serializer, PickleSerializer)
                 else serializer.peek_name)
        self._activity = Activity()
        self._beating = Heartbeat(store, self._activity, self.heartbeat, self._counts, names)
        self._beating.start()

    def _stop_heartbeat(self) -> None:
        beating, self._beating = self._beating, None
        self._activity = None
        if beating is not None:
            beating.stop(forget=True)

    def _counts(self) -> tuple[int, int]:
        """Runs done and failed so far (read by the heartbeat thread)."""
        consumption = self._consumption
        return (0, 0) if consumption is None else (consumption.acked, consumption.failed)

    @contextmanager
    def _session(self, beating: bool = False) -> Iterator[None]:
        # Re-entrant: the sync driver runs jobs inside push, possibly from inside a job.
        self._active += 1
        if self._active > 1:
            try:
                yield
            finally:
                self._active -= 1
            return
        self.stopping = False
        self.hurry = False
        self._signalled = 0.0
        self.exit_code = None
        self.started_at = time.monotonic()
        self._processed_at_start = self.processed
        main = threading.current_thread() is threading.main_thread()
        previous: dict[int, Any] = {}
        try:
            self.queue.import_job_modules()
            self.queue.driver.check_setup(self.queue.ttr)
            if self.isolate == "exec" and not self.app:
                raise ConfigError("isolate='exec' needs the app target (--app or QUEUE_APP) "
                                  "so that each child can load the queue", key="isolate")
            if self.isolate == "exec":
                self._child_pool().warm()
            if main and self.handle_signals:
                for signum in STOP_SIGNALS:
                    previous[signum] = signal.signal(signum, self._on_stop_signal)
            self._ttr_guard = self._choose_ttr_guard(main)
            if self._ttr_guard == "signal":
                previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, self._on_alarm)
            elif self._ttr_guard == "watchdog":
                self._watchdog = Watchdog()
            if self.emit_events and self.queue.has_handlers(events.WORKER_START):
                event = self.queue.trigger(events.WORKER_START, WorkerEvent(self))
                if event.exit_code is not None:
                    self.stop(event.exit_code)
            if beating:
                self._start_heartbeat()
            if self.queue.driver.capabilities.cancel:
                control.watch_runs()
            yield
        finally:
            self._active -= 1
            self._stop_heartbeat()
            runners, self._runners = self._runners, None
            if runners is not None:
                runners.close()
            children, self._children = self._children, None
            if children is not None:
                children.close()
            consumption, self._consumption = self._consumption, None
            try:
                if consumption is not None:
                    consumption.close()
            except Exception:
                logger.exception("could not flush %s; unreported outcomes come back with "
                                 "their lease", self.queue.driver.describe())
            if self._ttr_guard == "signal":
                signal.setitimer(signal.ITIMER_REAL, 0)
            if self._watchdog is not None:
                self._watchdog.close()
                self._watchdog = None
            self._ttr_guard = None
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self.emit_events and self.queue.has_handlers(events.WORKER_STOP):
                self.queue.trigger(events.WORKER_STOP, WorkerEvent(self, self.exit_code))

    def _choose_ttr_guard(self, main: bool) -> str | None:
        if not self.enforce_ttr or self.isolate or self.concurrency > 1:
            return None  # isolated: the child is killed; concurrent: see dispatch.py
        if not main:
            logger.warning("ttr is not enforced: the worker is not in the main thread")
            return None
        if host.has_timer_signal():
            return "signal"
        if watchdog_available():
            logger.info("no SIGALRM timer on this platform: a watchdog thread enforces ttr")
            return "watchdog"
        raise NotSupportedError(
            "ttr cannot be enforced in this process: the platform has no signal.setitimer "
            "(SIGALRM) and the interpreter no ctypes.pythonapi; run jobs isolated "
            "(--isolate) or build the worker with enforce_ttr=False")

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._signalled:
            if time.monotonic() - self._signalled >= SAME_STOP_REQUEST:
                self._stop_now(name)
            return
        self._signalled = time.monotonic()
        if not self.stopping:
            if self._in_job and self._current is not None:
                logger.info("%s: stopping after job %s finishes", name, self._current.id,
                            extra=self._log_extra(self._current))
            else:
                logger.info("%s: stopping", name)
        self.stop(0)

    def _stop_now(self, name: str) -> None:
        """A second stop signal: interrupt the running jobs rather than wait for them."""
        if not self.hurry:
            logger.warning("%s again: interrupting the running jobs (each counts as an "
                           "attempt and goes through the retry decision)", name)
        self.hurry = True
        self.stop(0)
        if self._children is not None:
            self._children.kill_busy()
        if self._in_job and self._current is not None:
            # One job, in this thread: the signal handler interrupts it where it is.
            raise self._stopped_error(self._current.id)

    @staticmethod
    def _stopped_error(job_id: str) -> WorkerLostError:
        return WorkerLostError(f"job {job_id} was interrupted: its worker was told to stop "
                               "at once (a second stop signal)")

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        self._timed_out = True
        if self._in_job:
            raise self._timeout_error()

    def _timeout_error(self) -> JobTimeoutError:
        job_id = self._current.id if self._current is not None else "?"
        return JobTimeoutError(f"job {job_id} exceeded its ttr of {self._current_ttr:g}s")

    # -- one job ---------------------------------------------------------------------

    def process(self, message: Message) -> None:
        """Run one reserved job and report its outcome. Never raises for a job's fault."""
        self._take(message, False)

    def _take(self, message: Message, beside: bool) -> Run | None:
        """``process``; with ``beside``, an async job is not run here but returned,
        prepared and begun, for ``_run_beside``."""
        self._current = message
        handed: Run | None = None
        activity = self._activity
        if activity is not None:
            activity.began(message)
        try:
            handed = self._process(message, beside)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            # guarded(), written out: this runs once per job.
            self._not_settled(message, exc)
        finally:
            self._current = None
            if handed is None:
                self.processed += 1
                if activity is not None:
                    activity.ended(message)
        return handed

    def _run_beside(self, run: Run, wait: float | None) -> None:
        """Run ``run`` (an async job) and the jobs after it, async ones side by side and
        synchronous ones one at a time in this thread, until the worker stops (``wait``:
        as ``listen`` waits) or, with None, until no job is ready (as ``run``)."""
        self._consuming().allow_in_flight(self.async_concurrency)
        dispatcher = Dispatcher(self, self._job_runners(), self.async_concurrency,
                                inline=True)
        dispatcher.adopt(run)
        if wait is None:
            dispatcher.run()
        else:
            dispatcher.listen(wait)

    def guarded(self, message: Message, step: Callable[..., T], *args: Any) -> T | None:
        """``step(*args)`` for ``message``; a failure that is not the job's is logged (the
        job's lease brings it back) and gives None."""
        try:
            return step(*args)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            self._not_settled(message, exc)
        return None

    def _not_settled(self, message: Message, exc: Exception) -> None:
        if isinstance(exc, DriverError):
            logger.error("job %s: cannot report its outcome to %s (%s); its lease will bring "
                         "it back", message.id, self.queue.driver.describe(), exc,
                         extra=self._log_extra(message))
        else:
            logger.error("job %s: internal error while handling it; its lease will bring "
                         "it back", message.id, exc_info=exc, extra=self._log_extra(message))

    def _log_extra(self, message: Message) -> dict[str, Any]:
        decoded = message.decoded
        job = decoded[0] if isinstance(decoded, tuple) else None
        return self.queue.log_extra(message.id, job, message.attempt)

    def prepare(self, message: Message) -> tuple[Job, Any, ExecEvent | None] | None:
        """Decode ``message`` and run what comes before its execute; None when that already
        settled it (damaged, undecodable, a lost run not retried, skipped by before_exec)."""
        queue = self.queue
        problem = damage(message)
        if problem is not None:
            queue.handle_damaged(message, problem)
            return None
        decoded = message.decoded
        if decoded is None:
            try:
                job, meta = queue.decode(message.payload)
            except SerializationError as exc:
                queue.handle_undecodable(message, exc)
                return None
        elif isinstance(decoded, SerializationError):
            queue.handle_undecodable(message, decoded)
            return None
        else:
            job, meta = decoded
        if message.redelivered and not queue.handle_lost(message, job, meta):
            return None
        event: ExecEvent | None = None
        if queue.has_handlers(events.BEFORE_EXEC):
            event = queue.trigger(events.BEFORE_EXEC, ExecEvent(
                message.id, job, message.ttr, message.attempt, queue=queue,
                pushed_at=message.pushed_at, traceparent=meta.get("trace")))
            if event.handled:
                logger.debug("job %s skipped by a before_exec handler", message.id,
                             extra=queue.log_extra(message.id, job, message.attempt))
                queue.report(queue.settler(message).ack, message, keep=queue.keep_completed)
                return None
        return job, meta, event

    def _runs_inline(self, message: Message) -> bool:
        """Whether ``message`` (fetched, not begun) is not an async job: decoded here, once."""
        if message.decoded is None:
            self.decode_ahead([message])
        decoded = message.decoded
        return not (isinstance(decoded, tuple) and is_async(decoded[0]))

    def decode_ahead(self, messages: list[Message]) -> None:
        """Decode jobs fetched ahead while they wait for a slot, so that the decoding is
        not part of the time a slot stays empty (``prepare`` uses it, failure included)."""
        for message in messages:
            if damage(message) is None:
                try:
                    message.decoded = self.queue.decode(message.payload)
                except SerializationError as exc:
                    message.decoded = exc
                except Exception:  # noqa: BLE001 - a serializer's own fault, met again in prepare
                    # Left undecoded: prepare decodes it again where such a fault is
                    # reported for that job alone, and the worker goes on.
                    continue

    def conclude(self, run: Run) -> None:
        """Settle a run that ended on a pool thread or the event loop."""
        queue, message = self.queue, run.message
        if run.abandoned:
            logger.error(stuck_message(run), extra=run.log_extra(queue))
            return
        error: BaseException
        if run.control is not None and run.control.cancelled:
            error = run.control.cancelled_error()
            error.__cause__ = run.error
            queue.handle_error(message, run.job, run.meta, error)
        elif run.stopped and run.error is not None:
            error = self._stopped_error(message.id)
            error.__cause__ = run.error
            queue.handle_error(message, run.job, run.meta, error)
        elif run.expired:
            error = JobTimeoutError(f"job {message.id} exceeded its ttr of {run.ttr:g}s")
            error.__cause__ = run.error
            queue.handle_error(message, run.job, run.meta, error)
        elif run.error is not None:
            queue.handle_error(message, run.job, run.meta, run.error, info=run.info)
        else:
            queue.handle_success(message, run.job, run.result, run.event)

    def _process(self, message: Message, beside: bool = False) -> Run | None:
        queue = self.queue
        prepared = self.prepare(message)
        if prepared is None:
            return None
        job, meta, event = prepared
        ttr = message.ttr
        if self.isolate:
            children = self._child_pool()
            child = children.take()
            run_control = control.begin(job, message.id, queue.driver)
            run_control.on_cancel = lambda: children.cancel(child, message.id)
            try:
                outcome = children.run(child, message.id, message.payload, ttr, message.began)
            finally:
                control.end(job, run_control)
            if run_control.cancelled:
                error = run_control.cancelled_error()
                error.__cause__ = outcome.error
                queue.handle_error(message, job, meta, error)
            elif outcome.ok:
                queue.handle_success(message, job, outcome.result, event)
            else:
                assert outcome.error is not None
                queue.handle_error(message, job, meta, outcome.error, info=outcome.info)
            return None
        if is_async(job):
            run = Run(message, job, meta, event, ttr)
            if beside:
                return run
            ended = self._job_runners().run_one(run, lambda: self.hurry)
            if ended is not None:
                self.conclude(ended)
            return None
        # A job in this thread is told of a cancel, never interrupted (see control.py).
        run_control = control.begin(job, message.id, queue.driver)
        try:
            try:
                result = self._execute(job, ttr)
            finally:
                control.end(job, run_control)
        except KeyboardInterrupt:
            # Ctrl-C outside a signal-handling worker: give the job back, then stop.
            if queue.capabilities.retry:
                queue.report(queue.settler(message).release, message, delay=0.0, error=None)
            raise
        except (Exception, SystemExit) as error:
            if run_control.cancelled:
                cancelled = run_control.cancelled_error()
                cancelled.__cause__ = error
                error = cancelled
            queue.handle_error(message, job, meta, error)
            return None
        if run_control.cancelled:
            queue.handle_error(message, job, meta, run_control.cancelled_error())
            return None
        queue.handle_success(message, job, result, event)
        return None

    def _execute(self, job: Job, ttr: float) -> Any:
        if self._ttr_guard is None:
            return job.execute(self.queue)
        self._timed_out = False
        self._current_ttr = ttr
        self._in_job = True
        self._arm(ttr)
        try:
            try:
                result = job.execute(self.queue)
            finally:
                self._in_job = False
                self._disarm()
        except TtrExpired:
            raise self._timeout_error() from None
        except JobTimeoutError:
            raise
        except (Exception, SystemExit) as error:
            if self._expired():
                raise self._timeout_error() from error
            raise
        if self._expired():
            # The job caught the interrupt and went on: it still ran past its ttr.
            raise self._timeout_error()
        return result

    def _arm(self, ttr: float) -> None:
        if self._watchdog is not None:
            self._watchdog.arm(ttr)
        else:
            signal.setitimer(signal.ITIMER_REAL, ttr, 1.0)

    def _disarm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.disarm()
        else:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _expired(self) -> bool:
        return self._timed_out or (self._watchdog is not None and self._watchdog.expired)
