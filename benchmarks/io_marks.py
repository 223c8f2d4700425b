"""Timing of jobs that overlap, the same way for every library.

marks.py times a run by its first and its last job, which is right when one worker runs
the jobs in push order. With several jobs in flight the job pushed last need not end last,
so here every job appends one line, ``index start end`` (wall-clock seconds), to
``<dir>/times``. The run lasts from the earliest start to the latest end, and the lines
show that every job ran, once.

Each process keeps the file open in append mode: one ``write`` per job, which Linux keeps
whole when threads and processes append to the same local file at once.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

NAME = "times"

_lock = threading.Lock()
_open: dict[tuple[int, str], int] = {}


def _descriptor(directory: str) -> int:
    key = (os.getpid(), directory)  # a forked child opens its own
    descriptor = _open.get(key)
    if descriptor is None:
        with _lock:
            descriptor = _open.get(key)
            if descriptor is None:
                descriptor = os.open(os.path.join(directory, NAME),
                                     os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                _open[key] = descriptor
    return descriptor


def record(directory: str, index: int, start: float, end: float) -> None:
    """Append one job's start and end (``time.time()`` values)."""
    os.write(_descriptor(directory), f"{index} {start!r} {end!r}\n".encode())


def reset(directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    try:
        os.unlink(os.path.join(directory, NAME))
    except FileNotFoundError:
        pass


@dataclass
class Span:
    jobs: int  # distinct jobs recorded
    lines: int  # lines recorded (more than jobs: some job ran twice)
    first_start: float
    last_end: float
    mean_job: float  # mean seconds from a job's start to its end
    refill: float | None  # median seconds a slot stays empty (see span)

    @property
    def seconds(self) -> float:
        return self.last_end - self.first_start


class Tail:
    """Counts the lines of ``<dir>/times`` as they come, reading only what is new."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, NAME)
        self.offset = 0
        self.lines = 0

    def count(self) -> int:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return 0
        complete = data.rfind(b"\n") + 1  # a line being written is counted once it ends
        self.offset += complete
        self.lines += data.count(b"\n", 0, complete)
        return self.lines


def span(directory: str, slots: int = 1) -> Span:
    """The run recorded in ``directory``. With ``slots`` jobs in flight, the k-th job to
    start after the first ``slots`` takes the place of the k-th job to end: ``refill`` is
    the median time from that end to that start, the worker's own time between two jobs
    of a slot (fetching, handing over, settling) as the jobs see it."""
    indexes: set[int] = set()
    starts: list[float] = []
    ends: list[float] = []
    with open(os.path.join(directory, NAME)) as handle:
        for line in handle:
            index, start, end = line.split()
            indexes.add(int(index))
            starts.append(float(start))
            ends.append(float(end))
    if not starts:
        raise ValueError(f"no job recorded in {directory}")
    took = sum(e - s for s, e in zip(starts, ends, strict=True)) / len(starts)
    ordered_starts, ordered_ends = sorted(starts), sorted(ends)
    gaps = sorted(ordered_starts[k + slots] - ordered_ends[k]
                  for k in range(len(starts) - slots))
    refill = gaps[len(gaps) // 2] if gaps else None
    return Span(len(indexes), len(starts), min(starts), max(ends), took, refill)
