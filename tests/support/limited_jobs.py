"""Jobs for the rate-limit tests: each records when it starts and ends in its journal
('<tag> start|end <time.time()>'), and the job types below declare limits of their own.
Workers import this module through the ``imports`` setting of those tests only."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from queue_core import Job

from .jobs import append


@dataclass
class Stamp(Job):
    """Appends its start and end times; runs ``seconds`` in between."""

    journal: str
    tag: str
    seconds: float = 0.0

    def execute(self, queue: Any) -> None:
        append(self.journal, f"{self.tag} start {time.time():.6f}")
        if self.seconds:
            time.sleep(self.seconds)
        append(self.journal, f"{self.tag} end {time.time():.6f}")


@dataclass
class MeteredStamp(Stamp):
    """A job type limited to 20 starts a second, one at a time: ``rate`` and
    ``bucket_size`` as class attributes."""

    rate = "20/s"
    bucket_size = 1


@dataclass
class CrowdedStamp(Stamp):
    """A job type of which at most two run at once, across every worker."""

    max_concurrent = 2
