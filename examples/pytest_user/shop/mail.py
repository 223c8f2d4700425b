"""The shop's mail gateway; tests swap it for a fake (conftest.py)."""

from __future__ import annotations


class MailDown(Exception):
    """The gateway cannot take mail now: worth retrying."""


class BadAddress(Exception):
    """No such mailbox: never worth retrying."""


class Gateway:
    def send(self, to: str, subject: str) -> str:
        raise NotImplementedError("the real gateway talks to an SMTP server")


gateway = Gateway()
