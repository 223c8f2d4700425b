"""Looking at what a queue holds, for tests: the jobs pushed, the failed ones and their
errors, and asserts on them whose failure messages list what the queue does hold.

Payloads are decoded by the queue's own serializer, through the job registry, as a worker
decodes them: nothing is imported or built that the application did not register.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from queue_core.errors import NotSupportedError, SerializationError
from queue_core.job import Job
from queue_core.model import ErrorInfo, JobInfo, JobStatus
from queue_core.queue import Queue

J = TypeVar("J", bound=Job)

LISTED = 10_000
"""Most jobs read per status (a test holds far fewer)."""
SHOWN = 20
"""Most jobs a failure message lists."""
_MISSING: Any = object()


@dataclass
class Entry:
    """A job the queue holds: what the store says, and the job decoded from it."""

    info: JobInfo
    job: Job | None
    problem: str = ""
    """Why the payload could not be decoded (then ``job`` is None)."""

    def __str__(self) -> str:
        what = describe(self.job) if self.job is not None else f"undecodable ({self.problem})"
        return f"job {self.info.id} [{self.info.status}] {what}"


@dataclass
class FailedJob:
    """A failed job: its id, the job (None when its payload could not be decoded), the
    attempt that failed last and the error stored with it."""

    id: str
    job: Job | None
    attempt: int
    error: ErrorInfo | None


def describe(job: object, width: int = 200) -> str:
    """``Name(field=value, ...)`` from the job's attributes, cut at ``width``."""
    try:
        fields = vars(job)
    except TypeError:
        text = repr(job)
    else:
        text = f"{type(job).__qualname__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"
    return text if len(text) <= width else text[:width - 3] + "..."


def entries(queue: Queue, statuses: Iterable[JobStatus | str] | None = None) -> list[Entry]:
    """Every job the queue holds in ``statuses`` (default: all it can list), oldest push
    first, decoded. A queue keeps finished jobs only as ``keep_completed`` and
    ``keep_failed`` say (test queues keep both)."""
    listing = queue.capabilities.listing
    wanted = list(JobStatus) if statuses is None else [JobStatus.parse(s) for s in statuses]
    if not listing:
        raise NotSupportedError(f"the {queue.driver.name} driver cannot list its jobs; test "
                                "with the memory driver (the queue_core_queue fixture)")
    found: list[Entry] = []
    for status in wanted:
        if status not in listing:
            if statuses is not None:
                raise NotSupportedError(f"the {queue.driver.name} driver cannot list "
                                        f"{status} jobs")
            continue
        for info in queue.driver.jobs(status, LISTED):
            try:
                job, _ = queue.decode(info.payload)
            except SerializationError as exc:
                found.append(Entry(info, None, str(exc)))
            else:
                found.append(Entry(info, job))
    found.sort(key=lambda e: (e.info.pushed_at or 0.0, _id_order(e.info.id)))
    return found


def _id_order(job_id: str) -> tuple[int, int | str]:
    return (0, int(job_id)) if job_id.isdigit() else (1, job_id)


def _of(found: list[Entry], job_type: type[Job] | None) -> list[Entry]:
    if job_type is None:
        return found
    return [e for e in found if isinstance(e.job, job_type)]


def pushed(queue: Queue, job_type: type[J] | None = None, *,
           status: JobStatus | str | Iterable[JobStatus | str] | None = None) -> list[J]:
    """The jobs pushed to ``queue`` that it still holds (of ``job_type``; in ``status``),
    oldest first."""
    statuses = [status] if isinstance(status, (str, JobStatus)) else status
    return [e.job for e in _of(entries(queue, statuses), job_type)]  # type: ignore[misc]


def _mismatch(job: Job | None, fields: dict[str, Any]) -> list[str]:
    wrong = []
    for name, expected in fields.items():
        value = getattr(job, name, _MISSING)
        if value is _MISSING:
            wrong.append(f"no field {name!r}")
        elif value != expected:
            wrong.append(f"{name}={value!r}, not {expected!r}")
    return wrong


def _listing(found: list[Entry], fields: dict[str, Any] | None = None,
             job_type: type[Job] = Job) -> str:
    if not found:
        return "  (none)"
    lines = []
    for entry in found[:SHOWN]:
        line = f"  {entry}"
        if fields and isinstance(entry.job, job_type):
            wrong = _mismatch(entry.job, fields)
            if wrong:
                line += f"\n      differs: {'; '.join(wrong)}"
        lines.append(line)
    if len(found) > SHOWN:
        lines.append(f"  ... and {len(found) - SHOWN} more")
    return "\n".join(lines)


def _wanted(job_type: type[Job] | None, fields: dict[str, Any]) -> str:
    name = "job" if job_type is None else job_type.__qualname__
    if not fields:
        return name
    return f"{name} with {', '.join(f'{k}={v!r}' for k, v in fields.items())}"


def assert_pushed(queue: Queue, job_type: type[J], *, count: int | None = None,
                  **fields: Any) -> J:
    """Assert that ``queue`` holds a pushed ``job_type`` whose attributes equal ``fields``
    (exactly ``count`` such jobs, if given); returns the first one."""
    __tracebackhide__ = True  # pytest shows the test's line, not this helper's
    found = entries(queue)
    matches = [e for e in _of(found, job_type) if not _mismatch(e.job, fields)]
    if matches and (count is None or len(matches) == count):
        return matches[0].job  # type: ignore[return-value]
    expected = _wanted(job_type, fields)
    if matches:
        raise AssertionError(f"expected {count} pushed {expected}, found {len(matches)} in "
                             f"{queue!r}:\n{_listing(matches)}")
    raise AssertionError(f"expected a pushed {expected}; none in {queue!r}, which holds "
                         f"{len(found)} jobs:\n{_listing(found, fields, job_type)}")


def assert_nothing_pushed(queue: Queue, job_type: type[Job] | None = None) -> None:
    """Assert that ``queue`` holds no job (of ``job_type``), in any status."""
    __tracebackhide__ = True  # pytest shows the test's line, not this helper's
    found = _of(entries(queue), job_type)
    if found:
        raise AssertionError(f"expected no pushed {_wanted(job_type, {})} in {queue!r}, "
                             f"found {len(found)}:\n{_listing(found)}")


def failed_jobs(queue: Queue, job_type: type[Job] | None = None) -> list[FailedJob]:
    """The FAILED jobs ``queue`` keeps (of ``job_type``), with their errors, oldest first."""
    return [FailedJob(e.info.id, e.job, e.info.attempt, e.info.error)
            for e in _of(entries(queue, [JobStatus.FAILED]), job_type)]


def _error_name(error: type[BaseException] | str) -> str:
    if isinstance(error, str):
        return error
    if error.__module__ == "builtins":
        return error.__qualname__
    return f"{error.__module__}.{error.__qualname__}"


def _error_matches(info: ErrorInfo | None, name: str | None, match: str | None) -> bool:
    if name is not None and (info is None or (
            info.type != name and info.type.rpartition(".")[2] != name)):
        return False
    return match is None or (info is not None and re.search(match, info.message) is not None)


def assert_failed(queue: Queue, job_type: type[Job] | None = None, *,
                  error: type[BaseException] | str | None = None, match: str | None = None,
                  **fields: Any) -> FailedJob:
    """Assert that ``queue`` keeps a FAILED ``job_type`` (with attributes equal to
    ``fields``) whose error is of type ``error`` (a class, or its name) and whose message
    matches the regular expression ``match``; returns the first such job."""
    __tracebackhide__ = True  # pytest shows the test's line, not this helper's
    failed = _of(entries(queue, [JobStatus.FAILED]), job_type)
    name = None if error is None else _error_name(error)
    for entry in failed:
        if not _mismatch(entry.job, fields) and _error_matches(entry.info.error, name, match):
            return FailedJob(entry.info.id, entry.job, entry.info.attempt, entry.info.error)
    expected = _wanted(job_type, fields)
    if name is not None:
        expected += f" with error {name}"
    if match is not None:
        expected += f" matching {match!r}"
    lines = []
    for entry in failed[:SHOWN]:
        err = entry.info.error
        lines.append(f"  {entry} after attempt {entry.info.attempt}: "
                     + (f"{err.type}: {err.message}" if err is not None else "no error kept"))
    listing = "\n".join(lines) or "  (none)"
    raise AssertionError(f"expected a failed {expected}; none in {queue!r}, whose failed "
                         f"jobs are:\n{listing}")
