"""queue-core's side of benchmarks/io_bound.py: jobs that wait on I/O (a sleep), and the
--app target of the worker.

``SleepJob`` blocks in ``time.sleep``; ``AsyncSleepJob`` awaits ``asyncio.sleep``. Both
record their start and end with io_marks, as the peers' tasks do.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from queue_core import Job, Queue, create_queue

from .io_marks import record


class SleepJob(Job):
    """Waits ``seconds`` in a blocking call, as a job calling an HTTP API would."""

    job_name = "bench.io.sleep"

    def __init__(self, index: int, seconds: float, marks: str) -> None:
        self.index = index
        self.seconds = seconds
        self.marks = marks

    def execute(self, queue: Any) -> None:
        start = time.time()
        time.sleep(self.seconds)
        record(self.marks, self.index, start, time.time())


class AsyncSleepJob(Job):
    """Waits ``seconds`` on the event loop, as a job using an async HTTP client would."""

    job_name = "bench.io.async_sleep"

    def __init__(self, index: int, seconds: float, marks: str) -> None:
        self.index = index
        self.seconds = seconds
        self.marks = marks

    async def execute(self, queue: Any) -> None:
        start = time.time()
        await asyncio.sleep(self.seconds)
        record(self.marks, self.index, start, time.time())


def queue() -> Queue:
    return create_queue(json.loads(os.environ["BENCH_SETTINGS"]))
