"""The tallies of supervised workers (``listen --workers N --metrics-port P``) as files.

Each worker writes its tallies (metrics.py) to ``<dir>/<pid>.json`` once a second when
they changed, and once more when it stops; the supervisor adds up every file of the
directory at scrape time, so one scrape counts every worker, including those that have
exited (a counter never goes back). A worker killed by SIGKILL loses at most its last
second of counts. The directory is the supervisor's own (made by it, private to the
user), yet a file is read as untrusted input: one that is not a well-formed tally is
skipped with a warning.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from typing import Any

from .metrics import COUNTERS, HISTOGRAMS, Snapshot, Tallies

logger = logging.getLogger(__name__)

DIR_ENV = "QUEUE_CORE_METRICS_DIR"
EVERY = 1.0
"""Seconds between two writes of a worker's file."""
MAX_FILE = 4 << 20
"""A file larger than this is not a worker's tally."""
_NAME = re.compile(r"^[0-9]{1,10}\.json$")
_LABEL = re.compile(r"^[^\x00-\x1f]{1,300}$")


class TallyWriter:
    """A worker's side: writes ``tallies`` to ``directory`` until closed."""

    def __init__(self, tallies: Tallies, directory: str) -> None:
        self._tallies = tallies
        self._path = os.path.join(directory, f"{os.getpid()}.json")
        self._stop = threading.Event()
        self._written = ""
        self._thread = threading.Thread(target=self._loop, name="queue-core metrics files",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(EVERY):
            self.write()

    def write(self) -> None:
        text = json.dumps([{"queue": queue, "job": job, **values}
                           for (queue, job), values in self._tallies.snapshot().items()])
        if text == self._written:
            return
        partial = f"{self._path}.{threading.get_ident()}.tmp"
        try:
            with open(partial, "w") as handle:
                handle.write(text)
            os.replace(partial, self._path)
        except OSError as exc:
            logger.warning("metrics: cannot write %s: %s", self._path, exc)
            return
        self._written = text

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.write()


def read_all(directory: str) -> list[Snapshot]:
    """Every worker's tallies found in ``directory``."""
    found = []
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        logger.warning("metrics: cannot list %s: %s", directory, exc)
        return []
    for name in names:
        if not _NAME.match(name):
            continue
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_FILE + 1)
            if len(data) > MAX_FILE:
                raise ValueError(f"larger than {MAX_FILE} bytes")
            found.append(parse(json.loads(data)))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            logger.warning("metrics: skipping %s: %s", path, exc)
    return found


def parse(data: Any) -> Snapshot:
    """One file's content as tallies; ValueError naming what is wrong."""
    if not isinstance(data, list):
        raise ValueError("not a list of tallies")
    snapshot: Snapshot = {}
    for entry in data:
        if not isinstance(entry, dict):
            raise ValueError("a tally is not an object")
        queue, job = entry.get("queue"), entry.get("job")
        if not (isinstance(queue, str) and _LABEL.match(queue)
                and isinstance(job, str) and _LABEL.match(job)):
            raise ValueError("a tally's queue or job label is not a short printable string")
        values: dict[str, Any] = {}
        for name in COUNTERS:
            values[name] = _count(entry.get(name), name)
        for name, (_, _, bounds) in HISTOGRAMS.items():
            histogram = entry.get(name)
            if not isinstance(histogram, dict):
                raise ValueError(f"{name} is not a histogram")
            counts = histogram.get("counts")
            if not isinstance(counts, list) or len(counts) != len(bounds) + 1:
                raise ValueError(f"{name} has not {len(bounds) + 1} buckets")
            total = histogram.get("sum")
            if isinstance(total, bool) or not isinstance(total, (int, float)) or not (
                    math.isfinite(total) and total >= 0):
                raise ValueError(f"{name}'s sum is not a finite number >= 0")
            values[name] = {"counts": [_count(count, name) for count in counts],
                            "sum": float(total)}
        if (queue, job) in snapshot:
            raise ValueError(f"({queue}, {job}) appears twice")
        snapshot[(queue, job)] = values
    return snapshot


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 63:
        raise ValueError(f"{name} is not a count")
    return value
