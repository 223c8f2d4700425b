"""A WSGI test client: calls an app in-process with a built environ (no server), keeping
cookies between requests as a browser would."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode, urlsplit
from wsgiref.util import setup_testing_defaults


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str
    cookies: list[str] = field(default_factory=list)

    def csrf(self) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.text)
        assert found, "no CSRF token on the page"
        return found.group(1)


class Client:
    def __init__(self, app: Any, script_name: str = "") -> None:
        self.app = app
        self.script_name = script_name
        self.cookies: dict[str, str] = {}
        self.https = False

    def request(self, method: str, url: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        parts = urlsplit(url)
        body = urlencode(form or {}).encode()
        environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": parts.path,
                                   "SCRIPT_NAME": self.script_name,
                                   "QUERY_STRING": parts.query, "wsgi.input": io.BytesIO(body),
                                   "CONTENT_LENGTH": str(len(body))}
        if form is not None:
            environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for key, value in (headers or {}).items():
            environ["HTTP_" + key.upper().replace("-", "_")] = value
        if self.https:
            environ["wsgi.url_scheme"] = "https"
        setup_testing_defaults(environ)
        seen: dict[str, Any] = {}

        def start_response(status: str, header_list: list[tuple[str, str]]) -> None:
            seen["status"], seen["headers"] = status, header_list
        chunks = self.app(environ, start_response)
        text = b"".join(chunks).decode()
        set_cookies = [v for k, v in seen["headers"] if k.lower() == "set-cookie"]
        for line in set_cookies:
            jar: SimpleCookie = SimpleCookie()
            jar.load(line)
            self.cookies.update({k: m.value for k, m in jar.items()})
        return Answer(int(seen["status"].split()[0]), dict(seen["headers"]), text, set_cookies)

    def get(self, url: str, **kwargs: Any) -> Answer:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, form: dict[str, str], **kwargs: Any) -> Answer:
        return self.request("POST", url, form, **kwargs)
