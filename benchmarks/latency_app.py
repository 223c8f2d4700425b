"""The job of benchmarks/latency.py and the --app target of its worker.

Each job writes the wall-clock time it started to ``<marks>/job<index>``; the benchmark
subtracts the time it took just before calling push(). At start the worker writes which
files its queue_core and its drivers were imported from, so a run against another checkout
(``--code``) can show that the other code really ran.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

from queue_core import Job, Queue, WorkerEvent, create_queue

from .marks import write


class LatencyJob(Job):
    """A no-op job that records when it started."""

    job_name = "bench.latency"

    def __init__(self, index: int, marks: str) -> None:
        self.index = index
        self.marks = marks

    def execute(self, queue: Any) -> None:
        write(job_mark(self.marks, self.index))


def mark_name(index: int) -> str:
    return f"job{index}"


def job_mark(marks: str, index: int) -> str:
    return os.path.join(marks, mark_name(index))


def code_paths() -> dict[str, Any]:
    """The files this process's queue_core and its loaded drivers come from (the file
    driver always among them)."""
    importlib.import_module("queue_core.drivers.file")
    drivers = {name: str(getattr(module, "__file__", None))
               for name, module in sorted(sys.modules.items())
               if name.startswith("queue_core.drivers.")}
    return {"queue_core": str(sys.modules["queue_core"].__file__), "drivers": drivers}


def report_code(event: WorkerEvent) -> None:
    path = os.path.join(os.environ["BENCH_MARKS"], "code.json")
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w") as handle:
        json.dump(code_paths(), handle)
    os.replace(tmp, path)


def queue() -> Queue:
    built = create_queue(json.loads(os.environ["BENCH_SETTINGS"]))
    built.on(Queue.EVENT_WORKER_START, report_code)
    return built
