"""The core's side of rate limits: which fetched jobs may begin now.

A job held back by a limit is never begun, so it spends no attempt and is no error: it
waits in the worker that fetched it (fetching one at a time while the limit holds), and
goes back to the queue uncharged if it waits longer than ``HOLD_MAX``. Tokens are asked
for in one call for every job fetched together; slots (``max_concurrent``) only for the
jobs about to begin, and freed when each run settles.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from .limits import Limit, Limiter, Want, job_limit
from .model import Message

HOLD_MAX = 1.0
"""Seconds a fetched job may wait for a token or slot before it goes back to the queue
(uncharged), so that it does not sit in one worker while others could take it."""
UNKNOWN = ()
"""The limits of a job whose type is not known here (undecodable): the queue's only."""


class Throttle:
    """One worker's gate: the queue's limit and those of the job types it meets."""

    def __init__(self, limiter: Limiter, queue_limit: Limit | None,
                 decode: Callable[[Message], Any], lease: Callable[[Message], float]) -> None:
        self.limiter = limiter
        self.limits: list[Limit] = []
        self._index: dict[str, int] = {}
        self._by_type: dict[type, tuple[int, ...]] = {}
        self._base: tuple[int, ...] = ()
        if queue_limit is not None:
            self._base = (self._add(queue_limit),)
        self._decode = decode
        self._lease = lease
        self._typed = False
        """Whether job types may carry limits of their own (set by ``watch_types``): then
        each job is decoded before it is admitted."""
        self.slots = queue_limit is not None and queue_limit.max_concurrent is not None
        """Whether any limit bounds the jobs running at once: slots are then asked for
        only for jobs about to begin."""
        self._names = f"{secrets.token_hex(4)}.{os.getpid()}"
        self._serial = itertools.count(1)

    def _add(self, limit: Limit) -> int:
        index = self._index.get(limit.name)
        if index is None:
            index = self._index[limit.name] = len(self.limits)
            self.limits.append(limit)
            if limit.max_concurrent is not None:
                self.slots = True
        return index

    def watch_types(self, kinds: Sequence[type]) -> None:
        """Job types that declare limits of their own (checked by the caller)."""
        for kind in kinds:
            limit = job_limit(kind)
            if limit is not None:
                self._by_type[kind] = (*self._base, self._add(limit))
                self._typed = True

    def _limits_of(self, message: Message) -> tuple[int, ...]:
        if not self._typed:
            return self._base
        decoded = message.decoded
        if decoded is None:
            decoded = self._decode(message)
        if not isinstance(decoded, tuple):
            return self._base  # undecodable: the core fails it when it begins
        kind = type(decoded[0])
        found = self._by_type.get(kind)
        if found is None:
            limit = job_limit(kind)
            found = self._base if limit is None else (*self._base, self._add(limit))
            self._by_type[kind] = found
        return found

    def admit(self, messages: Sequence[Message]) -> float:
        """Ask for the tokens and slots of ``messages`` (not yet admitted) in one call;
        marks those granted (``message.admitted``). Returns the seconds to wait before
        asking again for those refused (0: all granted)."""
        wants = []
        asked = []
        for message in messages:
            indexes = self._limits_of(message)
            if not indexes:
                message.admitted = True
                continue
            slot = f"{self._names}.{next(self._serial)}"
            wants.append(Want(indexes, slot, self._lease(message)))
            asked.append(message)
        if not wants:
            return 0.0
        granted, wait = self.limiter.acquire(self.limits, wants)
        for message, want, ok in zip(asked, wants, granted, strict=True):
            if ok:
                message.admitted = True
                held = [(self.limits[i].name, want.slot) for i in want.limits
                        if self.limits[i].max_concurrent is not None]
                if held:
                    message.held_slots = held
        return wait

    def release(self, message: Message) -> None:
        """Free the slots ``message`` held (its run settled, or it will not begin)."""
        held, message.held_slots = message.held_slots, None
        if held:
            self.limiter.release(held)
