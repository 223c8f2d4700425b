"""RQ, Dramatiq, Huey and Celery on the same Redis server, one worker process each with
concurrency 1, at their default settings (and Dramatiq with a prefetch of 100)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import time
from typing import Any

from benchmarks.contenders import Contender, python_env, spawn

BIN = os.path.dirname(sys.executable)


class RedisPeer(Contender):
    """One library on its own Redis database; ``prepare`` deletes only its own keys."""

    library = ""
    patterns: tuple[str, ...] = ()

    def __init__(self, server: str, db: int, name: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.url = f"{server}/{db}"
        self.name = name or self.library
        self.extra_env = env or {}
        self._app: Any = None

    def available(self) -> str | None:
        if importlib.util.find_spec(self.library) is None:
            return f"{self.library} is not installed (pip install -e '.[bench]')"
        return None

    def _env(self) -> dict[str, str]:
        return python_env(BENCH_REDIS_URL=self.url, BENCH_LIBRARY=self.library,
                          **self.extra_env)

    def app(self) -> Any:
        if self._app is None:
            os.environ["BENCH_REDIS_URL"] = self.url
            os.environ["BENCH_LIBRARY"] = self.library
            sys.modules.pop("benchmarks.peers.redis_apps", None)
            self._app = importlib.import_module("benchmarks.peers.redis_apps")
        return self._app

    def prepare(self) -> None:
        import redis
        client = redis.Redis.from_url(self.url)
        for pattern in self.patterns:
            keys = list(client.scan_iter(match=pattern, count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start:start + 1000])
        self._app = None

    def push(self, count: int, marks: str, last: int) -> float:
        send = self.sender()
        start = time.perf_counter()
        for index in range(count):
            send(index, last, marks)
        return time.perf_counter() - start

    def sender(self) -> Any:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def worker(self, marks: str) -> subprocess.Popen[bytes]:
        return spawn(self.command(), self._env())


class Rq(RedisPeer):
    library = "rq"
    patterns = ("rq:*",)

    def sender(self) -> Any:
        import redis
        from rq import Queue
        queue = Queue("bench", connection=redis.Redis.from_url(self.url))
        noop = self.app().noop
        return lambda *args: queue.enqueue(noop, *args)

    def command(self) -> list[str]:
        # The default worker: it forks a work horse per job.
        return [f"{BIN}/rq", "worker", "--url", self.url, "-q", "bench"]


class Dramatiq(RedisPeer):
    library = "dramatiq"
    patterns = ("dramatiq:*",)

    def sender(self) -> Any:
        return self.app().dramatiq_noop.send

    def command(self) -> list[str]:
        return [f"{BIN}/dramatiq", "benchmarks.peers.redis_apps", "--processes", "1",
                "--threads", "1", "--queues", "bench"]


class Huey(RedisPeer):
    library = "huey"
    patterns = ("huey.*",)

    def sender(self) -> Any:
        return self.app().huey_noop

    def command(self) -> list[str]:
        return [f"{BIN}/huey_consumer", "benchmarks.peers.redis_apps.huey", "-w", "1",
                "-k", "thread", "-q"]


class Celery(RedisPeer):
    library = "celery"
    patterns = ("bench*", "_kombu*", "unacked*", "celery*")

    def sender(self) -> Any:
        return self.app().celery_noop.delay

    def command(self) -> list[str]:
        # The default prefork pool with one child process.
        return [f"{BIN}/celery", "-A", "benchmarks.peers.redis_apps:celery", "worker",
                "--concurrency", "1", "-Q", "celery", "--loglevel", "WARNING",
                "--without-gossip", "--without-mingle", "--without-heartbeat"]


def redis_peers(server: str) -> list[Contender]:
    return [Rq(server, 11), Dramatiq(server, 12), Huey(server, 13), Celery(server, 14),
            Dramatiq(server, 12, "dramatiq prefetch=100", {"dramatiq_queue_prefetch": "100"})]
