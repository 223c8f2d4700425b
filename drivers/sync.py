"""The sync driver: the queue runs each job inside ``push``, in the caller's process.

For tests and development, when a job's effects are wanted before ``push`` returns. The
jobs are kept as the memory driver keeps them; there are no retries, delays or priorities
(declared, so the core refuses them), and ttr is not enforced.
"""

from __future__ import annotations

import math
from typing import Any

from queue_core.model import Capabilities, JobStatus
from queue_core.options import CHANNEL, check_options, documented, url_and_options

from .memory import MemoryDriver


@documented((CHANNEL,))
class SyncDriver(MemoryDriver):
    """Runs each job inside ``push``; ``sync://`` (``?channel=`` is its only option)."""

    name = "sync"
    options = (CHANNEL,)
    capabilities = Capabilities(
        attempt_count=True, status=True, failed_store=True, keep_completed=True,
        retention=True,
        manual_retry=True, remove=True, clear=True, info=True,
        listing=frozenset(JobStatus), reset_attempts=True,
        runs_at_push=True, multiprocess=False, progress=True)

    def __init__(self, *, channel: str = "queue") -> None:
        check_options(self.name, self.options, {"channel": channel})
        super().__init__(channel=channel)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SyncDriver:
        _, values = url_and_options(cls.name, cls.options, url, options)
        return cls(**values)

    def lease_seconds(self, ttr: float) -> float:
        # A job runs inside the push that made it: no other worker may take it over, even
        # when it outlives its ttr (a job pushed from inside it runs at once, meanwhile).
        return math.inf

    def describe(self) -> str:
        return f"sync:{self.channel}"
