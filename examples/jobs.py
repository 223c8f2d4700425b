"""Job types. Their fields are the payload; the registered name travels with them."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from queue_core import RetryableJob


class TemporaryError(Exception):
    """The mail server said 'try again later'."""


class PermanentError(Exception):
    """The mail server said 'no such mailbox'."""


def fake_smtp_send(to: str, subject: str, attempt_marker: str) -> str:
    """A flaky SMTP server: addresses with 'flaky' fail twice before going through;
    addresses at 'invalid.example' never do."""
    if to.endswith("@invalid.example"):
        raise PermanentError(f"550 no such mailbox: {to}")
    if "flaky" in to:
        os.makedirs(os.path.dirname(attempt_marker), exist_ok=True)
        with open(attempt_marker, "a") as marker:
            marker.write("x")
        with open(attempt_marker) as marker:
            tries = len(marker.read())
        if tries <= 2:
            raise TemporaryError(f"421 try again later (try {tries})")
    return "<" + hashlib.sha1(f"{to}{subject}".encode()).hexdigest()[:12] + "@example>"


@dataclass
class SendEmail(RetryableJob):
    to: str
    subject: str
    body: str = ""
    vip: bool = False

    def execute(self, queue: Any) -> str:
        marker = os.path.join("queue-data", "smtp-tries", self.to)
        return fake_smtp_send(self.to, self.subject, marker)

    def get_ttr(self) -> float:
        return 15

    def can_retry(self, attempt: int, error: BaseException) -> bool:
        # Retry what the server calls temporary, up to 5 runs; never a bad address.
        return attempt < 5 and isinstance(error, TemporaryError)
