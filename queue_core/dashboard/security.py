"""Who may see the dashboard and act on it: authentication, CSRF tokens, headers.

- Authentication is either a bearer token or HTTP basic auth (user and password), both
  compared in constant time. A browser logs in with a token once, at ``login?token=...``,
  which sets an HttpOnly cookie holding a value derived from the token (never the token).
- Actions are POSTs that must carry a CSRF token: an HMAC, under the app's secret, of a
  random session id kept in a SameSite=Strict HttpOnly cookie. Another site can neither
  read that cookie nor compute the HMAC, so it cannot forge an action.
- Loopback addresses are the only ones the server may bind to without authentication.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

SESSION_COOKIE = "qc_dash_session"
LOGIN_COOKIE = "qc_dash_login"
TOKEN_ENV = "QUEUE_CORE_DASHBOARD_TOKEN"
BASIC_AUTH_ENV = "QUEUE_CORE_DASHBOARD_BASIC_AUTH"

# No inline script, no script from anywhere but the package's own static files, nothing
# fetched from the network: the dashboard ships every asset it uses.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; form-action 'self'; base-uri 'none'; "
                           "frame-ancestors 'none'")


def security_headers() -> list[tuple[str, str]]:
    return [("Content-Security-Policy", CONTENT_SECURITY_POLICY),
            ("X-Frame-Options", "DENY"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer")]


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server reachable from this machine only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything: treat it as public


def cookies(environ: dict[str, object]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(str(environ.get("HTTP_COOKIE", "")))
    except CookieError:
        return {}
    return {key: morsel.value for key, morsel in jar.items()}


def parse_basic(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ValueError("basic auth must look like user:password")
    return user, password


@dataclass(frozen=True)
class Auth:
    """The credentials the dashboard asks for; neither set: no authentication."""

    token: str | None = None
    basic: tuple[str, str] | None = None

    @classmethod
    def from_env(cls, token: str | None = None, basic: str | None = None) -> Auth:
        """Credentials given as arguments, else from the environment."""
        token = token or os.environ.get(TOKEN_ENV) or None
        basic = basic or os.environ.get(BASIC_AUTH_ENV) or None
        return cls(token, parse_basic(basic) if basic else None)

    @property
    def required(self) -> bool:
        return self.token is not None or self.basic is not None

    def login_value(self) -> str:
        """What the login cookie holds: a digest of the token, so the cookie (which the
        browser stores) never holds the token itself."""
        assert self.token is not None
        return hashlib.sha256(b"queue-core-dashboard-login:" + self.token.encode()).hexdigest()

    def allows(self, environ: dict[str, object]) -> bool:
        if not self.required:
            return True
        header = str(environ.get("HTTP_AUTHORIZATION", ""))
        scheme, _, value = header.partition(" ")
        if self.token is not None:
            if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(),
                                                                  self.token.encode()):
                return True
            login = cookies(environ).get(LOGIN_COOKIE, "")
            if login and hmac.compare_digest(login.encode(), self.login_value().encode()):
                return True
        if self.basic is not None and scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            user, _, password = decoded.partition(":")
            # Both compared, always: the time taken says nothing about which one was wrong.
            good_user = hmac.compare_digest(user.encode(), self.basic[0].encode())
            good_password = hmac.compare_digest(password.encode(), self.basic[1].encode())
            return good_user and good_password
        return False

    def token_matches(self, candidate: str) -> bool:
        return self.token is not None and hmac.compare_digest(candidate.encode(),
                                                              self.token.encode())


class Csrf:
    """CSRF tokens: HMAC(secret, session id). The secret is per app (random unless given,
    so a restart invalidates every open form); the session id is per browser."""

    def __init__(self, secret: bytes | str | None = None) -> None:
        if isinstance(secret, str):
            secret = secret.encode()
        self._secret = secret or secrets.token_bytes(32)

    @staticmethod
    def new_session() -> str:
        return secrets.token_urlsafe(24)

    def token(self, session: str) -> str:
        return hmac.new(self._secret, session.encode(), hashlib.sha256).hexdigest()

    def valid(self, session: str | None, token: str | None) -> bool:
        if not session or not token:
            return False
        return hmac.compare_digest(self.token(session).encode(), token.encode())
