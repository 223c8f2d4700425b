"""The dashboard as a WSGI application: routing, authentication, CSRF, actions.

``Dashboard(queue)`` (or ``Dashboard({"emails": q1, "reports": q2})``) is a plain WSGI
callable, so any WSGI server serves it and Django, Flask or FastAPI mount it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import JobNotFoundError, JobNotInStateError, NotSupportedError, QueueError
from ..model import JobStatus
from ..queue import Queue
from . import static, views
from .html import Safe
from .http import Environ, Request, Response, StartResponse, error, redirect
from .security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Auth,
    Csrf,
    parse_basic,
    security_headers,
)

logger = logging.getLogger(__name__)

FLASHES = {
    "retried": "Job sent back to waiting.",
    "removed": "Job removed.",
    "cancelled": "Job cancelled.",
    "cleared": "Queue cleared.",
    "retried-all": "Every failed job was sent back to waiting.",
}
"""Messages shown after an action, named by code in the redirect: a page never shows
text taken from its URL."""

_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/$"), "overview"),
    ("GET", re.compile(r"^/static/(?P<file>[A-Za-z0-9_.-]+)$"), "static"),
    ("GET", re.compile(r"^/login$"), "login"),
    ("GET", re.compile(r"^/q/(?P<queue>[^/]+)/jobs/(?P<status>[a-z]+)$"), "job_list"),
    ("GET", re.compile(r"^/q/(?P<queue>[^/]+)/job/(?P<id>[^/]+)$"), "job_detail"),
    ("POST", re.compile(r"^/q/(?P<queue>[^/]+)/job/(?P<id>[^/]+)/retry$"), "retry"),
    ("POST", re.compile(r"^/q/(?P<queue>[^/]+)/job/(?P<id>[^/]+)/remove$"), "remove"),
    ("POST", re.compile(r"^/q/(?P<queue>[^/]+)/job/(?P<id>[^/]+)/cancel$"), "cancel"),
    ("POST", re.compile(r"^/q/(?P<queue>[^/]+)/retry-failed$"), "retry_failed"),
    ("POST", re.compile(r"^/q/(?P<queue>[^/]+)/clear$"), "clear"),
]

Handler = Callable[[Request, dict[str, str]], Response]


class Dashboard:
    """The dashboard of one or several queues, as a WSGI application.

    ``read_only`` hides every action and refuses it if posted anyway. ``token`` and
    ``basic_auth`` ("user:password") require authentication; ``secret`` keys the CSRF
    tokens (random per instance unless given: give one when several processes serve the
    same dashboard behind a load balancer)."""

    def __init__(self, queues: Queue | Mapping[str, Queue], *, read_only: bool = False,
                 token: str | None = None, basic_auth: str | None = None,
                 secret: bytes | str | None = None) -> None:
        if isinstance(queues, Queue):
            queues = {queues.driver.channel: queues}
        if not queues:
            raise ValueError("the dashboard needs at least one queue")
        for name, queue in queues.items():
            if not isinstance(queue, Queue) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                raise ValueError(f"queue {name!r}: names are letters, digits, '_', '.', '-' "
                                 "and values are Queue objects")
        self.queues = dict(queues)
        self.read_only = read_only
        self.auth = Auth(token or None, parse_basic(basic_auth) if basic_auth else None)
        self.csrf = Csrf(secret)

    # -- WSGI ------------------------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self._respond(request)
        except Exception:
            logger.exception("dashboard: %s %s failed", request.method, request.path)
            response = error("500 Internal Server Error",
                             "The dashboard failed; the server's log has the details.")
        response.headers.extend(security_headers())
        if response.content_type.startswith("text/html"):
            # Pages carry CSRF tokens and job data: never cached, never shown from history.
            response.headers.append(("Cache-Control", "no-store"))
        return response(start_response)

    def _respond(self, request: Request) -> Response:
        if request.path == "/login" and request.method == "GET":
            return self.login(request, {})
        if not self.auth.allows(request.environ):
            return self._challenge()
        allowed = []
        for method, pattern, name in _ROUTES:
            match = pattern.match(request.path)
            if match is None:
                continue
            allowed.append(method)
            if method == request.method:
                handler: Handler = getattr(self, name)
                return handler(request, match.groupdict())
        if allowed:
            response = error("405 Method Not Allowed", "Method not allowed.")
            response.headers.append(("Allow", ", ".join(allowed)))
            return response
        return error("404 Not Found", "No such page.")

    def _challenge(self) -> Response:
        response = error("401 Unauthorized", "Authentication required: open login?token=... "
                         "once, or send an Authorization header.")
        if self.auth.basic is not None:
            response.headers.append(("WWW-Authenticate",
                                     'Basic realm="queue-core dashboard", charset="UTF-8"'))
        return response

    # -- sessions and pages ----------------------------------------------------------

    def _page(self, request: Request, build: Callable[[views.Context], Safe]) -> Response:
        session = request.cookies.get(SESSION_COOKIE, "")
        response = Response()
        if not session or not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", session):
            session = self.csrf.new_session()
            response.set_cookie(SESSION_COOKIE, session, request)
        flash = FLASHES.get(request.query.get("flash", ""), "")
        response.body = build(views.Context(request, self.csrf.token(session), self.read_only,
                                            flash))
        return response

    def _queue(self, params: dict[str, str]) -> Queue | None:
        return self.queues.get(params.get("queue", ""))

    def overview(self, request: Request, params: dict[str, str]) -> Response:
        return self._page(request, lambda ctx: views.overview(ctx, self.queues))

    def static(self, request: Request, params: dict[str, str]) -> Response:
        found = static.load(params["file"])
        if found is None:
            return error("404 Not Found", "No such file.")
        body, kind = found
        return Response(body, content_type=kind,
                        headers=[("Cache-Control", "public, max-age=3600")])

    def login(self, request: Request, params: dict[str, str]) -> Response:
        token = request.query.get("token", "")
        if self.auth.token is None or not self.auth.token_matches(token):
            return self._challenge()
        # The token leaves the address bar at once (and was never sent as a Referer:
        # Referrer-Policy is no-referrer).
        response = redirect(request.url())
        response.set_cookie(LOGIN_COOKIE, self.auth.login_value(), request)
        return response

    def job_list(self, request: Request, params: dict[str, str]) -> Response:
        queue = self._queue(params)
        try:
            status = JobStatus(params["status"])
        except ValueError:
            queue = None
        if queue is None:
            return error("404 Not Found", "No such queue or status.")
        name = params["queue"]
        return self._page(request, lambda ctx: views.job_list(ctx, name, queue, status))

    def job_detail(self, request: Request, params: dict[str, str]) -> Response:
        queue = self._queue(params)
        if queue is None:
            return error("404 Not Found", "No such queue.")
        name, job_id = params["queue"], params["id"]
        if not queue.capabilities.status:
            return error("404 Not Found", f"The {queue.driver.name} driver cannot look up jobs.")
        try:
            info = queue.get(job_id)
        except JobNotFoundError:
            return self._page(request, lambda ctx: views.not_stored(ctx, name, job_id, None))
        except QueueError as exc:
            return error("503 Service Unavailable", f"{type(exc).__name__}: {exc}")
        return self._page(request, lambda ctx: views.job_detail(ctx, name, queue, info))

    # -- actions ---------------------------------------------------------------------

    def _action(self, request: Request, params: dict[str, str], question: str,
                act: Callable[[Queue], str]) -> Response:
        """Every action: refused when read-only, refused without a valid CSRF token,
        confirmed (a page asks when the form says it was not), then done."""
        if self.read_only:
            return error("403 Forbidden", "The dashboard is read-only.")
        session = request.cookies.get(SESSION_COOKIE)
        if not self.csrf.valid(session, request.form.get("csrf")):
            logger.warning("dashboard: %s %s refused: no valid CSRF token", request.method,
                           request.path)
            return error("403 Forbidden", "Refused: the form's security token is missing or "
                         "wrong. Reload the page and try again.")
        queue = self._queue(params)
        if queue is None:
            return error("404 Not Found", "No such queue.")
        if request.form.get("confirmed") != "1":
            return self._page(request, lambda ctx: views.confirm(
                ctx, request.url(*request.path.strip("/").split("/")), question))
        try:
            return redirect(act(queue))
        except (JobNotFoundError, JobNotInStateError) as exc:
            return error("409 Conflict", str(exc))
        except NotSupportedError as exc:
            return error("400 Bad Request", str(exc))
        except QueueError as exc:
            return error("503 Service Unavailable", f"{type(exc).__name__}: {exc}")

    def retry(self, request: Request, params: dict[str, str]) -> Response:
        name, job_id = params["queue"], params["id"]

        def act(queue: Queue) -> str:
            state = queue.status(job_id)
            queue.retry(job_id, state=JobStatus.DONE if state is JobStatus.DONE
                        else JobStatus.FAILED)
            logger.info("dashboard: job %s of %s retried", job_id, name)
            return request.url("q", name, "job", job_id) + "?flash=retried"
        return self._action(request, params, f"Send job {job_id} back to waiting?", act)

    def remove(self, request: Request, params: dict[str, str]) -> Response:
        name, job_id = params["queue"], params["id"]

        def act(queue: Queue) -> str:
            if not queue.remove(job_id):
                raise JobNotFoundError(f"no job {job_id!r} in {name}")
            logger.info("dashboard: job %s of %s removed", job_id, name)
            return request.url() + "?flash=removed"
        return self._action(request, params, f"Delete job {job_id}?", act)

    def cancel(self, request: Request, params: dict[str, str]) -> Response:
        name, job_id = params["queue"], params["id"]

        def act(queue: Queue) -> str:
            if not queue.cancel(job_id):
                raise JobNotInStateError(f"job {job_id} is not waiting, delayed or running")
            logger.info("dashboard: job %s of %s cancelled", job_id, name)
            return request.url("q", name, "job", job_id) + "?flash=cancelled"
        return self._action(request, params, f"Cancel job {job_id}?", act)

    def retry_failed(self, request: Request, params: dict[str, str]) -> Response:
        name = params["queue"]

        def act(queue: Queue) -> str:
            sent, skipped = queue.retry_failed()
            logger.info("dashboard: %d failed jobs of %s retried, %d could not be", sent,
                        name, skipped)
            return request.url() + "?flash=retried-all"
        return self._action(request, params, f"Retry every failed job of {name}?", act)

    def clear(self, request: Request, params: dict[str, str]) -> Response:
        name = params["queue"]

        def act(queue: Queue) -> str:
            queue.clear()
            logger.info("dashboard: queue %s cleared", name)
            return request.url() + "?flash=cleared"
        return self._action(request, params, f"Delete every job of {name}?", act)


def make_app(queues: Queue | Mapping[str, Queue], **options: Any) -> Dashboard:
    """``Dashboard(queues, **options)``, for hosts that expect a factory."""
    return Dashboard(queues, **options)
