"""The little of HTTP the dashboard needs, over a WSGI environ: a request and a response.

Kept to the standard library (no framework) so the app mounts under any WSGI host."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote

from .security import cookies

MAX_FORM = 64 * 1024
"""The largest form body read: the dashboard's forms hold a token and a flag."""

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


class Request:
    def __init__(self, environ: Environ) -> None:
        self.environ = environ
        self.method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        # PATH_INFO is what is left below the mount point (SCRIPT_NAME) in every host:
        # links are built from SCRIPT_NAME, so the app works under any prefix.
        self.path = str(environ.get("PATH_INFO", "")) or "/"
        self.root = str(environ.get("SCRIPT_NAME", "")).rstrip("/")
        self.query = {key: values[-1] for key, values in
                      parse_qs(str(environ.get("QUERY_STRING", ""))).items()}
        self.cookies = cookies(environ)
        self._form: dict[str, str] | None = None

    def url(self, *parts: str) -> str:
        """An absolute path under the mount point, each part percent-encoded."""
        return self.root + "/" + "/".join(quote(part, safe="") for part in parts)

    @property
    def form(self) -> dict[str, str]:
        if self._form is None:
            self._form = {}
            kind = str(self.environ.get("CONTENT_TYPE", ""))
            if self.method == "POST" and kind.startswith("application/x-www-form-urlencoded"):
                try:
                    length = min(int(self.environ.get("CONTENT_LENGTH") or 0), MAX_FORM)
                except ValueError:
                    length = 0
                body = self.environ["wsgi.input"].read(length) if length > 0 else b""
                parsed = parse_qs(body.decode("utf-8", "replace"))
                self._form = {key: values[-1] for key, values in parsed.items()}
        return self._form


@dataclass
class Response:
    body: bytes | str = b""
    status: str = "200 OK"
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, start_response: StartResponse) -> Iterable[bytes]:
        body = self.body.encode() if isinstance(self.body, str) else self.body
        headers = [("Content-Type", self.content_type), ("Content-Length", str(len(body))),
                   *self.headers]
        start_response(self.status, headers)
        return [body]

    def set_cookie(self, name: str, value: str, request: Request) -> None:
        """A session cookie for the mount point: HttpOnly, SameSite=Strict, and Secure
        when the request came over HTTPS (over plain HTTP the browser would drop it)."""
        cookie = f"{name}={value}; Path={request.root or '/'}; HttpOnly; SameSite=Strict"
        if request.environ.get("wsgi.url_scheme") == "https":
            cookie += "; Secure"
        self.headers.append(("Set-Cookie", cookie))


def redirect(location: str) -> Response:
    # 303: the browser follows a POST's answer with a GET, so reloading repeats nothing.
    return Response(b"", "303 See Other", "text/plain", [("Location", location)])


def error(status: str, message: str) -> Response:
    from .html import render
    page = render("<!doctype html><title>{status}</title><h1>{status}</h1><p>{message}</p>",
                  status=status, message=message)
    return Response(page, status)
