"""``--app`` targets for the processes queue-core starts by itself (``listen --workers``,
``--isolate exec``): ``queue_core.contrib.django.targets:NAME`` is a factory that sets
Django up (from ``DJANGO_SETTINGS_MODULE``) and returns a new Queue for
``QUEUE_CORE[NAME]``, ready for a worker. ``manage.py queue`` passes it as ``--app``; it
works with the plain ``queue-core`` command too."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from ...errors import ConfigError
from ...events import AFTER_ERROR, AFTER_EXEC, BEFORE_EXEC
from ...queue import Queue
from .queues import DEFAULT, queues


def target(name: str = DEFAULT) -> str:
    """The ``--app`` value naming queue ``name``."""
    return f"{__name__}:{name}"


def setup_django() -> None:
    """``django.setup()`` unless the apps are loaded already (``manage.py`` did it)."""
    from django.apps import apps
    if apps.ready:
        return
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise ConfigError("DJANGO_SETTINGS_MODULE is not set: a queue of QUEUE_CORE needs "
                          "the Django project's settings", key="DJANGO_SETTINGS_MODULE")
    import django
    django.setup()


def worker_queue(name: str = DEFAULT) -> Queue:
    """A new Queue for ``QUEUE_CORE[name]`` that a worker owns (and closes): Django is set
    up, and around each job run in the worker's main thread Django's database connections
    that are broken or past ``CONN_MAX_AGE`` are closed, as Django does around each
    request."""
    setup_django()
    queue = queues.create(name)
    for event in (BEFORE_EXEC, AFTER_EXEC, AFTER_ERROR):
        queue.on(event, _close_old_connections)
    return queue


def _close_old_connections(event: Any) -> None:
    from django.db import close_old_connections
    close_old_connections()


def __getattr__(name: str) -> Callable[[], Queue]:
    if name.startswith("__"):
        raise AttributeError(name)
    return functools.partial(worker_queue, name)
