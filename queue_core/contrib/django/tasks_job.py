"""How a ``django.tasks`` task runs on a queue-core worker: the ``DjangoTask`` job type,
and the allowlist of the tasks this process knows.

The payload names its task by module path, but a worker never imports anything because a
payload names it: the path is looked up among the tasks registered in this process (each
``@task`` of a ``QueueCoreBackend`` registers itself when Django validates it, that is when
its module is imported). The modules imported are those the settings name: the ``tasks``
module of each installed app (``autodiscover``, once, at worker start or at the first
unknown path) and the queue settings' ``imports``. A path still unknown fails the job at
once, never retried."""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from ... import control
from ...errors import QueueError
from ...job import RetryableJob

if TYPE_CHECKING:
    from ...queue import Queue

logger = logging.getLogger(__name__)

TASKS_MODULE = "tasks"
"""The module of each installed app that ``autodiscover`` imports."""

_tasks: dict[str, Any] = {}
_lock = threading.Lock()
_discovered = False


class UnknownTaskError(QueueError):
    """A payload names a task this process has not registered: failed, never retried."""


class TaskPayloadError(QueueError):
    """A payload's arguments are not what the backend writes: failed, never retried."""


def register_task(task: Any) -> None:
    """Allow ``task`` to run here (called by the backend's ``validate_task``)."""
    path = task.module_path
    with _lock:
        # The first Task of a function stays: ``using()`` copies share its function.
        _tasks.setdefault(path, task)


def registered_task(path: str) -> Any | None:
    return _tasks.get(path)


def find_task(path: str) -> Any | None:
    """The registered task ``path`` names, after one autodiscovery if it is not known yet;
    None when it is not registered."""
    found = _tasks.get(path)
    if found is None:
        autodiscover()
        found = _tasks.get(path)
    return found


def registered_paths() -> list[str]:
    return sorted(_tasks)


def autodiscover(force: bool = False) -> list[str]:
    """Import the ``tasks`` module of every installed app that has one (once per process
    unless ``force``); returns the modules imported. The names come from INSTALLED_APPS
    only, never from a payload."""
    global _discovered
    from django.apps import apps
    from django.utils.module_loading import module_has_submodule
    with _lock:
        if _discovered and not force:
            return []
        _discovered = True
    imported = []
    from importlib import import_module
    for config in apps.get_app_configs():
        if module_has_submodule(config.module, TASKS_MODULE):
            name = f"{config.name}.{TASKS_MODULE}"
            import_module(name)
            imported.append(name)
    if imported:
        logger.debug("imported the task modules %s", ", ".join(imported))
    return imported


def encode_arguments(args: Any, kwargs: Any) -> str:
    """The arguments as the JSON text the payload carries; ValueError naming the problem
    when they are not JSON (Django requires JSON arguments)."""
    try:
        return json.dumps({"args": list(args), "kwargs": dict(kwargs)}, allow_nan=False,
                          separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"arguments must be JSON-serializable ({exc})") from None


def decode_arguments(data: Any) -> tuple[list[Any], dict[str, Any]]:
    """What ``encode_arguments`` wrote, checked: TaskPayloadError otherwise."""
    try:
        value = json.loads(data) if isinstance(data, str) else None
    except (ValueError, RecursionError):
        value = None
    if (not isinstance(value, dict) or not isinstance(value.get("args"), list)
            or not isinstance(value.get("kwargs"), dict)):
        raise TaskPayloadError("the payload's arguments are not the JSON object "
                               "{'args': [...], 'kwargs': {...}} the backend writes")
    return value["args"], value["kwargs"]


class DjangoTask(RetryableJob):
    """One enqueued run of a ``django.tasks`` task. ``task`` is the task's module path,
    ``arguments`` its args and kwargs as JSON text (kept as text so that no JSON object a
    task is given is read as one of queue-core's tagged values), ``backend`` and
    ``queue_name`` as Django's Task had them. ``execute`` returns the task's return value
    as JSON text, which a queue with ``keep_completed`` stores for ``get_result``."""

    job_name = "django.tasks"

    def __init__(self, task: str, arguments: str, backend: str, queue_name: str) -> None:
        self.task = task
        self.arguments = arguments
        self.backend = backend
        self.queue_name = queue_name

    def can_retry(self, attempt: int, error: BaseException) -> bool | None:
        if isinstance(error, (UnknownTaskError, TaskPayloadError)):
            return False  # the same payload will meet the same answer: no retry helps
        return None

    def execute(self, queue: Queue) -> str:
        if not isinstance(self.task, str):
            raise TaskPayloadError(f"the payload's task is not a string: {self.task!r}")
        task = find_task(self.task)
        if task is None:
            raise UnknownTaskError(
                f"task {self.task[:200]!r} is not registered in this worker: only tasks "
                "defined with @task for a QueueCoreBackend in an installed app's tasks "
                "module (or a module in the queue's imports) can run; the payload cannot "
                "make the worker import anything")
        args, kwargs = decode_arguments(self.arguments)
        from django.db import close_old_connections
        # As Django does around a request: a long-lived worker must not keep a connection
        # the database closed, nor one past CONN_MAX_AGE.
        close_old_connections()
        try:
            if task.takes_context:
                from .tasks_compat import TaskContext
                value = task.call(TaskContext(task_result=self._running_result(task, queue,
                                                                               args, kwargs)),
                                  *args, **kwargs)
            else:
                value = task.call(*args, **kwargs)
        finally:
            close_old_connections()
        try:
            return json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(f"task {self.task} returned a value that is not JSON ({exc}); "
                            "Django requires a JSON return value") from None

    def _running_result(self, task: Any, queue: Queue, args: list[Any],
                        kwargs: dict[str, Any]) -> Any:
        """The TaskResult of the run going on, for a task that takes a context."""
        from .tasks_results import result_from_info
        found = control.of(self)
        if found is None:  # not run by a worker: there is no stored record to read
            from .tasks_compat import TaskResult, TaskResultStatus
            return TaskResult(task=task, id="", status=TaskResultStatus.RUNNING,
                              enqueued_at=None, started_at=None, finished_at=None,
                              last_attempted_at=None, args=args, kwargs=kwargs,
                              backend=self.backend, errors=[], worker_ids=[])
        backend = task.get_backend()
        result_id = getattr(backend, "result_id", lambda _name, job_id: job_id)(
            self.queue_name, found.job_id)
        return result_from_info(task, result_id, queue.get(found.job_id), args, kwargs,
                                backend.alias)
