"""Driving an in-process queue in tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from queue_core import Queue


def run_until(queue: Queue, done: Callable[[], Any], timeout: float = 10.0,
              what: str = "the jobs") -> float:
    """Call queue.run() until ``done()`` holds; return the seconds it took."""
    start = time.monotonic()
    while not done():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        if not queue.run():
            time.sleep(0.02)
    return time.monotonic() - start


def started_tags(queue: Queue) -> list[str]:
    """The tags of Record jobs in the order the worker began them (several may then run at
    once, and end in any order)."""
    tags: list[str] = []
    queue.on(Queue.EVENT_BEFORE_EXEC, lambda event: tags.append(event.job.tag))
    return tags
