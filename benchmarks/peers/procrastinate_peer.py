"""procrastinate, the PostgreSQL-only task queue: one worker process, concurrency 1, its
default settings (LISTEN/NOTIFY, finished jobs kept as succeeded)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from typing import Any

from benchmarks.contenders import Contender, python_env, spawn


class Procrastinate(Contender):
    name = "procrastinate"

    def __init__(self, dsn: str) -> None:
        # procrastinate takes a libpq DSN, not an SQLAlchemy URL.
        self.dsn = dsn.replace("postgresql+psycopg://", "postgresql://")
        self._app: Any = None

    def available(self) -> str | None:
        if importlib.util.find_spec("procrastinate") is None:
            return "procrastinate is not installed (pip install -e '.[bench]')"
        return None

    def _module(self) -> Any:
        if self._app is None:
            os.environ["BENCH_PROCRASTINATE_DSN"] = self.dsn
            from benchmarks.peers import procrastinate_app
            self._app = procrastinate_app
            self._app.app.open()
            self._ensure_schema()
        return self._app

    def _sql(self, statement: str) -> Any:
        import psycopg
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else None

    def _ensure_schema(self) -> None:
        if not self._sql("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")[0][0]:
            self._app.app.schema_manager.apply_schema()

    def prepare(self) -> None:
        self._module()
        self._sql("DELETE FROM procrastinate_jobs WHERE queue_name = 'bench'")

    def push(self, count: int, marks: str, last: int) -> float:
        task = self._module().noop
        start = time.perf_counter()
        for index in range(count):
            task.defer(index=index, last=last, marks=marks)
        return time.perf_counter() - start

    def push_many(self, count: int, marks: str, last: int) -> float | None:
        task = self._module().noop
        start = time.perf_counter()
        task.batch_defer(*({"index": index, "last": last, "marks": marks}
                           for index in range(count)))
        return time.perf_counter() - start

    def worker(self, marks: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "procrastinate", "--app",
                   "benchmarks.peers.procrastinate_app.app", "worker", "--queues", "bench",
                   "--concurrency", "1"]
        return spawn(command, python_env(BENCH_PROCRASTINATE_DSN=self.dsn))

    def close(self) -> None:
        if self._app is not None:
            self._app.app.close()
            self._app = None

