"""Pushing from asyncio code: ``apush`` from many tasks against ``push`` from one thread.

    python benchmarks/apush.py --driver redis [-n 10000] [--tasks 100] [--repeat 5]

Each round empties the queue and pushes ``-n`` no-op jobs to the real back end of
``--driver`` (the targets of benchmarks/targets/), and checks that exactly ``-n`` arrived:

- ``push``: one thread, one ``queue.push`` after the other;
- ``apush``: one event loop, ``--tasks`` tasks taking the jobs in turn, each awaiting
  ``queue.apush`` (concurrent calls share batches);
- ``apush_many``: one ``await queue.apush_many`` of every job, for reference;
- with ``--baselines``, the designs apush did not take: ``to_thread`` (each task awaits
  ``asyncio.to_thread(queue.push, job)``) and, on Redis, ``native`` (each task awaits its
  own EVALSHA of the driver's push script on a ``redis.asyncio`` client: the cost of one
  native round trip per job, without any of the core's checks), and ``no back end``
  (``apush`` from the same tasks to an in-process memory store: what apush costs on the
  event loop, whatever the back end).

The median of ``--repeat`` rounds is printed with every round, then each figure's ratio
to ``push``. Ratios are taken between figures of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.app import BenchJob
from benchmarks.throughput import median_line, targets
from queue_core import JobStatus, Queue, create_queue
from queue_core.model import PushRequest


def jobs(count: int, marks: str) -> list[BenchJob]:
    return [BenchJob(index, count - 1, marks) for index in range(count)]


def push(queue: Queue, batch: list[BenchJob], tasks: int) -> float:
    start = time.perf_counter()
    for job in batch:
        queue.push(job)
    return time.perf_counter() - start


async def _tasks(batch: list[BenchJob], tasks: int,
                 one: Callable[[BenchJob], Any]) -> float:
    """``tasks`` tasks taking the jobs in turn, each awaiting ``one(job)``."""
    todo: Iterator[BenchJob] = iter(batch)

    async def task() -> None:
        for job in todo:
            await one(job)

    start = time.perf_counter()
    await asyncio.gather(*(task() for _ in range(tasks)))
    return time.perf_counter() - start


def apush(queue: Queue, batch: list[BenchJob], tasks: int) -> float:
    return asyncio.run(_tasks(batch, tasks, queue.apush))


def apush_many(queue: Queue, batch: list[BenchJob], tasks: int) -> float:
    async def run() -> float:
        start = time.perf_counter()
        await queue.apush_many(batch)
        return time.perf_counter() - start
    return asyncio.run(run())


def to_thread(queue: Queue, batch: list[BenchJob], tasks: int) -> float:
    return asyncio.run(_tasks(batch, tasks, lambda job: asyncio.to_thread(queue.push, job)))


def native(queue: Queue, batch: list[BenchJob], tasks: int) -> float:
    """One EVALSHA per job on redis.asyncio, with the driver's own script and arguments."""
    import redis.asyncio

    driver: Any = queue.driver
    script = driver._scripts["push"]
    dumps = queue.serializer.dumps

    async def run() -> float:
        client = redis.asyncio.Redis.from_url(driver.url)
        await client.script_load(script.source)

        async def one(job: BenchJob) -> None:
            request = PushRequest(dumps(job, {}), queue.ttr, 0.0, None)
            args = driver._push_args([request]).to_args()
            await client.evalsha(script.sha, len(script.keys), *script.keys, *args)

        try:
            return await _tasks(batch, tasks, one)
        finally:
            await client.aclose()
    return asyncio.run(run())


def no_back_end(queue: Queue, batch: list[BenchJob], tasks: int) -> float:
    from queue_core.drivers.memory import MemoryDriver

    memory = Queue(MemoryDriver())
    took = apush(memory, batch, tasks)
    arrived = memory.info()[JobStatus.WAITING]
    if arrived != len(batch):
        raise SystemExit(f"no back end: {arrived} jobs arrived, {len(batch)} pushed")
    return took


MEASURES: dict[str, Callable[[Queue, list[BenchJob], int], float]] = {
    "push": push, "apush": apush, "apush_many": apush_many, "to_thread": to_thread,
    "native": native, "memory": no_back_end}
ELSEWHERE = {"memory"}
"""Measures that push to a queue of their own."""


def label(name: str, tasks: int) -> str:
    return {"push": "push (1 thread)", "apush": f"apush ({tasks} tasks)",
            "apush_many": "apush_many (1 call)", "to_thread": f"to_thread ({tasks} tasks)",
            "native": f"native ({tasks} tasks)",
            "memory": f"apush, no back end ({tasks})"}[name]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    found = targets()
    parser.add_argument("--driver", default="redis", choices=sorted(found))
    parser.add_argument("-n", type=int, default=10000, help="jobs per round")
    parser.add_argument("--tasks", type=int, default=100, help="concurrent apush tasks")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per figure")
    parser.add_argument("--baselines", action="store_true",
                        help="also measure to_thread and (on redis) native")
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix=f"bench-apush-{args.driver}-")
    marks = os.path.join(workdir, "marks")
    queue = create_queue(found[args.driver].settings(workdir))
    names = ["push", "apush", "apush_many"]
    if args.baselines:
        names += ["to_thread"] + (["native"] if args.driver == "redis" else []) + ["memory"]
    print(f"driver={args.driver} n={args.n} tasks={args.tasks} repeat={args.repeat} "
          f"python={sys.version.split()[0]} cpus={os.cpu_count()}")
    batch = jobs(args.n, marks)
    rates: dict[str, list[float]] = {name: [] for name in names}
    try:
        for _ in range(args.repeat):  # the figures alternate, so drift hits them alike
            for name in names:
                queue.clear()
                took = MEASURES[name](queue, batch, args.tasks)
                arrived = queue.info().get(JobStatus.WAITING)
                if name not in ELSEWHERE and arrived != args.n:
                    raise SystemExit(f"{name}: {arrived} jobs arrived, {args.n} pushed")
                rates[name].append(args.n / took)
        for name in names:
            print(median_line(label(name, args.tasks), rates[name]))
        base = statistics.median(rates["push"])
        print("ratios to push (medians):")
        for name in names[1:]:
            print(f"  {label(name, args.tasks):<28} {statistics.median(rates[name]) / base:6.2f}x")
    finally:
        queue.clear()
        queue.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
