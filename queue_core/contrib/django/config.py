"""One entry of ``settings.QUEUE_CORE`` read: the Django-only keys (``database``,
``push_on_commit``, ``autodiscover``) taken out, the rest made into what
``queue_core.create_queue`` takes, with the ``jobs`` modules of the installed apps added
to its ``imports`` so that a worker started by ``manage.py`` knows the app's job types."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigError
from .databases import driver_settings

DJANGO_KEYS = ("database", "push_on_commit", "autodiscover")
DEFAULT_TABLE = "queue_core"
"""The db driver's table on a Django database (its side tables are named after it)."""
JOBS_MODULE = "jobs"
NAME = re.compile(r"[A-Za-z0-9_-]+\Z")


@dataclass(frozen=True)
class QueueConfig:
    """A named queue's settings as written, and its Django-only keys."""

    name: str
    settings: dict[str, Any] = field(repr=False)
    database: str | None = None
    push_on_commit: bool = False
    autodiscover: bool = True

    def queue_settings(self) -> dict[str, Any]:
        """What ``create_queue`` takes: the driver on the Django database, the job modules
        of the installed apps in ``imports``."""
        settings = dict(self.settings)
        if self.database is not None:
            settings["driver"] = self._database_driver(settings.get("driver"))
        if self.autodiscover:
            imports = settings.get("imports", [])
            listed = [imports] if isinstance(imports, str) else imports
            if isinstance(listed, (list, tuple)):
                settings["imports"] = list(dict.fromkeys([*listed, *discover_job_modules()]))
        return settings

    def _database_driver(self, driver: Any) -> dict[str, Any]:
        assert self.database is not None
        if driver is not None and (not isinstance(driver, Mapping) or "url" in driver
                                   or "class" in driver):
            raise ConfigError(f"QUEUE_CORE[{self.name!r}]: 'database' names the db driver's "
                              "database; 'driver' may then only be a dict of its options "
                              "(like {'table': 'jobs'}), without 'url' or 'class'",
                              key="database")
        return {"table": DEFAULT_TABLE, **driver_settings(self.database), **(driver or {})}


def read_config(name: Any, value: Any) -> QueueConfig:
    """``QUEUE_CORE[name]`` checked: a driver URL or a settings dict."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"QUEUE_CORE: queue name {name!r} must be letters, digits, '_' "
                          "or '-'", key="QUEUE_CORE")
    if isinstance(value, str):
        return QueueConfig(name, {"driver": value})
    if not isinstance(value, Mapping):
        raise ConfigError(f"QUEUE_CORE[{name!r}] must be a settings dict or a driver URL, "
                          f"got {type(value).__name__}", key=name)
    settings = dict(value)
    database = settings.pop("database", None)
    if database is not None and not isinstance(database, str):
        raise ConfigError(f"QUEUE_CORE[{name!r}]: database must be a DATABASES alias, got "
                          f"{database!r}", key="database")
    flags = {}
    for key in ("push_on_commit", "autodiscover"):
        if key in settings:
            flags[key] = settings.pop(key)
            if not isinstance(flags[key], bool):
                raise ConfigError(f"QUEUE_CORE[{name!r}]: {key} must be True or False, got "
                                  f"{flags[key]!r}", key=key)
    return QueueConfig(name, settings, database, **flags)


TASKS_WORKER = "queue_core.contrib.django.tasks_worker"
OUR_BACKENDS = ("queue_core.contrib.django.QueueCoreBackend",
                "queue_core.contrib.django.backend.QueueCoreBackend")


def discover_job_modules() -> list[str]:
    """``<app>.jobs`` of every installed app that has one (found, not imported: the
    worker imports them at start), and the django.tasks worker module when ``TASKS``
    uses queue-core's backend."""
    from django.apps import apps

    if not apps.apps_ready:
        raise ConfigError("QUEUE_CORE: a queue is built once Django's app registry is "
                          "ready (use it from views, jobs or AppConfig.ready(), not while "
                          "the apps' models are being imported)", key="QUEUE_CORE")
    found = []
    for app in apps.get_app_configs():
        module = f"{app.name}.{JOBS_MODULE}"
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            found.append(module)
    if _tasks_use_queue_core():
        # Registers the django.tasks job type and imports the apps' tasks modules, the
        # only tasks a payload may name.
        found.append(TASKS_WORKER)
    return found


def _tasks_use_queue_core() -> bool:
    from django.conf import settings

    backends = getattr(settings, "TASKS", None)
    if not isinstance(backends, Mapping):
        return False
    return any(isinstance(entry, Mapping) and entry.get("BACKEND") in OUR_BACKENDS
               for entry in backends.values())
