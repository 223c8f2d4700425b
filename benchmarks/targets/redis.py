"""The Redis driver; its peers are RQ, Dramatiq, Huey and Celery on the same server."""

from __future__ import annotations

import os
from typing import Any

from benchmarks.contenders import Contender

SERVER = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
BACKLOG = True


def settings(workdir: str) -> dict[str, Any]:
    return {"driver": f"{SERVER}/10", "channel": os.environ.get("BENCH_CHANNEL", "bench")}


def peers(workdir: str, workers: int = 1) -> list[Contender]:
    from benchmarks.peers.redis_peers import redis_peers
    return redis_peers(SERVER)
