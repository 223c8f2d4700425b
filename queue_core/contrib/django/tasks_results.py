"""A queue-core job record read as a ``django.tasks`` ``TaskResult``: its status mapped,
its times as datetimes, its stored return value, its last error.

Everything here is read back from the store and so untrusted: times that are no times read
as None, and an error's exception class resolves only among classes already imported in
this process, never by importing the module a stored record names."""

from __future__ import annotations

import datetime as dt
import json
import sys
from inspect import isclass
from typing import Any

from ...bounds import MAX_ATTEMPTS
from ...model import JobInfo, JobStatus
from .tasks_compat import TaskError, TaskResult, TaskResultStatus

STATUSES = {
    JobStatus.WAITING: TaskResultStatus.READY,
    JobStatus.DELAYED: TaskResultStatus.READY,  # a delayed run, or one waiting for a retry
    JobStatus.RESERVED: TaskResultStatus.RUNNING,
    JobStatus.DONE: TaskResultStatus.SUCCESSFUL,
    JobStatus.FAILED: TaskResultStatus.FAILED,
}

WORKER_ID = "queue-core"
"""What ``worker_ids`` holds for each attempt: queue-core counts attempts but does not
record which worker made each one."""


class StoredTaskError(TaskError):  # type: ignore[misc]
    """A TaskError whose ``exception_class`` never imports: the class path comes from the
    store, so it resolves only to an exception class of a module already imported."""

    __slots__ = ()

    @property
    def exception_class(self) -> type[BaseException]:
        module, _, name = str(self.exception_class_path).rpartition(".")
        found: Any = sys.modules.get(module or "builtins")
        for part in name.split(".") if found is not None else ():
            found = getattr(found, part, None)
        if not isclass(found) or not issubclass(found, BaseException):
            raise ValueError(f"{self.exception_class_path!r} is not an exception class "
                             "of a module imported in this process")
        return found


def error_of(info: JobInfo) -> Any | None:
    if info.error is None:
        return None
    kind = info.error.type or "Exception"
    # queue-core names a built-in exception by its bare name; Django wants a dotted path.
    path = kind if "." in kind else f"builtins.{kind}"
    text = info.error.traceback or str(info.error)
    return StoredTaskError(exception_class_path=path, traceback=text)


def _when(value: Any) -> dt.datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        moment = dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    from django.conf import settings
    if settings.USE_TZ:
        return moment
    from django.utils import timezone
    naive: dt.datetime = timezone.make_naive(moment)
    return naive


def return_value_of(info: JobInfo) -> Any:
    """The task's return value: the job returned it as JSON text (see tasks_job)."""
    if not isinstance(info.result, str):
        return info.result
    try:
        return json.loads(info.result)
    except (ValueError, RecursionError):
        return info.result


def result_from_info(task: Any, result_id: str, info: JobInfo, args: list[Any],
                     kwargs: dict[str, Any], backend: str) -> Any:
    """The TaskResult of ``task`` that the job record ``info`` describes."""
    status = STATUSES.get(info.status, TaskResultStatus.READY)
    error = error_of(info)
    # The count comes from a stored record: Django counts attempts as the length of a
    # list, so an absurd count (a damaged row's 2**31) must not become a list that size.
    attempts = min(info.attempt, MAX_ATTEMPTS) if type(info.attempt) is int \
        and info.attempt > 0 else 0
    started = _when(info.started_at)
    finished = status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
    result = TaskResult(
        task=task, id=result_id, status=status, enqueued_at=_when(info.pushed_at),
        started_at=started, last_attempted_at=started,
        finished_at=_when(info.finished_at) if finished else None,
        args=args, kwargs=kwargs, backend=backend,
        errors=[error] if error is not None else [],
        worker_ids=[WORKER_ID] * attempts)
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", return_value_of(info))
    return result
