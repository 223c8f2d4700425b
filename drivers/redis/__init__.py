"""The Redis driver: every move one Lua script, priorities and delays in sorted sets,
a blocking wait, and about one cheap message per job in the steady state.

One concern per module: ``connect`` (the URL forms and where the channel lives: one
server, a Sentinel-managed master or a Redis Cluster node), ``scripts`` (the Lua scripts
in ``lua/``, the stored key and field names, each script's arguments and their packing),
``store`` (``RedisDriver``: pushes, lookups, admin) and ``consumer`` (one worker's
fetches, starts and settlements).
"""

from __future__ import annotations

# The names the single-module driver gave its packing: tests still use them.
from .scripts import Script as _Script  # noqa: F401
from .scripts import bulk as _bulk  # noqa: F401
from .scripts import pack as _pack  # noqa: F401
from .store import RedisDriver

__all__ = ["RedisDriver"]
