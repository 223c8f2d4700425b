"""queue-core's side of the benchmark: a no-op job and the --app target for the worker."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from queue_core import Job, Queue, WorkerEvent, create_queue

from .marks import mark, write


class BenchJob(Job):
    """A no-op job that marks the first and the last run."""

    job_name = "bench.noop"

    def __init__(self, index: int, last: int, marks: str) -> None:
        self.index = index
        self.last = last
        self.marks = marks

    def execute(self, queue: Any) -> None:
        if self.index == 0 or self.index == self.last:
            mark(self.marks, self.index, self.last)


def mark_worker_start(event: WorkerEvent) -> None:
    """Before the first reserve: the backlog comparison counts every scan from here."""
    write(os.path.join(os.environ["BENCH_MARKS"], "worker"))


def check_code_origin() -> None:
    """Under ``--code DIR`` (``$BENCH_CODE``), stop unless queue_core and its loaded
    drivers came from DIR."""
    code = os.environ.get("BENCH_CODE")
    if not code:
        return
    for name, module in list(sys.modules.items()):
        origin = os.path.realpath(str(getattr(module, "__file__", None) or code))
        if name.split(".")[0] == "queue_core" and not origin.startswith(code + os.sep):
            raise SystemExit(f"{name} came from {origin}, not from {code}")


def queue() -> Queue:
    built = create_queue(json.loads(os.environ["BENCH_SETTINGS"]))
    check_code_origin()
    if os.environ.get("BENCH_MARKS"):
        built.on(Queue.EVENT_WORKER_START, mark_worker_start)
    return built
