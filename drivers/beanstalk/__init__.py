"""The beanstalk driver: beanstalkd's own ttr lease, delays and priorities, over its
protocol spoken directly (no client library, so nothing a client's release changes can
break the pipelining).

One concern per module: ``errors`` (the protocol's replies and failures as exceptions),
``protocol`` (commands as bytes, strict reading of their replies), ``connection`` (the
socket and its pipelining), ``client`` (the connection to the channel's tube and the
exchanges per job), ``jobs`` (how a job is kept in beanstalkd's fields), ``store``
(``BeanstalkDriver``: pushes, lookups, admin) and ``consumer`` (one worker's reserves and
outcomes).
"""

from __future__ import annotations

# The single-module driver's names that tests still import.
from .consumer import _Handle  # noqa: F401
from .jobs import MAX_PRIORITY
from .store import BeanstalkDriver

__all__ = ["BeanstalkDriver", "MAX_PRIORITY"]
