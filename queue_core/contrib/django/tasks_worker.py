"""Starting a worker for ``django.tasks`` tasks.

``queue`` is a factory for the ``queue-core`` command::

    DJANGO_SETTINGS_MODULE=mysite.settings \\
        python -m queue_core --app queue_core.contrib.django.tasks_worker:queue listen

It sets Django up, imports the ``tasks`` module of every installed app (so that their
tasks are registered, the only ones a payload may name) and returns the queue of the
``default`` task backend's ``default`` queue. For another backend or queue name, write a
two-line factory that calls ``queue(alias, queue_name)``.

Listed in a queue's ``imports`` (for ``manage.py queue listen``), importing this module
registers the job type and imports the apps' ``tasks`` modules the same way.
"""

from __future__ import annotations

from ...errors import ConfigError
from ...queue import Queue
from .tasks_compat import DEFAULT_TASK_QUEUE_NAME, task_backends
from .tasks_job import DjangoTask, autodiscover

__all__ = ["DjangoTask", "queue"]


def queue(alias: str = "default", queue_name: str = DEFAULT_TASK_QUEUE_NAME) -> Queue:
    """The queue-core queue that runs the tasks of ``TASKS[alias]``'s ``queue_name``."""
    _setup()
    autodiscover()
    from .backend import QueueCoreBackend
    backend = task_backends()[alias]
    if not isinstance(backend, QueueCoreBackend):
        raise ConfigError(f"TASKS[{alias!r}] is a {type(backend).__name__}, not a "
                          "queue_core.contrib.django.QueueCoreBackend", key="TASKS")
    return backend.queue_for(queue_name)


def _setup() -> None:
    from django.apps import apps
    if not apps.ready:
        import django
        django.setup()


def _discover_if_ready() -> None:
    from django.apps import apps
    if apps.ready:
        autodiscover()


_discover_if_ready()
