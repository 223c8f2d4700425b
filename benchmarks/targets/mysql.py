"""The DB driver on MySQL/MariaDB (no speed target; no peer queue library runs on it)."""

from __future__ import annotations

import os
from typing import Any

from benchmarks.contenders import Contender
from benchmarks.db_reserve import measure as extra  # noqa: F401 - the run's extra figures

SERVER = os.environ.get("BENCH_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")
BACKLOG = True


def settings(workdir: str) -> dict[str, Any]:
    return {"driver": {"url": SERVER, "table": "bench_queue"}, "channel": "bench"}


def peers(workdir: str, workers: int = 1) -> list[Contender]:
    return []
