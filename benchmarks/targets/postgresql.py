"""The DB driver on PostgreSQL; its peer is procrastinate on the same server."""

from __future__ import annotations

import os
from typing import Any

from benchmarks.contenders import Contender

SERVER = os.environ.get("BENCH_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test")
BACKLOG = True


def settings(workdir: str) -> dict[str, Any]:
    return {"driver": {"url": SERVER, "table": "bench_queue"}, "channel": "bench"}


def peers(workdir: str, workers: int = 1) -> list[Contender]:
    from benchmarks.peers.procrastinate_peer import Procrastinate
    return [Procrastinate(SERVER, workers)]
