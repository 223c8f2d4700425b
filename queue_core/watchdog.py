"""ttr where there is no timer signal (Windows): a thread that interrupts the job.

The worker arms the watchdog around each job. When the job's ttr is up, the watchdog
makes the interpreter raise ``TtrExpired`` in the job's thread
(``PyThreadState_SetAsyncExc``, the way Dramatiq's time limit and RQ's Windows death
penalty work), and again every second while the job keeps running. Like the timer signal
it cannot interrupt a call blocked inside C: the exception arrives when the call returns
to Python. Isolated mode is the hard limit.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .errors import JobTimeoutError

REPEAT = 1.0
"""Seconds between two interrupts of a job that swallowed the first."""


class TtrExpired(JobTimeoutError):
    """Raised inside a job by the watchdog; the worker replaces it with a JobTimeoutError
    that names the job and its ttr."""


def _set_async_exc() -> Any:
    try:
        import ctypes
    except ImportError:
        return None
    api = getattr(ctypes, "pythonapi", None)
    return getattr(api, "PyThreadState_SetAsyncExc", None)


def available() -> bool:
    """True where this interpreter lets one thread raise an exception in another."""
    return _set_async_exc() is not None


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> None:
    """Make ``thread_id`` raise ``exc`` at its next bytecode; None cancels a pending one."""
    import ctypes
    set_exc = _set_async_exc()
    target = ctypes.c_ulong(thread_id)
    if set_exc(target, None if exc is None else ctypes.py_object(exc)) > 1:
        # The C API's own advice: more than one thread hit means undo at once.
        set_exc(target, None)


class Watchdog:
    """One per worker; its thread sleeps until armed and exits when closed."""

    def __init__(self) -> None:
        # A C lock: no Python frame of its own, so the job's thread can hold it without an
        # interrupt landing between acquire and release.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._target: int | None = None
        self._deadline = 0.0
        self._pending = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.expired = False

    def arm(self, seconds: float) -> None:
        """Interrupt the calling thread after ``seconds`` unless disarmed before."""
        if self._thread is None:
            # Started before the target is set: an interrupt must not land in arm() itself
            # while it waits for the new thread to start.
            self._thread = threading.Thread(target=self._watch, name="queue-core ttr watchdog",
                                            daemon=True)
            self._thread.start()
        with self._lock:
            self._target = threading.get_ident()
            self._deadline = time.monotonic() + seconds
            self._pending = False
            self.expired = False
        self._wake.set()

    def disarm(self) -> None:
        """Stop watching; an interrupt sent but not yet raised is withdrawn."""
        with self._lock:
            target, self._target = self._target, None
            if self._pending and target is not None:
                _raise_in(target, None)
            self._pending = False

    def close(self) -> None:
        self.disarm()
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        self._thread = None

    def _watch(self) -> None:
        while not self._closed:
            self._wake.clear()
            with self._lock:
                target, deadline = self._target, self._deadline
            if target is None:
                self._wake.wait()
                continue
            left = deadline - time.monotonic()
            if left > 0:
                self._wake.wait(left)
                continue
            with self._lock:
                # Re-checked under the lock: the job may have ended, or a new one started.
                if self._target == target and self._deadline == deadline:
                    self.expired = True
                    self._pending = True
                    _raise_in(target, TtrExpired)
                    self._deadline = time.monotonic() + REPEAT
