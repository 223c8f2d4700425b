"""The DB driver on SQLite (a file, no server); its peer is Huey's SQLite storage."""

from __future__ import annotations

from typing import Any

from benchmarks.contenders import Contender
from benchmarks.db_reserve import measure as extra  # noqa: F401 - the run's extra figures

BACKLOG = True


def settings(workdir: str) -> dict[str, Any]:
    return {"driver": f"sqlite:///{workdir}/queue-core.db", "channel": "bench"}


def peers(workdir: str, workers: int = 1) -> list[Contender]:
    from benchmarks.peers.huey_peer import Huey
    return [Huey("sqlite", workdir, workers)]
