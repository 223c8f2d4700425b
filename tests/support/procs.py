"""Real worker processes for the reliability tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def worker_env(settings: dict[str, Any], ready: Path | None = None,
               exec_log: Path | None = None, done_log: Path | None = None,
               exiting: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["QUEUE_TEST_SETTINGS"] = json.dumps(settings)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if ready is not None:
        env["QUEUE_TEST_READY"] = str(ready)
    if exec_log is not None:
        env["QUEUE_TEST_EXEC_LOG"] = str(exec_log)
    if done_log is not None:
        env["QUEUE_TEST_DONE_LOG"] = str(done_log)
    if exiting is not None:
        env["QUEUE_TEST_EXITING"] = str(exiting)
    return env


def queue_core(settings: dict[str, Any], *args: str, ready: Path | None = None,
               exec_log: Path | None = None, done_log: Path | None = None,
               exiting: Path | None = None, **popen: Any) -> subprocess.Popen[str]:
    """Start ``queue-core --app tests.support.app:queue ARGS`` in its own process group."""
    command = [sys.executable, "-m", "queue_core", "--app", "tests.support.app:queue", *args]
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(command, env=worker_env(settings, ready, exec_log, done_log, exiting),
                            cwd=ROOT, text=True, start_new_session=True, **popen)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             every: float = 0.02) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def children(pid: int) -> list[int]:
    """The pids of a process's direct children (Linux /proc)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(child) for child in handle.read().split()]
    except FileNotFoundError:
        pass
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL the worker and anything it started, as an OOM killer or a crash would."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def dump_stacks(process: subprocess.Popen[str]) -> None:
    """Ask a stuck worker (and any process of its group) for its threads' stacks, which
    tests/support/app.py has them write to stderr on SIGUSR1."""
    try:
        os.killpg(process.pid, signal.SIGUSR1)
    except (ProcessLookupError, PermissionError):
        return
    time.sleep(0.5)


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM,
         timeout: float = 10) -> tuple[int, str, str]:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        dump_stacks(process)
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"worker did not stop within {timeout}s after {sig}:\n{err}")
    return process.returncode, out, err


@contextmanager
def workers(settings: dict[str, Any], count: int, *args: str, ready: Path | None = None,
            exec_log: Path | None = None) -> Iterator[list[subprocess.Popen[str]]]:
    procs = [queue_core(settings, *args, ready=ready, exec_log=exec_log,
                        stdout=subprocess.DEVNULL) for _ in range(count)]
    try:
        yield procs
    finally:
        for process in procs:
            if process.poll() is None:
                process.kill()
            process.communicate()
