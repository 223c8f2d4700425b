"""The one place that finds Django's Tasks framework: ``django.tasks`` (Django 6 and
later) when it exists, else the ``django_tasks`` backport (the ``django`` extra installs
it), which is the same framework under another package name. The rest of the backend
imports these names from here and never from either package."""

from __future__ import annotations

import importlib.util
from importlib import import_module
from typing import Any


def _root() -> str:
    try:
        if importlib.util.find_spec("django.tasks") is not None:
            return "django.tasks"
    except ImportError:
        pass
    return "django_tasks"


ROOT = _root()
"""The framework's package: ``django.tasks`` or ``django_tasks``."""

_base = import_module(f"{ROOT}.base")
_backends = import_module(f"{ROOT}.backends.base")
_exceptions = import_module(f"{ROOT}.exceptions")
_signals = import_module(f"{ROOT}.signals")

# Typed as Any: Django ships no type hints of its own, and which package answers is
# decided at run time.
BaseTaskBackend: Any = _backends.BaseTaskBackend
Task: Any = _base.Task
TaskContext: Any = _base.TaskContext
TaskError: Any = _base.TaskError
TaskResult: Any = _base.TaskResult
TaskResultStatus: Any = _base.TaskResultStatus
DEFAULT_TASK_PRIORITY: int = _base.DEFAULT_TASK_PRIORITY
TASK_MIN_PRIORITY: int = _base.TASK_MIN_PRIORITY
TASK_MAX_PRIORITY: int = _base.TASK_MAX_PRIORITY
DEFAULT_TASK_QUEUE_NAME: str = _base.DEFAULT_TASK_QUEUE_NAME

# Django 6 renamed the backport's InvalidTaskError and InvalidTaskBackendError.
InvalidTask: type[Exception] = (getattr(_exceptions, "InvalidTask", None)
                                or _exceptions.InvalidTaskError)
InvalidTaskBackend: type[Exception] = (getattr(_exceptions, "InvalidTaskBackend", None)
                                       or _exceptions.InvalidTaskBackendError)
TaskResultDoesNotExist: type[Exception] = _exceptions.TaskResultDoesNotExist

task_enqueued: Any = _signals.task_enqueued


def task_backends() -> Any:
    """The framework's backend handler (``TASKS`` aliases -> backends)."""
    return import_module(ROOT).task_backends
