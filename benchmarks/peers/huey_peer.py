"""Huey, the usual no-server choice: SqliteHuey and FileHuey, one consumer, one worker."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time

from benchmarks.contenders import Contender, python_env, spawn


class Huey(Contender):
    def __init__(self, kind: str, workdir: str, workers: int = 1) -> None:
        self.kind = kind
        self.workers = workers
        self.name = f"huey-{kind}" + (f" -w {workers}" if workers > 1 else "")
        self.workdir = workdir
        self.path = ""
        self._runs = 0
        self._app = None

    def available(self) -> str | None:
        if importlib.util.find_spec("huey") is None:
            return "huey is not installed (pip install -e '.[bench]')"
        return None

    def _env(self) -> dict[str, str]:
        return python_env(BENCH_HUEY=self.kind, BENCH_HUEY_PATH=self.path)

    def _module(self):  # type: ignore[no-untyped-def]
        if self._app is None:
            os.environ["BENCH_HUEY"] = self.kind
            os.environ["BENCH_HUEY_PATH"] = self.path
            # import_module, not "from ... import": the package attribute would hand back
            # the module built for the previous store.
            sys.modules.pop("benchmarks.peers.huey_app", None)
            self._app = importlib.import_module("benchmarks.peers.huey_app")
        return self._app

    def prepare(self) -> None:
        # A fresh store each time: SQLite's -wal/-shm files outlive a deleted database.
        if self.path and os.path.isdir(self.path):
            shutil.rmtree(self.path)
        self._runs += 1
        self.path = os.path.join(self.workdir, f"huey-{self.kind}-{self._runs}")
        self._app = None
        self._module()

    def push(self, count: int, marks: str, last: int) -> float:
        task = self._module().noop
        start = time.perf_counter()
        for index in range(count):
            task(index, last, marks)
        return time.perf_counter() - start

    def worker(self, marks: str) -> subprocess.Popen[bytes]:
        consumer = os.path.join(os.path.dirname(sys.executable), "huey_consumer")
        kind = "process" if self.workers > 1 else "thread"
        return spawn([consumer, "benchmarks.peers.huey_app.huey", "-w", str(self.workers), "-k",
                      kind, "-q"], self._env())
