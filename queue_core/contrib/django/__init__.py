"""Django integration (extra ``django``): queues from ``settings.QUEUE_CORE``, ``manage.py
queue ...``, pushes on commit and in the caller's transaction, and a ``django.tasks``
backend. Names load on first use, so that importing this package needs no configured
Django project."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "queues": ".queues",
    "get_queue": ".queues",
    "push": ".transactions",
    "push_on_commit": ".transactions",
    "push_in_transaction": ".transactions",
    "worker_queue": ".targets",
    "QueueCoreBackend": ".backend",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)
