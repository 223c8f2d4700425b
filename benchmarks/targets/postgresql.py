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
    """VACUUM every contender's table before every measurement: this server runs with
    autovacuum off, and rows churned by earlier runs would slow whoever comes later."""
    import psycopg
    dsn = SERVER.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        # bench_queue_<commit>: the tables of other checkouts measured by --code.
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND "
            "(tablename = 'procrastinate_jobs' OR tablename LIKE 'bench\\_queue%')")]
        for table in tables:
            conn.execute(f'VACUUM "{table}"')
