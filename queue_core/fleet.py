"""How the CLI shows the workers' heartbeat records: a table for ``queue-core workers``,
a short section for ``info``, and the JSON both print with ``--json``.

The records have been checked when read (beats.py); what is shown of them is cut to a
width, so a long host or job name cannot break the table.
"""

from __future__ import annotations

from typing import Any

from .model import WorkerInfo

JOBS_SHOWN = 10
"""Running jobs listed under one worker; the rest are counted."""


def span(seconds: float) -> str:
    """A duration as an operator reads it: 0.4s, 12s, 5m02s, 3h04m, 2d03h."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def state(info: WorkerInfo, now: float) -> str:
    return "stopped beating" if info.stopped_beating(now) else "live"


def table(workers: list[WorkerInfo], now: float, jobs: bool = True) -> list[str]:
    """A header and a line per worker, each followed (``jobs``) by its running jobs."""
    lines = [f"{'host':<24} {'pid':>7}  {'state':<15} {'last beat':>9}  {'up':>7}  "
             f"{'done':>7} {'failed':>7}  {'memory':>9}  running"]
    for info in workers:
        memory = "-" if info.memory_mb is None else f"{info.memory_mb:.1f} MB"
        lines.append(
            f"{info.host[:24]:<24} {info.pid:>7}  {state(info, now):<15} "
            f"{span(info.age(now)) + ' ago':>9}  {span(now - info.started_at):>7}  "
            f"{info.done:>7} {info.failed:>7}  {memory:>9}  {len(info.jobs)}")
        if jobs:
            for job in info.jobs[:JOBS_SHOWN]:
                lines.append(f"    job {job.id[:40]} {job.name[:60] or '?'}, running "
                             f"{span(now - job.started_at)}")
            if len(info.jobs) > JOBS_SHOWN:
                lines.append(f"    ... and {len(info.jobs) - JOBS_SHOWN} more jobs")
    return lines


def summary(workers: list[WorkerInfo], now: float) -> str:
    stopped = sum(1 for info in workers if info.stopped_beating(now))
    live = len(workers) - stopped
    text = f"{live} live"
    return text + (f", {stopped} stopped beating" if stopped else "")


def as_dict(info: WorkerInfo, now: float) -> dict[str, Any]:
    return {"id": info.id, "host": info.host, "pid": info.pid, "channel": info.channel,
            "state": state(info, now), "started_at": info.started_at,
            "beat_at": info.beat_at, "beat_age": round(info.age(now), 3),
            "period": info.period, "done": info.done, "failed": info.failed,
            "memory_mb": info.memory_mb,
            "jobs": [{"id": job.id, "name": job.name, "started_at": job.started_at,
                      "running_for": round(max(0.0, now - job.started_at), 3)}
                     for job in info.jobs]}
