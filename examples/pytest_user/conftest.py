"""The shop's fixtures. The queue fixtures come from queue-core's pytest plugin, which the
installed package registers: nothing to import or declare for them here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from shop import mail


class FakeGateway(mail.Gateway):
    """Fails ``down`` times with MailDown, then sends; records what it sent."""

    def __init__(self) -> None:
        self.down = 0
        self.sent: list[tuple[str, str]] = []
        self.tries = 0

    def send(self, to: str, subject: str) -> str:
        self.tries += 1
        if to.endswith("@nowhere.example"):
            raise mail.BadAddress(f"550 no such mailbox: {to}")
        if self.down > 0:
            self.down -= 1
            raise mail.MailDown("421 try again later")
        self.sent.append((to, subject))
        return f"<{len(self.sent)}@shop.example>"


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGateway]:
    fake = FakeGateway()
    monkeypatch.setattr(mail, "gateway", fake)
    yield fake
