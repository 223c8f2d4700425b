"""Event handlers the settings attach by import path."""

from __future__ import annotations

import logging

from queue_core import ExecEvent, PushEvent

logger = logging.getLogger("examples")


def tag_priority(event: PushEvent) -> None:
    """before_push: mail to VIPs jumps the queue (lower numbers run first)."""
    if getattr(event.job, "vip", False) and event.priority is None:
        event.priority = 10


def log_error(event: ExecEvent) -> None:
    """after_error: one line per failed attempt, saying what happens next."""
    fate = f"retry in {event.delay:.2f}s" if event.retry else "no retry"
    logger.warning("job %s attempt %d: %s (%s)", event.id, event.attempt, event.error, fate)


def alert_on_failure(event: ExecEvent) -> None:
    """after_fail: the job is out of retries; a real app would page someone."""
    logger.error("job %s failed for good: %s", event.id, event.error)
