"""Serving the dashboard with the standard library's wsgiref (the CLI's server).

wsgiref is enough for a few operators looking at a queue; behind heavier traffic, mount
the same app in any production WSGI server instead."""

from __future__ import annotations

import logging
import socket
import socketserver
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .app import Dashboard
from .security import BASIC_AUTH_ENV, TOKEN_ENV, is_loopback

logger = logging.getLogger(__name__)


class InsecureBindError(Exception):
    """Binding to a non-loopback address without authentication."""


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    # A slow page (a back end taking its time) must not hold up every other request.
    daemon_threads = True


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - wsgiref's name
        # Access lines go to logging, not to stderr unconditionally.
        logger.info("%s %s", self.address_string(), format % args)


def check_bind(host: str, app: Dashboard) -> None:
    if not is_loopback(host) and not app.auth.required:
        raise InsecureBindError(
            f"refusing to serve the dashboard on {host!r} without authentication: anyone "
            f"who can reach it could read payloads and retry or delete jobs. Set "
            f"{TOKEN_ENV} (or --token), or {BASIC_AUTH_ENV}=user:password (or "
            "--basic-auth), or bind to 127.0.0.1")


def make(app: Dashboard, host: str = "127.0.0.1", port: int = 8080) -> WSGIServer:
    """A server bound to host:port, after the loopback-or-auth check."""
    check_bind(host, app)
    server_class = _ThreadingServer
    if ":" in host:  # an IPv6 address such as ::1: wsgiref's server is IPv4 unless told

        class _V6(_ThreadingServer):
            address_family = socket.AF_INET6
        server_class = _V6
    return make_server(host.strip("[]"), port, app, server_class=server_class,
                       handler_class=_Handler)
