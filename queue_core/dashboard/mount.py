"""Calling the dashboard from a host that does not mount WSGI apps itself (Django).

Flask (werkzeug's DispatcherMiddleware) and FastAPI/Starlette (a2wsgi's WSGIMiddleware)
mount a WSGI app as it is; Django routes to views, so ``django_view`` wraps the app in
one. Django is imported only when that view is called.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def call_wsgi(app: WsgiApp, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run one request through a WSGI app: its status line, headers and whole body."""
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        seen["status"], seen["headers"] = status, headers
        return lambda data: None  # the dashboard never uses write()

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if callable(close):
            close()
    return seen["status"], seen["headers"], body


def django_view(app: WsgiApp) -> Callable[..., Any]:
    """A Django view serving ``app`` below the URL it is routed at, e.g.
    ``re_path(r"^queues(?P<path>/.*)?$", django_view(Dashboard(queue)))``.

    The view is exempt from Django's CSRF check: the dashboard checks its own token on
    every action. Put Django's authentication in front of it (``staff_member_required``)."""

    def view(request: Any, path: str | None = None) -> Any:
        from django.http import HttpResponse

        environ = dict(request.META)
        rest = path or "/"
        full = request.path_info
        # The mount point is whatever the URL pattern matched before ``path``.
        environ["SCRIPT_NAME"] = request.META.get("SCRIPT_NAME", "").rstrip("/") + (
            full[:len(full) - len(rest)] if full.endswith(rest) else full.rstrip("/"))
        environ["PATH_INFO"] = rest
        environ["wsgi.input"] = io.BytesIO(request.body)
        environ["CONTENT_LENGTH"] = str(len(request.body))
        environ.setdefault("wsgi.url_scheme", request.scheme)
        status, headers, body = call_wsgi(app, environ)
        response = HttpResponse(body, status=int(status.split(" ", 1)[0]))
        for name, value in headers:
            if name.lower() == "set-cookie":
                # Django keeps cookies apart from headers; pass the line through as set.
                response.cookies.load(value)
            else:
                response[name] = value
        return response

    view.csrf_exempt = True  # type: ignore[attr-defined]
    return view
