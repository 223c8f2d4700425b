"""A web dashboard for queue-core: a plain WSGI application on the standard library.

``Dashboard(queue)`` is a WSGI callable: ``queue-core dashboard`` serves it with wsgiref,
and Django, Flask or FastAPI mount it (docs/dashboard.md). It is not imported by
``queue_core`` itself, and this package imports its modules only when a name is used, so
the ``queue-core`` command (which only adds the dashboard's options) stays quick to start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Dashboard, make_app

__all__ = ["Dashboard", "make_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import app
        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
