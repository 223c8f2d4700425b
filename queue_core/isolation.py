"""Running one job in a child process (isolated mode).

The parent keeps the reservation, the events and every decision; the child only runs
``job.execute`` and sends back what happened. A child that outlives the job's ttr is
killed (JobTimeoutError); a child that dies without answering (a segfault, ``os.abort``,
the OOM killer) is a lost attempt (WorkerLostError). Either way the parent lives on and
the attempt goes through the normal retry decision.

Two ways to make the child:

- ``fork`` (default where ``os.fork`` exists): a copy of the worker, ready at once (a few
  milliseconds per job). The driver's ``after_fork`` hook makes the child leave the
  parent's connections alone.
- ``exec`` (the default without ``os.fork``): a fresh interpreter running
  ``queue-core --app APP exec`` (hundreds of milliseconds per job): nothing is shared
  with the worker, at the price of start-up.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from .driver import ErrorInfo
from .errors import ConfigError, JobTimeoutError, WorkerLostError

if TYPE_CHECKING:
    from .consuming import Consumption
    from .job import Job
    from .queue import Queue

MODES = ("fork", "exec")
DEFAULT_MODE = "fork" if callable(getattr(os, "fork", None)) else "exec"
"""What ``isolate=True`` (or a bare ``--isolate``) means on this platform."""
_CHILD_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGQUIT",
                                                          "SIGHUP") if hasattr(signal, name))


def parse_mode(value: Any, key: str = "isolate") -> str | None:
    """``isolate`` setting: False/None (in-process), True (DEFAULT_MODE), "fork" or "exec".

    Whether the platform can do the mode is the worker's question, not the settings': a
    producer that shares the settings needs neither."""
    if value is None or value is False:
        return None
    if value is True:
        return DEFAULT_MODE
    if value in MODES:
        return str(value)
    raise ConfigError(f"{key} must be true, false, 'fork' or 'exec', got {value!r}", key=key)


@dataclass
class Outcome:
    """What the child reported: a result, or an error with the child's traceback."""

    ok: bool
    result: Any = None
    error: BaseException | None = None
    info: ErrorInfo | None = None


class RemoteJobError(Exception):
    """An error raised in the child that could not be sent back as itself."""


def encode_outcome(ok: bool, value: Any, error_text: str = "") -> bytes:
    if ok:
        try:
            return pickle.dumps((True, value, None), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            return pickle.dumps((True, repr(value), None))
    kind = type(value)
    name = kind.__qualname__ if kind.__module__ == "builtins" else (
        f"{kind.__module__}.{kind.__qualname__}")
    info = (name, str(value), error_text)
    try:
        return pickle.dumps((False, value, info), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return pickle.dumps((False, None, info))


def _decode_outcome(data: bytes) -> Outcome:
    ok, value, info = pickle.loads(data)
    if ok:
        return Outcome(True, result=value)
    error_info = ErrorInfo(*info)
    error = value if isinstance(value, BaseException) else RemoteJobError(
        f"{error_info.type}: {error_info.message}")
    return Outcome(False, error=error, info=error_info)


def execute_and_report(queue: Queue, job: Job, out: int | BinaryIO) -> None:
    """In the child: run the job and write the pickled outcome to ``out``."""
    try:
        data = encode_outcome(True, job.execute(queue))
    except BaseException as exc:  # noqa: BLE001 - the parent judges every error
        data = encode_outcome(False, exc, "".join(traceback.format_exception(exc)))
    if isinstance(out, int):
        view = memoryview(data)
        while view:
            view = view[os.write(out, view):]
    else:
        out.write(data)
        out.flush()


def _ignore_stop_signals() -> None:
    # The parent decides when to stop; a Ctrl-C that reaches the whole process group must
    # not kill the job halfway.
    for signum in _CHILD_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _collect(read_fd: int, deadline: float, alive: Any) -> tuple[bytes, bool]:
    """Read the child's report until EOF; (data, timed_out)."""
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), True
        ready, _, _ = select.select([read_fd], [], [], min(left, 1.0))
        if not ready:
            if not alive():
                # Exited without closing our end? Only possible if it handed the fd on.
                return b"".join(chunks), False
            continue
        chunk = os.read(read_fd, 1 << 16)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)


def _verdict(data: bytes, timed_out: bool, status: str, job_id: str, ttr: float) -> Outcome:
    if timed_out:
        error: BaseException = JobTimeoutError(
            f"job {job_id} exceeded its ttr of {ttr:g}s; its child process was killed")
        return Outcome(False, error=error)
    if data:
        try:
            return _decode_outcome(data)
        except Exception as exc:
            error = WorkerLostError(f"job {job_id}: its child process sent an unreadable "
                                    f"report ({exc}) and {status}")
            return Outcome(False, error=error)
    return Outcome(False, error=WorkerLostError(
        f"the child process running job {job_id} {status} before reporting a result"))


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = str(signum)
        return f"died with signal {signum} ({name})"
    return f"exited with code {os.WEXITSTATUS(status)}"


def run_forked(queue: Queue, job: Job, job_id: str, ttr: float,
               consumption: Consumption | None = None) -> Outcome:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            os.close(read_fd)
            _ignore_stop_signals()
            if hasattr(signal, "SIGALRM"):
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
            queue.driver.after_fork()
            if consumption is not None:
                consumption.after_fork()
            execute_and_report(queue, job, write_fd)
            try:
                queue.driver.close()
            except Exception:
                pass
        except BaseException:
            code = 70
        finally:
            os._exit(code)
    os.close(write_fd)
    reaped: list[int] = []

    def alive() -> bool:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            reaped.append(status)
        return not done

    try:
        data, timed_out = _collect(read_fd, time.monotonic() + ttr, alive)
    finally:
        os.close(read_fd)
    if timed_out and not reaped:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    status = reaped[0] if reaped else os.waitpid(pid, 0)[1]
    return _verdict(data, timed_out, _describe_exit(status), job_id, ttr)


def run_exec(app: str, payload: bytes, job_id: str, ttr: float) -> Outcome:
    read_fd, write_fd = os.pipe()
    command = [sys.executable, "-m", "queue_core", "--app", app, "exec", "--report-fd",
               str(write_fd)]
    try:
        child = subprocess.Popen(command, stdin=subprocess.PIPE, pass_fds=(write_fd,),
                                 preexec_fn=_ignore_stop_signals)
    finally:
        os.close(write_fd)
    try:
        assert child.stdin is not None
        try:
            child.stdin.write(payload)
            child.stdin.close()
        except BrokenPipeError:
            pass
        data, timed_out = _collect(read_fd, time.monotonic() + ttr,
                                   lambda: child.poll() is None)
    finally:
        os.close(read_fd)
    if timed_out:
        child.kill()
    code = child.wait()
    status = (f"died with signal {-code} ({signal.Signals(-code).name})" if code < 0
              else f"exited with code {code}")
    if not timed_out and not data and code == 2:
        status += " (the exec command could not load the app: see the worker's stderr)"
    return _verdict(data, timed_out, status, job_id, ttr)
