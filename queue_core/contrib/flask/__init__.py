"""Flask integration (extra ``flask``): ``QueueCore(app)`` reads ``app.config["QUEUE_CORE"]``
and adds ``flask queue ...``; see docs/flask.md. Imported only by apps that use it."""

from __future__ import annotations

from .extension import AppQueues, QueueCore

__all__ = ["AppQueues", "QueueCore"]
