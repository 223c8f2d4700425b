"""I/O-bound jobs with several in flight per worker process, next to the peer libraries.

    python benchmarks/io_bound.py                       # scenario "eight", 2,000 jobs, Redis
    python benchmarks/io_bound.py --scenario all --rounds 3 --json io.json
    python benchmarks/io_bound.py --scenario async200
    python benchmarks/io_bound.py --driver file --no-peers -n 40    # queue-core alone

Each job waits ``--sleep`` seconds (0.02): ``time.sleep`` in a synchronous job,
``await asyncio.sleep`` in queue-core's async job. All ``-n`` jobs are pushed before the
worker starts; every job records its start and its end (io_marks.py), and a run lasts from
the first start to the last end, so the worker's start-up does not count. The ideal is
(jobs in flight) / (sleep): 8 / 0.02 s = 400 jobs/s.

Scenarios:

- ``eight``: 8 jobs in flight in one process: queue-core ``listen --concurrency 8`` with
  a synchronous job (threads) and with an async job (one event loop), Dramatiq
  ``-p 1 -t 8``, Celery ``--pool threads -c 8``, Huey ``-w 8 -k thread``, RQ
  ``worker-pool -n 8`` (RQ cannot run two jobs in one process: 8 workers, each forking a
  work horse per job).
- ``async200``: queue-core's async job with ``--concurrency 200`` (``--async-n`` jobs,
  ideal 200 / 0.02 s = 10,000 jobs/s).
- ``defaults``: each library started without a concurrency flag (Dramatiq's default is
  CPU count x 8 threads, Celery's a prefork pool of CPU count children, Huey one thread,
  RQ one job at a time); queue-core at its default (concurrency 1: the synchronous job one
  at a time, the async job up to 100 side by side) and with ``--concurrency 8``.

Every contender runs once per round, the order rotating from round to round; the table
gives medians over ``--rounds`` and each ratio is the median of the ratios taken within a
round, which is what survives a noisy machine. Peak RSS is the largest sum of VmRSS over
the worker's process tree (the process started and all its descendants), sampled every
``--rss-interval`` seconds from the worker's start to the last job's end; a forked child's
pages shared with its parent count in both.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import io_marks
from benchmarks.contenders import Contender, QueueCore, python_env, spawn, worker_log
from benchmarks.throughput import stop_worker, targets
from queue_core.bounds import ASYNC_CONCURRENCY

SCENARIOS = ("eight", "async200", "defaults")


class IoQueueCore(QueueCore):
    """queue-core's worker (``queue-core listen`` with ``flags``) on jobs that sleep,
    synchronous or async."""

    def __init__(self, settings: dict[str, Any], label: str, flags: tuple[str, ...],
                 in_flight: int, seconds: float, asynchronous: bool = False) -> None:
        from benchmarks.io_app import AsyncSleepJob, SleepJob

        super().__init__(settings, label, worker_args=flags)
        self.in_flight = in_flight
        self.seconds = seconds
        self.job_class: type[SleepJob | AsyncSleepJob] = (
            AsyncSleepJob if asynchronous else SleepJob)

    def push(self, count: int, marks: str, last: int) -> float:
        """In batches of 1,000 (not timed here; only the wait for the worker is)."""
        start = time.perf_counter()
        for first in range(0, count, 1000):
            self.queue.push_many([self.job_class(i, self.seconds, marks)
                                  for i in range(first, min(first + 1000, count))])
        return time.perf_counter() - start

    def command(self) -> list[str]:
        return [sys.executable, "-m", "queue_core", "--app", "benchmarks.io_app:queue",
                "listen", *self.worker_args]

    def worker(self, marks: str, *extra: str) -> subprocess.Popen[bytes]:
        return spawn([*self.command(), *extra],
                     python_env(BENCH_SETTINGS=json.dumps(self.settings)))


def ours(settings: dict[str, Any], scenario: str, seconds: float) -> list[IoQueueCore]:
    if scenario == "eight":
        return [IoQueueCore(settings, "queue-core threads -c 8", ("--concurrency", "8"),
                            8, seconds),
                IoQueueCore(settings, "queue-core asyncio -c 8", ("--concurrency", "8"),
                            8, seconds, asynchronous=True)]
    if scenario == "async200":
        return [IoQueueCore(settings, "queue-core asyncio -c 200", ("--concurrency", "200"),
                            200, seconds, asynchronous=True)]
    return [IoQueueCore(settings, "queue-core (default)", (), 1, seconds),
            IoQueueCore(settings, "queue-core (default) asyncio", (), ASYNC_CONCURRENCY,
                        seconds, asynchronous=True),
            IoQueueCore(settings, "queue-core threads -c 8", ("--concurrency", "8"),
                        8, seconds)]


def peers(driver: str, scenario: str, seconds: float) -> list[Contender]:
    if driver != "redis" or scenario == "async200":
        return []
    from benchmarks.peers import io_redis_peers
    from benchmarks.targets.redis import SERVER
    if scenario == "eight":
        return list(io_redis_peers.eight(SERVER, seconds))
    return list(io_redis_peers.defaults(SERVER, seconds))


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants, from /proc/<pid>/task/<tid>/children."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:  # gone (FileNotFoundError), or going (ProcessLookupError)
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children") as handle:
                    todo.extend(int(child) for child in handle.read().split())
            except OSError:
                pass
    return found


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0  # gone, or a zombie (which has no VmRSS line)


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU time of ``pid`` and of its children it has reaped (or of one of its threads)."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        with open(path) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime, stime, cutime, cstime: fields 14 to 17 of stat(5), 12 to 15 after the name
    if thread is not None:
        return (int(fields[11]) + int(fields[12])) / TICK
    return sum(int(value) for value in fields[11:15]) / TICK


def tree_cpu(root: int) -> tuple[float, float]:
    """CPU seconds of the whole tree, and of the root's main thread alone."""
    return sum(cpu_seconds(pid) for pid in process_tree(root)), cpu_seconds(root, root)


class RssSampler(threading.Thread):
    """Samples the summed VmRSS of a process tree until stopped; keeps the peak."""

    def __init__(self, root: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak_kb = 0
        self.peak_procs = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            sizes = [rss_kb(pid) for pid in process_tree(self.root)]
            live = [size for size in sizes if size]
            self.peak_kb = max(self.peak_kb, sum(live))
            self.peak_procs = max(self.peak_procs, len(live))
            self.samples += 1
            if self._stop_event.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def measure(contender: Contender, n: int, mark_dir: str, args: argparse.Namespace
            ) -> dict[str, Any]:
    """Push ``n`` jobs, start the worker, wait for every job's mark, stop the worker."""
    io_marks.reset(mark_dir)
    contender.prepare()
    contender.push(n, mark_dir, n - 1)
    tail = io_marks.Tail(mark_dir)
    worker = contender.worker(mark_dir)
    sampler = RssSampler(worker.pid, args.rss_interval)
    sampler.start()
    begun: tuple[float, float, float] | None = None
    try:
        deadline = time.monotonic() + args.timeout
        while tail.count() < n:
            if begun is None and tail.lines:
                begun = (time.monotonic(), *tree_cpu(worker.pid))
            if worker.poll() is not None:
                raise RuntimeError(f"{contender.name} worker exited early:\n"
                                   f"{worker_log(worker)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{contender.name}: {tail.lines} of {n} jobs in "
                                   f"{args.timeout:.0f}s:\n{worker_log(worker)}")
            time.sleep(0.02)
        ended = (time.monotonic(), *tree_cpu(worker.pid))
    finally:
        sampler.stop()
        stop_worker(worker)
    span = io_marks.span(mark_dir, in_flight(contender))
    if span.jobs != n or span.lines != n:
        raise RuntimeError(f"{contender.name}: {span.lines} marks for {span.jobs} distinct "
                           f"jobs, expected {n}")
    return {"rate": n / span.seconds, "seconds": span.seconds, "rss_mb": sampler.peak_kb / 1024,
            "procs": sampler.peak_procs, "job_ms": span.mean_job * 1000,
            "refill_ms": None if span.refill is None else span.refill * 1000,
            "samples": sampler.samples, **cpu_use(begun, ended)}


def cpu_use(begun: tuple[float, float, float] | None, ended: tuple[float, float, float]
            ) -> dict[str, float]:
    """The worker's CPU while its jobs ran (from the first mark seen to the last), in % of
    one core: the whole process tree, and the first process's main thread."""
    if begun is None or ended[0] - begun[0] < 0.2:
        return {}
    wall = ended[0] - begun[0]
    return {"cpu_pct": 100 * (ended[1] - begun[1]) / wall,
            "main_thread_cpu_pct": 100 * (ended[2] - begun[2]) / wall}


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def in_flight(contender: Contender) -> int:
    return int(getattr(contender, "in_flight", 1))


def run_scenario(scenario: str, driver: str, args: argparse.Namespace, workdir: str
                 ) -> dict[str, Any]:
    target = targets()[driver]
    settings = {**target.settings(workdir), "channel": "io"}
    mine = ours(settings, scenario, args.sleep)
    others: list[Contender] = []
    if not args.no_peers:
        for peer in peers(driver, scenario, args.sleep):
            reason = peer.available()
            if reason:
                print(f"  (skipping {peer.name}: {reason})")
            else:
                others.append(peer)
    contenders: list[Contender] = [*mine, *others]
    if args.only:
        contenders = [c for c in contenders if any(w in c.name for w in args.only)]
    n = args.async_n if scenario == "async200" else args.n
    mark_dir = os.path.join(workdir, "marks")
    hook = getattr(target, "after_prepare", None)

    runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in contenders}
    errors: dict[str, str] = {}
    print(f"scenario {scenario}: {n:,} jobs of {args.sleep * 1000:g} ms, "
          f"{args.rounds} round(s), driver {driver}", flush=True)
    for round_number in range(args.rounds):
        shift = round_number % len(contenders) if contenders else 0
        for contender in contenders[shift:] + contenders[:shift]:
            if contender.name in errors:
                continue
            try:
                if hook is not None:
                    contender.prepare()
                    hook()
                result = measure(contender, n, mark_dir, args)
            except Exception as error:  # one library's failure must not hide the others
                errors[contender.name] = f"{type(error).__name__}: {error}"
                print(f"  round {round_number + 1} {contender.name}: FAILED\n"
                      f"{errors[contender.name]}", file=sys.stderr, flush=True)
                continue
            runs[contender.name].append(result)
            print(f"  round {round_number + 1} {contender.name:<30} {result['rate']:>9,.0f} "
                  f"jobs/s  {result['rss_mb']:>6.1f} MB  {result['procs']:>2} proc  "
                  f"CPU {fmt(result.get('cpu_pct'), '.0f'):>3}% (main thread "
                  f"{fmt(result.get('main_thread_cpu_pct'), '.0f')}%)  "
                  f"job {result['job_ms']:.2f} ms  refill {fmt(result['refill_ms'], '.2f')} ms",
                  flush=True)
    for contender in contenders:
        contender.close()

    figures: dict[str, Any] = {}
    for contender in contenders:
        done = runs[contender.name]
        entry: dict[str, Any] = {
            "in_flight": in_flight(contender),
            "ideal": in_flight(contender) / args.sleep,
            "command": command_line(contender),
            "runs": done,
        }
        if contender.name in errors:
            entry["error"] = errors[contender.name]
        if done:
            entry["rate"] = statistics.median(r["rate"] for r in done)
            entry["percent_ideal"] = 100 * entry["rate"] / entry["ideal"]
            entry["rss_mb"] = statistics.median(r["rss_mb"] for r in done)
            entry["procs"] = max(r["procs"] for r in done)
            cpu = [r["cpu_pct"] for r in done if "cpu_pct" in r]
            entry["cpu_pct"] = statistics.median(cpu) if cpu else None
            entry["job_ms"] = statistics.median(r["job_ms"] for r in done)
            refills = [r["refill_ms"] for r in done if r["refill_ms"] is not None]
            entry["refill_ms"] = statistics.median(refills) if refills else None
        figures[contender.name] = entry
    ratios: dict[str, dict[str, float]] = {}
    for base in mine:
        if base.name not in runs:
            continue
        for other in contenders:
            if other is base or other.name not in runs:
                continue
            pairs = [a["rate"] / b["rate"]
                     for a, b in zip(runs[base.name], runs[other.name], strict=False)]
            if pairs:
                ratios.setdefault(base.name, {})[other.name] = statistics.median(pairs)
    print_table(scenario, figures, ratios, [c.name for c in mine if c in contenders])
    return {"n": n, "contenders": figures, "ratios": ratios}


def command_line(contender: Contender) -> str:
    command = getattr(contender, "command", None)
    if command is None:
        return ""
    words = [os.path.basename(word) if word == sys.executable or word.startswith(
        os.path.dirname(sys.executable) + os.sep) else word for word in command()]
    return " ".join(words)


def print_table(scenario: str, figures: dict[str, Any], ratios: dict[str, dict[str, float]],
                mine: list[str]) -> None:
    short = {name: f"/{index + 1}" for index, name in enumerate(mine)}
    head = (f"  {'contender':<32}{'in flight':>10}{'jobs/s':>9}{'% ideal':>9}"
            f"{'peak RSS MB':>13}{'procs':>7}{'CPU %':>7}{'job ms':>8}{'refill ms':>11}")
    head += "".join(f"{'ours' + short[name]:>10}" for name in mine)
    print(f"{scenario}: medians. ideal = in flight / sleep; CPU % = the worker tree's CPU "
          "while its jobs ran (100 = one core);\n  job ms = mean job from start to end; "
          "refill ms = median time a slot stays empty between two jobs;\n  ours/k = "
          "queue-core row k's jobs/s over this row's (median of per-round ratios)")
    print(head)
    for name, entry in figures.items():
        if "rate" not in entry:
            print(f"  {name:<32} FAILED: {entry.get('error', 'no run').splitlines()[0]}")
            continue
        line = (f"  {name:<32}{entry['in_flight']:>10}{entry['rate']:>9,.0f}"
                f"{entry['percent_ideal']:>8.1f}%{entry['rss_mb']:>13.1f}{entry['procs']:>7}"
                f"{fmt(entry['cpu_pct'], '.0f'):>7}{entry['job_ms']:>8.2f}"
                f"{fmt(entry['refill_ms'], '.2f'):>11}")
        for base in mine:
            ratio = ratios.get(base, {}).get(name)
            cell = "-" if ratio is None else f"{ratio:.2f}x"
            line += f"{cell:>10}"
        print(line)
    for index, name in enumerate(mine):
        print(f"  ours/{index + 1} = {name}")


def git_head() -> str:
    from benchmarks.contenders import ROOT
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="eight", choices=[*SCENARIOS, "all"])
    parser.add_argument("--driver", default="redis", choices=sorted(targets()),
                        help="queue-core's driver (the peers run on Redis only)")
    parser.add_argument("-n", type=int, default=2000, help="jobs per run (eight, defaults)")
    parser.add_argument("--async-n", type=int, default=30000,
                        help="jobs per run of async200 (30,000: 3 s at the ideal)")
    parser.add_argument("--sleep", type=float, default=0.02, help="seconds each job waits")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true", help="measure queue-core only")
    parser.add_argument("--only", action="append",
                        help="run only the contenders whose name contains this (repeatable)")
    parser.add_argument("--rss-interval", type=float, default=0.05,
                        help="seconds between two samples of the worker's RSS")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds one run may take")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.n < 1 or args.async_n < 1 or args.rounds < 1 or args.sleep <= 0:
        parser.error("-n, --async-n and --rounds must be at least 1, --sleep above 0")

    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    meta: dict[str, Any] = {
        "time": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git_head": git_head(), "python": platform.python_version(), "cpus": os.cpu_count(),
        "load_start": os.getloadavg(), "driver": args.driver, "sleep": args.sleep,
        "rounds": args.rounds, "rss": f"peak of summed VmRSS over the worker's process "
                                      f"tree, sampled every {args.rss_interval}s"}
    print(f"io_bound: driver={args.driver} sleep={args.sleep}s rounds={args.rounds} "
          f"python={meta['python']} cpus={meta['cpus']} git={meta['git_head']} "
          f"load={meta['load_start'][0]:.2f} at {meta['time']}")
    print(f"  peak RSS: {meta['rss']}")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-io-") as workdir:
        for scenario in scenarios:
            results[scenario] = run_scenario(scenario, args.driver, args, workdir)
    meta["load_end"] = os.getloadavg()
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in meta['load_end'])}")
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "scenarios": results}, indent=2))
    failed = any("error" in entry for result in results.values()
                 for entry in result["contenders"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
