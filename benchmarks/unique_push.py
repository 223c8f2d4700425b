"""Pushing with a unique key against a plain push, on one back end, in the same run.

    python benchmarks/unique_push.py --driver redis [-n 10000] [--repeat 5]

Each round empties the queue and pushes ``-n`` no-op jobs from one thread, one
``queue.push`` after the other, to the real back end of ``--driver`` (the targets of
benchmarks/targets/):

- ``plain``: ``queue.push(job)``;
- ``unique``: ``queue.push(job, unique_key=...)``, a new key per job, so that each push
  checks its key, takes it and stores the job (the cost a producer pays);
- ``duplicate``: ``-n`` more pushes of keys already held: each finds the holder and
  stores nothing.

The figures alternate within each round, so drift hits them alike. The median of
``--repeat`` rounds is printed with every round, then the ratios to ``plain`` (the issue
asks for ``unique`` at 80% or more).

On a machine other programs share, wall-clock rates swing by a factor of three from one
round to the next. On Redis the run also prints what each push costs in CPU, which load
barely moves: the producer's own (process time) and the server's (the script's
microseconds from ``INFO commandstats``, read before and after), and the ratio of
their sums.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.app import BenchJob
from benchmarks.throughput import median_line, targets
from queue_core import JobStatus, Queue, create_queue


def server_usec(queue: Queue) -> float | None:
    """Microseconds the Redis server has spent in EVALSHA and EVAL so far (None: not
    Redis)."""
    if queue.driver.name != "redis":
        return None
    stats = queue.driver._connector.client.info("commandstats")  # type: ignore[attr-defined]
    return float(sum(stats.get(f"cmdstat_{name}", {}).get("usec", 0)
                     for name in ("evalsha", "eval")))


def plain(queue: Queue, batch: list[BenchJob], keys: list[str]) -> float:
    start = time.perf_counter()
    for job in batch:
        queue.push(job)
    return time.perf_counter() - start


def unique(queue: Queue, batch: list[BenchJob], keys: list[str]) -> float:
    start = time.perf_counter()
    for job, key in zip(batch, keys, strict=True):
        queue.push(job, unique_key=key)
    return time.perf_counter() - start


def duplicate(queue: Queue, batch: list[BenchJob], keys: list[str]) -> float:
    """Times the pushes of held keys (the keys are taken first, untimed)."""
    held = keys[:100]
    for job, key in zip(batch, held, strict=False):
        queue.push(job, unique_key=key)
    start = time.perf_counter()
    for index, job in enumerate(batch):
        queue.push(job, unique_key=held[index % len(held)])
    return time.perf_counter() - start


MEASURES = {"plain": plain, "unique": unique, "duplicate": duplicate}
LABELS = {"plain": "push", "unique": "push(unique_key=new key)",
          "duplicate": "push(unique_key=held key)"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    found = targets()
    parser.add_argument("--driver", default="redis", choices=sorted(found))
    parser.add_argument("-n", type=int, default=10000, help="jobs per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per figure")
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix=f"bench-unique-{args.driver}-")
    marks = os.path.join(workdir, "marks")
    settings = found[args.driver].settings(workdir)
    # A channel of its own: another benchmark on the same server must not add to ours.
    settings["channel"] = f"bench-unique-{os.getpid()}"
    queue = create_queue(settings)
    if not queue.capabilities.unique:
        raise SystemExit(f"the {args.driver} driver does not support unique jobs")
    print(f"driver={args.driver} n={args.n} repeat={args.repeat} "
          f"python={sys.version.split()[0]} cpus={os.cpu_count()}")
    batch = [BenchJob(index, args.n - 1, marks) for index in range(args.n)]
    rates: dict[str, list[float]] = {name: [] for name in MEASURES}
    costs: dict[str, list[float]] = {name: [] for name in MEASURES}
    """Microseconds of CPU per push: the producer's and the server's."""
    expected = {"plain": args.n, "unique": args.n, "duplicate": min(100, args.n)}
    try:
        for turn in range(args.repeat):
            keys = [f"bench:{turn}:{index}" for index in range(args.n)]
            for name, measure in MEASURES.items():
                queue.clear()
                before, cpu = server_usec(queue), time.process_time()
                took = measure(queue, batch, keys)
                cpu = time.process_time() - cpu
                after = server_usec(queue)
                if before is not None and after is not None:
                    costs[name].append((cpu * 1e6 + after - before) / args.n)
                arrived = queue.info().get(JobStatus.WAITING)
                if arrived != expected[name]:
                    raise SystemExit(f"{name}: {arrived} jobs stored, {expected[name]} "
                                     "expected")
                rates[name].append(args.n / took)
        for name in MEASURES:
            print(median_line(LABELS[name], rates[name]))
        base = statistics.median(rates["plain"])
        print("ratios to push (medians):")
        for name in ("unique", "duplicate"):
            print(f"  {LABELS[name]:<30} {statistics.median(rates[name]) / base:6.2f}x")
        if costs["plain"]:
            print("CPU per push, producer and server (microseconds, medians; the duplicate "
                  "figure includes the untimed pushes that take its keys):")
            for name in MEASURES:
                print(f"  {LABELS[name]:<30} {statistics.median(costs[name]):8.1f}")
            base_cost = statistics.median(costs["plain"])
            print("pushes per CPU second, ratio to push:")
            for name in ("unique", "duplicate"):
                print(f"  {LABELS[name]:<30} "
                      f"{base_cost / statistics.median(costs[name]):6.2f}x")
    finally:
        queue.clear()
        queue.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
