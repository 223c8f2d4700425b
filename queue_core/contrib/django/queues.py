"""``queues``: the named queues of ``settings.QUEUE_CORE``, read once per process and each
built on first use (thread-safe), like Django's ``caches``.

    from queue_core.contrib.django import queues, get_queue
    queues["mail"].push(SendEmail("ann@example.com"))
    get_queue().push(...)                       # the "default" queue
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from ...errors import ConfigError
from ...queue import Queue
from ...settings import create_queue
from .config import QueueConfig, read_config

DEFAULT = "default"


class QueueRegistry(Mapping[str, Queue]):
    """A read-only mapping of queue name -> Queue. An unknown name raises ConfigError
    naming it and the known names."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._configs: dict[str, QueueConfig] | None = None
        self._queues: dict[str, Queue] = {}

    def configs(self) -> dict[str, QueueConfig]:
        """Every queue's settings, read from ``settings.QUEUE_CORE`` on the first call."""
        with self._lock:
            return self._read()

    def _read(self) -> dict[str, QueueConfig]:
        if self._configs is None:
            from django.conf import settings
            value = getattr(settings, "QUEUE_CORE", None)
            if value is None:
                raise ConfigError("settings.QUEUE_CORE is not set: give it a dict of named "
                                  "queues, like {'default': 'sqlite:///queue.db'}",
                                  key="QUEUE_CORE")
            if not isinstance(value, Mapping):
                raise ConfigError("settings.QUEUE_CORE must be a dict of queue name -> "
                                  f"settings, got {type(value).__name__}", key="QUEUE_CORE")
            self._configs = {name: read_config(name, entry) for name, entry in value.items()}
        return self._configs

    def config(self, name: str) -> QueueConfig:
        return _named(self.configs(), name)

    def create(self, name: str = DEFAULT) -> Queue:
        """A new Queue for ``name``, not the shared one: the caller closes it."""
        return _build(self.config(name))

    def __getitem__(self, name: str) -> Queue:
        queue = self._queues.get(name)
        if queue is not None:
            return queue
        with self._lock:
            queue = self._queues.get(name)
            if queue is None:
                queue = self._queues[name] = _build(_named(self._read(), name))
            return queue

    def __contains__(self, name: object) -> bool:
        return name in self.configs()

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.configs()))

    def __len__(self) -> int:
        return len(self.configs())

    def reset(self) -> None:
        """Close the queues built so far and read the settings again on next use (on
        ``setting_changed`` for QUEUE_CORE, as ``override_settings`` sends it)."""
        with self._lock:
            built, self._queues, self._configs = self._queues, {}, None
        for queue in built.values():
            queue.close()


def _named(configs: dict[str, QueueConfig], name: str) -> QueueConfig:
    if name not in configs:
        known = ", ".join(repr(n) for n in configs) or "none"
        raise ConfigError(f"no queue named {name!r} in settings.QUEUE_CORE (queues: "
                          f"{known})", key=str(name))
    return configs[name]


def _build(config: QueueConfig) -> Queue:
    try:
        return create_queue(config.queue_settings())
    except ConfigError as exc:
        raise ConfigError(f"QUEUE_CORE[{config.name!r}]: {exc}", key=exc.key) from exc


queues = QueueRegistry()


def get_queue(name: str = DEFAULT) -> Queue:
    """The shared queue named ``name`` in ``settings.QUEUE_CORE``."""
    return queues[name]
