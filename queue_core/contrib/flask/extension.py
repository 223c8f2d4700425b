"""``QueueCore``: the Flask extension holding an app's named queues.

A queue is a long-lived connection pool, so each is built once per app and process, on
first use (not at ``init_app``: a server that forks its workers after loading the app,
like gunicorn with ``--preload``, must not share one connection between processes), and
kept for the life of the app, not closed per request. A process that finds queues built
by its parent before a fork builds its own. ``QueueCore.close()`` closes them (tests, or
a server's shutdown hook).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Flask, current_app, has_app_context

from queue_core.errors import ConfigError
from queue_core.queue import Queue
from queue_core.settings import create_queue

from .config import CONFIG_KEY, DEFAULT, prefixed, read_config

EXTENSION_KEY = "queue_core"
"""Where an app keeps its AppQueues: ``app.extensions["queue_core"]``."""


class AppQueues(Mapping[str, Queue]):
    """One app's named queues, built on first use: ``queues["mail"]``."""

    def __init__(self, settings: dict[str, Mapping[str, Any] | str]) -> None:
        self.settings = settings
        self._built: dict[str, Queue] = {}
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Queue:
        if name not in self.settings:
            raise KeyError(f"no queue named {name!r} in {CONFIG_KEY} (queues: "
                           f"{', '.join(self.settings)})")
        with self._lock:
            if self._pid != os.getpid():
                # Built by the parent before a fork: their connections belong to it.
                self._built = {}
                self._pid = os.getpid()
            queue = self._built.get(name)
            if queue is None:
                queue = self._built[name] = self.create(name)
            return queue

    def __contains__(self, name: object) -> bool:
        return name in self.settings  # without building the queue, as Mapping's would

    def __iter__(self) -> Iterator[str]:
        return iter(self.settings)

    def __len__(self) -> int:
        return len(self.settings)

    def create(self, name: str) -> Queue:
        """A new queue from the settings of ``name``, owned by the caller (the CLI builds
        its own, so that closing it leaves the app's queues open)."""
        if name not in self.settings:
            raise ConfigError(f"no queue named {name!r} in {CONFIG_KEY} (queues: "
                              f"{', '.join(self.settings)})", key=f"{CONFIG_KEY}.{name}")
        try:
            return create_queue(self.settings[name])
        except ConfigError as exc:
            raise prefixed(name, exc) from exc

    def close(self) -> None:
        """Close the queues built so far; the next use builds them again."""
        with self._lock:
            built, self._built = self._built, {}
        errors = []
        for queue in built.values():
            try:
                queue.close()
            except Exception as exc:  # close the others all the same
                errors.append(exc)
        if errors:
            raise errors[0]


class QueueCore:
    """``QueueCore(app)``, or ``ext = QueueCore()`` then ``ext.init_app(app)`` in an app
    factory (one extension may serve several apps, each with its own queues).

    ``ext.queue`` is the ``"default"`` queue, ``ext.queues["mail"]`` (or
    ``ext.get_queue("mail")``) another, of the current app; outside an app context, of
    the app given to the constructor. ``init_app`` also adds the ``flask queue`` commands.
    """

    def __init__(self, app: Flask | None = None) -> None:
        self.app = app
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read ``app.config["QUEUE_CORE"]`` (ConfigError naming the key when it is
        missing or malformed) and register the queues and the ``queue`` command group."""
        from .cli import queue_group
        app.extensions[EXTENSION_KEY] = AppQueues(read_config(app.config))
        app.cli.add_command(queue_group)

    @property
    def queues(self) -> AppQueues:
        """The named queues of the current app (or of the app given to the constructor)."""
        if has_app_context():
            found = current_app.extensions.get(EXTENSION_KEY)
            if isinstance(found, AppQueues):
                return found
            if self.app is None:
                raise RuntimeError(f"QueueCore.init_app was not called for the app "
                                   f"{current_app.name!r}")
        if self.app is None:
            raise RuntimeError("no Flask app: use the queues inside an app context (a "
                               "request, a CLI command, 'with app.app_context()') or pass "
                               "the app to QueueCore(app)")
        return app_queues(self.app)

    @property
    def queue(self) -> Queue:
        """The ``"default"`` queue."""
        return self.get_queue(DEFAULT)

    def get_queue(self, name: str = DEFAULT) -> Queue:
        queues = self.queues
        if name not in queues:
            raise ConfigError(f"no queue named {name!r} in {CONFIG_KEY} (queues: "
                              f"{', '.join(queues)})", key=f"{CONFIG_KEY}.{name}")
        return queues[name]

    def close(self, app: Flask | None = None) -> None:
        """Close the queues an app has built (by default the current one)."""
        (self.queues if app is None else app_queues(app)).close()


def app_queues(app: Flask) -> AppQueues:
    """The AppQueues ``init_app`` stored on ``app``."""
    found = app.extensions.get(EXTENSION_KEY)
    if not isinstance(found, AppQueues):
        raise RuntimeError(f"QueueCore.init_app was not called for the app {app.name!r}")
    return found
