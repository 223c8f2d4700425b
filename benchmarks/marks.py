"""Timing by the jobs themselves, the same way for every library.

The first job of a run writes the wall-clock time it started to ``<dir>/start``; the job
numbered ``last`` writes when it ended to ``<dir>/end``. One worker process running jobs
in push order makes (end - start) the processing time of the jobs in between, free of
interpreter start-up and of any polling before the first job.
"""

from __future__ import annotations

import os
import time


def mark(directory: str, index: int, last: int) -> None:
    if index == 0:
        write(os.path.join(directory, "start"))
    if index == last:
        write(os.path.join(directory, "end"))


def write(path: str) -> None:
    """Record the current wall-clock time in ``path``."""
    now = time.time()
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w") as handle:
        handle.write(repr(now))
    os.replace(tmp, path)


def read(directory: str, name: str) -> float | None:
    try:
        with open(os.path.join(directory, name)) as handle:
            return float(handle.read())
    except (FileNotFoundError, ValueError):
        return None


def reset(directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    for name in ("start", "end", "worker"):
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
