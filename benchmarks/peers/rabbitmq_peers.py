"""Dramatiq on the same RabbitMQ as the amqp driver: one worker process with one thread,
at its default settings and with a prefetch of 100 (``dramatiq_queue_prefetch``)."""

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
QUEUE = "dramatiq_bench"
"""Dramatiq's queue (it adds ``.DQ`` for delays and ``.XQ`` for dead letters)."""


class DramatiqRabbitmq(Contender):
    def __init__(self, url: str, name: str = "dramatiq",
                 env: dict[str, str] | None = None) -> None:
        self.url = url
        self.name = name
        self.extra_env = env or {}
        self._app: Any = None

    def available(self) -> str | None:
        for library in ("dramatiq", "pika"):
            if importlib.util.find_spec(library) is None:
                return f"{library} is not installed (pip install -e '.[bench]')"
        return None

    def _env(self) -> dict[str, str]:
        return python_env(BENCH_AMQP_URL=self.url, **self.extra_env)

    def app(self) -> Any:
        if self._app is None:
            os.environ["BENCH_AMQP_URL"] = self.url
            sys.modules.pop("benchmarks.peers.rabbitmq_apps", None)
            self._app = importlib.import_module("benchmarks.peers.rabbitmq_apps")
        return self._app

    def prepare(self) -> None:
        import pika
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            channel = connection.channel()
            for name in (QUEUE, f"{QUEUE}.DQ", f"{QUEUE}.XQ"):
                try:
                    channel.queue_purge(name)
                except pika.exceptions.ChannelClosedByBroker:  # not declared yet
                    channel = connection.channel()
        finally:
            connection.close()

    def push(self, count: int, marks: str, last: int) -> float:
        send = self.app().dramatiq_noop.send
        start = time.perf_counter()
        for index in range(count):
            send(index, last, marks)
        return time.perf_counter() - start

    def worker(self, marks: str) -> subprocess.Popen[bytes]:
        return spawn([f"{BIN}/dramatiq", "benchmarks.peers.rabbitmq_apps", "--processes", "1",
                      "--threads", "1", "--queues", QUEUE], self._env())

    def close(self) -> None:
        app = self._app
        if app is not None:
            app.broker.close()


def rabbitmq_peers(url: str) -> list[Contender]:
    return [DramatiqRabbitmq(url),
            DramatiqRabbitmq(url, "dramatiq prefetch=100", {"dramatiq_queue_prefetch": "100"})]
