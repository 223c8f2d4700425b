"""The DB driver on PostgreSQL; its peer is procrastinate on the same server."""

from __future__ import annotations

import os
from typing import Any

from benchmarks.contenders import Contender
from benchmarks.db_reserve import measure as extra  # noqa: F401 - the run's extra figures

SERVER = os.environ.get("BENCH_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test")
BACKLOG = True


def settings(workdir: str) -> dict[str, Any]:
    return {"driver": {"url": SERVER, "table": "bench_queue"}, "channel": "bench"}


def peers(workdir: str, workers: int = 1) -> list[Contender]:
    from benchmarks.peers.procrastinate_peer import Procrastinate
    # procrastinate runs one worker process here whatever --workers says.
    return [Procrastinate(SERVER)] if workers == 1 else []


def after_prepare() -> None:
    """VACUUM both libraries' tables before every measurement: this server runs with
    autovacuum off, and rows churned by earlier runs would slow whoever comes later."""
    import psycopg
    dsn = SERVER.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in ("bench_queue", "procrastinate_jobs"):
            if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]:
                conn.execute(f"VACUUM {table}")
