"""The file driver; its peer is Huey's no-server storage (SqliteHuey and FileHuey)."""

from __future__ import annotations

from typing import Any

from benchmarks.contenders import Contender

BACKLOG = True


def settings(workdir: str) -> dict[str, Any]:
    return {"driver": f"file://{workdir}/queue-core", "channel": "bench"}


def peers(workdir: str, workers: int = 1) -> list[Contender]:
    from benchmarks.peers.huey_peer import Huey
    return [Huey("sqlite", workdir, workers), Huey("file", workdir, workers)]
