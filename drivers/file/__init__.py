"""The file driver: a directory per channel; a job's state is the directory its marker
is in, and every state change is one atomic ``rename``.

::

    <path>/<channel>/
        new/        ready jobs nobody has looked at yet (pushes, retries, due delays)
        waiting/    ready jobs a worker moved out of new/ in bulk
        delayed/    not ready yet
        reserved/   claimed; named <id>~<claim time in ns>
        done/       kept completed jobs (keep_completed)
        failed/     failed jobs with their error (keep_failed)
        segments/   append-only files of job records, one writer process each
        records/    single-record files for jobs whose record was rewritten (an error,
                    a result, a manual retry)
        tmp/        markers being prepared; renamed into place when complete
        wake/       a socket per idle worker, which every push rings (local_wakeup)

A marker is a symbolic link whose target says where the job's record is
(``<segment>:<offset>:<length>``, or ``@`` for ``records/<id>``) and, for a delayed job,
when it becomes ready (``|<ns>``). A target that short lives inside the inode, so making,
moving and deleting markers never allocates or frees a data block: the per-job cost does
not grow when a large backlog has been written back to disk. A job id is its sort key
(priority, push sequence, random) in fixed-width hex, so lower priority, then older, sorts
first by name alone, and a job is found by id without an index. Safe for several worker
processes on one host; not for network file systems whose rename is not atomic.

One concern per module: ``layout`` (the directories, their permissions, the file-system
moves), ``records`` (the stored record and marker formats), ``segments`` (the append log,
record files and their collection), ``store`` (``FileDriver``: pushes, lookups, admin)
and ``consumer`` (one worker's claims, chores and outcomes).
"""

from __future__ import annotations

# The names the single-module driver gave its record format: tools and tests that damage
# records on purpose still use them.
from .records import Target as _Target  # noqa: F401
from .records import encode as _record  # noqa: F401
from .records import parse as _parse  # noqa: F401
from .store import FileDriver

__all__ = ["FileDriver"]
