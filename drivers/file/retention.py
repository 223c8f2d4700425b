"""Retention of the file driver: trims done/ and failed/ to the queue's limits.

A kept job's marker is written anew when the job finishes (its record changes), so the
marker's own mtime is the finish time. A trim lists the directory, drops the markers beyond
``max_count`` (the oldest by finish time, then by name) and those older than ``max_age``.
Listing costs a call per kept job, so a consumer trims only every so many kept jobs
(queue_core.retention.TrimPacer: about a tenth of what the last listing found) and when
it closes. A trim that fails is logged; the job it followed is settled all the same.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from queue_core.model import Retention
from queue_core.retention import TrimPacer

from .layout import ID_RE

logger = logging.getLogger(__name__)

Remove = Callable[[str, str], bool]
"""Deletes a job given its id and its marker's path (the store's ``_remove_marker``)."""


def trim(directory: str, retention: Retention, remove: Remove) -> tuple[int, int]:
    """Drop the markers of ``directory`` that ``retention`` does not keep; how many it
    listed and how many went."""
    entries: list[tuple[int, str, str]] = []
    with os.scandir(directory) as listing:
        for entry in listing:
            if not ID_RE.match(entry.name):
                continue
            try:
                entries.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name,
                                entry.path))
            except FileNotFoundError:
                continue  # removed or retried meanwhile
    entries.sort()
    drop = 0
    if retention.max_count is not None:
        drop = max(0, len(entries) - retention.max_count)
    if retention.max_age is not None:
        cut = time.time_ns() - int(retention.max_age * 1e9)
        while drop < len(entries) and entries[drop][0] < cut:
            drop += 1
    removed = 0
    for _, name, path in entries[:drop]:
        # A marker moved meanwhile (a manual retry, another worker's trim) stays as it is.
        if remove(name, path):
            removed += 1
    return len(entries), removed


class Trimmer:
    """One consumer's trims of done/ and failed/, paced."""

    def __init__(self, dirs: dict[str, str], limits: dict[str, Retention],
                 remove: Remove) -> None:
        self._dirs = dirs
        self._remove = remove
        self._pacers = {state: TrimPacer(retention) for state, retention in limits.items()
                        if retention.limited}

    def kept(self, state: str) -> None:
        """A job was kept in ``state`` ('done' or 'failed'): trim when its pace says so."""
        pacer = self._pacers.get(state)
        if pacer is not None and pacer.kept():
            self._trim(state, pacer)

    def flush(self) -> None:
        """Trim whatever was kept since the last trim (the consumer closes)."""
        for state, pacer in self._pacers.items():
            if pacer.pending:
                self._trim(state, pacer)

    def _trim(self, state: str, pacer: TrimPacer) -> None:
        try:
            listed, removed = trim(self._dirs[state], pacer.retention, self._remove)
        except OSError as exc:
            # The job itself is settled: a trim that fails (a full disk, permissions) only
            # leaves jobs for the next one.
            pacer.trimmed()
            logger.warning("retention of %s jobs in %s: the trim failed (%s); the next one "
                           "will catch up", state, self._dirs[state], exc)
            return
        pacer.trimmed(listed)
        if removed:
            logger.debug("retention: %d kept %s job(s) removed", removed, state)
