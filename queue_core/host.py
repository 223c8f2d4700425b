"""What the platform offers a worker, asked only when a worker needs it.

Producers and admin calls need none of this. A worker may want a timer signal (ttr in
the main thread), ``os.fork`` (``isolate="fork"``) and a memory reading (``max_memory``);
Windows has none of the three. Each probe here answers without importing anything that
might be missing, and each refusal is one sentence naming what is missing and what to
use instead.
"""

from __future__ import annotations

import os
import signal
import sys

PROC_STATM = "/proc/self/statm"
"""Where Linux tells the resident size of this process (a setting only for tests)."""


def has_timer_signal() -> bool:
    """True where ``signal.setitimer`` and SIGALRM exist (POSIX, not Windows)."""
    return hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")


def has_fork() -> bool:
    return callable(getattr(os, "fork", None))


def has_fd_passing() -> bool:
    """True where a child process can inherit a pipe by number (``pass_fds``): POSIX."""
    return os.name == "posix"


def memory_mb() -> float | None:
    """Resident memory now (/proc), else the peak (``resource``), in MB; None if neither
    exists on this platform."""
    try:
        with open(PROC_STATM) as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in bytes on macOS, in kilobytes elsewhere.
    return peak / 1e6 if sys.platform == "darwin" else peak / 1e3


def no_fork_message(key: str = "isolate") -> str:
    instead = ("use isolate='exec' (--isolate exec), a fresh interpreter per job"
               if has_fd_passing() else "run jobs in-process (ttr is still enforced)")
    return f"{key}='fork' needs os.fork, which this platform does not have; {instead}"


def no_exec_message(key: str = "isolate") -> str:
    return (f"{key}='exec' needs a child process that inherits a pipe by number "
            "(pass_fds), which this platform does not offer; run jobs in-process "
            "(ttr is still enforced) or run the worker on Linux or macOS")


def no_memory_message() -> str:
    return (f"max_memory needs a memory reading ({PROC_STATM} or the resource module), "
            "and this platform has neither; use max_jobs or max_time to recycle workers")
