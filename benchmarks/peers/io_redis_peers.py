"""RQ, Dramatiq, Huey and Celery on Redis for benchmarks/io_bound.py: each runs a task that
sleeps, started with the flags of the scenario (several jobs in flight, or none at all)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from benchmarks.peers.redis_peers import BIN, RedisPeer

APPS = "benchmarks.peers.io_redis_apps"


class IoPeer(RedisPeer):
    """A peer on its own Redis database whose worker is started with ``flags``;
    ``in_flight`` is how many jobs those flags let it run at once."""

    def __init__(self, server: str, db: int, name: str, flags: list[str], in_flight: int,
                 seconds: float) -> None:
        super().__init__(server, db, name)
        self.flags = flags
        self.in_flight = in_flight
        self.seconds = seconds

    def app(self) -> Any:
        if self._app is None:
            os.environ["BENCH_REDIS_URL"] = self.url
            os.environ["BENCH_LIBRARY"] = self.library
            sys.modules.pop(APPS, None)
            self._app = importlib.import_module(APPS)
        return self._app

    def push(self, count: int, marks: str, last: int) -> float:
        import time
        send, seconds = self.sender(), self.seconds
        start = time.perf_counter()
        for index in range(count):
            send(index, seconds, marks)
        return time.perf_counter() - start


class Rq(IoPeer):
    library = "rq"
    patterns = ("rq:*",)

    def sender(self) -> Any:
        import redis
        from rq import Queue
        queue = Queue("bench", connection=redis.Redis.from_url(self.url))
        task = self.app().sleep
        return lambda *args: queue.enqueue(task, *args)

    def command(self) -> list[str]:
        # flags: ["worker"] (one job at a time, a fork per job) or ["worker-pool", "-n", N]
        return [f"{BIN}/rq", *self.flags, "--url", self.url, "bench"]


class Dramatiq(IoPeer):
    library = "dramatiq"
    patterns = ("dramatiq:*",)

    def sender(self) -> Any:
        return self.app().dramatiq_sleep.send

    def command(self) -> list[str]:
        return [f"{BIN}/dramatiq", APPS, *self.flags, "--queues", "bench"]


class Huey(IoPeer):
    library = "huey"
    patterns = ("huey.*",)

    def sender(self) -> Any:
        return self.app().huey_sleep

    def command(self) -> list[str]:
        # -q: no log line per task, as in benchmarks/throughput.py
        return [f"{BIN}/huey_consumer", f"{APPS}.huey", *self.flags, "-q"]


class Celery(IoPeer):
    library = "celery"
    patterns = ("bench*", "_kombu*", "unacked*", "celery*")

    def sender(self) -> Any:
        return self.app().celery_sleep.delay

    def command(self) -> list[str]:
        # Logging and cluster chatter off, as in benchmarks/throughput.py; the pool and its
        # size come from the flags.
        return [f"{BIN}/celery", "-A", f"{APPS}:celery", "worker", *self.flags,
                "-Q", "celery", "--loglevel", "WARNING",
                "--without-gossip", "--without-mingle", "--without-heartbeat"]


def eight(server: str, seconds: float, slots: int = 8) -> list[IoPeer]:
    """Every peer with ``slots`` jobs in flight, in one process where it can."""
    n = str(slots)
    return [
        Dramatiq(server, 12, f"dramatiq -p 1 -t {n}", ["-p", "1", "-t", n], slots, seconds),
        Celery(server, 14, f"celery --pool threads -c {n}", ["--pool", "threads", "-c", n],
               slots, seconds),
        Huey(server, 13, f"huey -w {n} -k thread", ["-w", n, "-k", "thread"], slots, seconds),
        Rq(server, 11, f"rq worker-pool -n {n}", ["worker-pool", "-n", n], slots, seconds),
    ]


def defaults(server: str, seconds: float) -> list[IoPeer]:
    """Every peer as a user starts it, without a concurrency flag."""
    cpus = os.cpu_count() or 1
    return [
        Dramatiq(server, 12, f"dramatiq (default: {cpus} x 8)", [], cpus * 8, seconds),
        Celery(server, 14, f"celery (default: prefork x {cpus})", [], cpus, seconds),
        Huey(server, 13, "huey (default: 1 thread)", [], 1, seconds),
        Rq(server, 11, "rq worker (default)", ["worker"], 1, seconds),
    ]
