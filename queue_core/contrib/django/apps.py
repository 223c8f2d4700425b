"""The Django app (``"queue_core.contrib.django"`` in ``INSTALLED_APPS``): the ``queue``
management command, the db driver's tables created by ``manage.py migrate`` for the queues
on a Django database, and ``queues`` read again when a test overrides ``QUEUE_CORE``."""

from __future__ import annotations

import logging
from typing import Any

from django.apps import AppConfig

logger = logging.getLogger(__name__)


class QueueCoreConfig(AppConfig):  # type: ignore[misc]
    name = "queue_core.contrib.django"
    label = "queue_core"
    verbose_name = "queue-core"

    def ready(self) -> None:
        from django.core.signals import setting_changed
        from django.db.models.signals import post_migrate
        post_migrate.connect(create_tables, sender=self,
                             dispatch_uid="queue_core.contrib.django.create_tables")
        setting_changed.connect(_settings_changed,
                                dispatch_uid="queue_core.contrib.django.settings_changed")


def create_tables(sender: Any = None, using: str = "default", **kwargs: Any) -> None:
    """Create the tables of every queue whose ``database`` is ``using`` (nothing happens
    to tables that exist)."""
    from .queues import queues
    for name, config in queues.configs().items():
        if config.database != using:
            continue
        queue = queues.create(name)
        try:
            create = getattr(queue.driver, "create_table", None)
            if create is not None:
                create()
                logger.info("queue %r: tables ready on %s", name, queue.driver.describe())
        finally:
            queue.close()


def _settings_changed(setting: str = "", **kwargs: Any) -> None:
    if setting == "QUEUE_CORE":
        from .queues import queues
        queues.reset()
