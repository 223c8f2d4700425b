"""What a benchmark contender is, and queue-core's own contender.

A contender pushes no-op jobs numbered 0..n-1 and starts one real worker process with
concurrency 1. Processing time comes from the jobs' own marks (see marks.py), the same way
for every library, so the figures compare like with like.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def python_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def code_env(code: str, workdir: str, **extra: str) -> dict[str, str]:
    """The environment of a process that imports queue_core from the checkout ``code`` and
    the benchmarks package from this one. It must run from ``workdir``: ``python -m`` puts
    its working directory first on sys.path, and this checkout's folder there would shadow
    ``code``; a folder holding only a link to this benchmarks package comes before
    ``code`` for the same reason."""
    links = os.path.join(workdir, "links")
    if not os.path.isdir(links):
        os.makedirs(links)
        os.symlink(ROOT / "benchmarks", os.path.join(links, "benchmarks"))
        overlay_drivers(code, os.path.join(links, "queue_core"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [links, code, env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def overlay_drivers(code: str, overlay: str) -> None:
    """A checkout keeps its drivers in a top-level ``drivers/`` folder that installs as
    ``queue_core.drivers``. Run from the checkout, ``queue_core.drivers`` would be found
    by this environment's own (editable) install, that is this checkout's drivers; so
    ``overlay`` becomes a queue_core package of links to ``code``'s files, its own drivers
    among them."""
    source, drivers = os.path.join(code, "queue_core"), os.path.join(code, "drivers")
    if not os.path.isdir(drivers) or os.path.exists(os.path.join(source, "drivers")):
        return
    os.makedirs(overlay)
    for name in os.listdir(source):
        os.symlink(os.path.join(source, name), os.path.join(overlay, name))
    os.symlink(drivers, os.path.join(overlay, "drivers"))


def spawn(command: list[str], env: dict[str, str],
          cwd: str | Path = ROOT) -> subprocess.Popen[bytes]:
    """Start a worker. Its output goes to a file: a pipe nobody reads would fill up with a
    chatty worker's logs and stall it, which is not what we want to measure."""
    log = tempfile.NamedTemporaryFile(prefix="bench-worker-", suffix=".log", delete=False)
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=log,
                               start_new_session=True)
    process.log_path = log.name  # type: ignore[attr-defined]
    log.close()
    return process


def worker_log(process: subprocess.Popen[bytes]) -> str:
    path = getattr(process, "log_path", None)
    if not path:
        return ""
    with open(path, errors="replace") as handle:
        return handle.read()[-3000:]


class Contender:
    name = "contender"
    workers = 1

    def available(self) -> str | None:
        """None when it can run here, else the reason it cannot."""
        return None

    def prepare(self) -> None:
        """Empty the queue."""

    def push(self, count: int, marks: str, last: int) -> float:
        """Push jobs 0..count-1 one at a time; return the seconds it took."""
        raise NotImplementedError

    def push_many(self, count: int, marks: str, last: int) -> float | None:
        """Push in batches if the library offers it; None if it does not."""
        return None

    def worker(self, marks: str) -> subprocess.Popen[bytes]:
        """Start one worker process, concurrency 1."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class QueueCore(Contender):
    """queue-core on one driver, its worker being ``queue-core listen``."""

    def __init__(self, settings: dict[str, Any], label: str = "queue-core",
                 worker_args: tuple[str, ...] = ()) -> None:
        from benchmarks.app import BenchJob
        from queue_core import create_queue

        self.name = label
        self.settings = settings
        self.worker_args = worker_args
        if "--workers" in worker_args:
            self.workers = int(worker_args[worker_args.index("--workers") + 1])
        self.queue = create_queue(settings)
        self.job = BenchJob

    def prepare(self) -> None:
        self.queue.clear()

    def push(self, count: int, marks: str, last: int) -> float:
        push, job = self.queue.push, self.job
        start = time.perf_counter()
        for index in range(count):
            push(job(index, last, marks))
        return time.perf_counter() - start

    def push_many(self, count: int, marks: str, last: int) -> float:
        """Every job in one push_many call, as an app with a list of jobs would do it."""
        jobs = [self.job(i, last, marks) for i in range(count)]
        start = time.perf_counter()
        self.queue.push_many(jobs)
        return time.perf_counter() - start

    def worker(self, marks: str, *extra: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "queue_core", "--app", "benchmarks.app:queue",
                   "listen", "--timeout", "1", *self.worker_args, *extra]
        return spawn(command, python_env(BENCH_SETTINGS=json.dumps(self.settings),
                                         BENCH_MARKS=marks))

    def close(self) -> None:
        self.queue.clear()
        self.queue.close()
