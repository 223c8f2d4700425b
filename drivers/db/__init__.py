"""The DB driver: one table on SQLAlchemy 2 (SQLite, PostgreSQL, MySQL/MariaDB).

One concern per module: ``options`` (the driver's options and the database clients' own),
``engine`` (the SQLAlchemy engine: URL, connect listeners, pings, supported dialects),
``sql`` (the table and every statement, per dialect), ``store`` (``DbDriver``: pushes,
lookups, admin), ``consumer`` (one worker's reserves, waits and settlements) and ``cli``
(``queue-core db init``).
"""

from __future__ import annotations

from .consumer import IDLE_RECHECK
from .store import DbDriver

__all__ = ["IDLE_RECHECK", "DbDriver"]
