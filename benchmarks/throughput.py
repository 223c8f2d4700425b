"""Throughput of queue-core per driver, side by side with the peer libraries.

    python benchmarks/throughput.py --driver file -n 10000

For each contender: push one at a time, push_many (where offered) and processing by one
real worker process (concurrency 1), each repeated ``--repeat`` times; the median is
printed with every run. Processing is measured round by round, every contender once per
round, and ratios are taken between figures of the same run, which is what survives a
noisy machine. ``--code DIR`` adds queue-core as checked out in DIR (another commit) as
one more contender, to compare old and new code next to the same peer. For drivers that
keep a backlog, the per-job cost of processing a backlog of 10,000 and of 100,000 jobs is
compared as well.

``--metrics`` adds queue-core's worker with Prometheus metrics on (``--metrics-port``)
as one more contender, and ``--worker-args "ARGS"`` one with any other listen arguments
(a flag being measured); each is compared with the same worker without them, round by
round, or with the worker given ``--base-args "ARGS"``: ``--metrics --base-args
'--heartbeat 0'`` compares metrics and heartbeats (on by default) with both off.
``--rate-limit RATE`` (with ``--bucket-size N``) adds one whose queue settings set that
rate limit, compared the same way: ``--rate-limit 1000000/s`` prices the limiter itself.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import marks
from benchmarks.contenders import Contender, QueueCore, worker_log
from benchmarks.other_code import OtherCode


def targets() -> dict[str, ModuleType]:
    """--driver choices: the modules of benchmarks/targets/."""
    from benchmarks import targets as package
    return {info.name: importlib.import_module(f"{package.__name__}.{info.name}")
            for info in pkgutil.iter_modules(package.__path__)}


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    log = getattr(process, "log_path", None)
    if log and os.path.exists(log):
        os.unlink(log)


def drain(contender: Contender, count: int, mark_dir: str, timeout: float) -> None:
    """Start one worker on the pushed jobs and wait for the last one to end."""
    marks.reset(mark_dir)
    worker = contender.worker(mark_dir)
    try:
        deadline = time.monotonic() + timeout
        while marks.read(mark_dir, "end") is None:
            if worker.poll() is not None:
                raise RuntimeError(f"{contender.name} worker exited early:\n"
                                   f"{worker_log(worker)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{contender.name} did not finish {count} jobs in "
                                   f"{timeout:.0f}s:\n{worker_log(worker)}")
            time.sleep(0.01)
    finally:
        stop_worker(worker)


def process_rate(contender: Contender, count: int, mark_dir: str, timeout: float) -> float:
    contender.prepare()
    contender.push(count, mark_dir, count - 1)
    drain(contender, count, mark_dir, timeout)
    start, end = marks.read(mark_dir, "start"), marks.read(mark_dir, "end")
    assert start is not None and end is not None
    return count / max(end - start, 1e-9)


def backlog_cost(contender: QueueCore, backlog: int, mark_dir: str, timeout: float) -> float:
    """Microseconds per job to drain a backlog, from the worker's start (before its first
    reserve, so every scan of the backlog counts) to the end of the last job."""
    contender.prepare()
    contender.push_many(backlog, mark_dir, backlog - 1)
    drain(contender, backlog, mark_dir, timeout)
    started = marks.read(mark_dir, "worker")
    end = marks.read(mark_dir, "end")
    assert started is not None and end is not None
    return (end - started) / backlog * 1e6


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _then(first: Any, second: Any) -> Any:
    def both() -> None:
        first()
        second()
    return both


def plain_args(contender: Contender) -> tuple[str, ...]:
    """The worker arguments of the contender flavours are compared with."""
    return tuple(getattr(contender, "worker_args", ()))


def median_line(label: str, values: list[float], unit: str = "jobs/s") -> str:
    runs = ", ".join(f"{v:,.0f}" for v in values)
    return f"  {label:<30} {statistics.median(values):>12,.0f} {unit}   (runs: {runs})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    found = targets()
    parser.add_argument("--driver", required=True, choices=sorted(found))
    parser.add_argument("-n", type=int, default=10000, help="jobs per measurement")
    parser.add_argument("--peer-n", type=int, default=None,
                        help="jobs per measurement for the peers (default: -n); a rate "
                             "does not depend on it, and RQ at ~50 jobs/s would take hours")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true", help="measure queue-core only")
    parser.add_argument("--backlog", default="10000,100000",
                        help="backlog sizes to compare (comma-separated; '' to skip)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--isolate", nargs="?", const="fork", choices=["fork", "exec"],
                        help="also measure queue-core with each job in a child process")
    parser.add_argument("--workers", type=int, default=None,
                        help="also measure queue-core (and the peers) with N worker processes")
    parser.add_argument("--code", action="append", default=[], metavar="DIR",
                        help="also measure queue-core as checked out in DIR (repeatable)")
    parser.add_argument("--metrics", action="store_true",
                        help="also measure queue-core's worker with Prometheus metrics on "
                             "(listen --metrics-port) and print its ratio to the worker "
                             "without them")
    parser.add_argument("--base-args", default="", metavar="ARGS",
                        help="listen arguments of the worker the flavours are compared "
                             "with instead of the plain one, e.g. --base-args='--heartbeat 0' "
                             "with --metrics: metrics and heartbeats on against both off")
    parser.add_argument("--worker-args", action="append", default=[], metavar="ARGS",
                        help="also measure queue-core's worker with these extra listen "
                             "arguments, e.g. --worker-args='--heartbeat 5' (repeatable)")
    parser.add_argument("--rate-limit", metavar="RATE",
                        help="also measure queue-core with this queue rate limit set "
                             "(settings 'rate', e.g. 1000000/s) and print its ratio to the "
                             "worker without it")
    parser.add_argument("--bucket-size", type=int, default=None, metavar="N",
                        help="the 'bucket_size' of --rate-limit (default: the queue's, 5)")
    args = parser.parse_args(argv)
    target = found[args.driver]

    workdir = tempfile.mkdtemp(prefix=f"bench-{args.driver}-")
    mark_dir = os.path.join(workdir, "marks")
    ours = QueueCore(target.settings(workdir))
    contenders: list[Contender] = [ours]
    variant: tuple[str, ...] = ()
    if args.isolate:
        variant += ("--isolate", args.isolate)
    if args.workers:
        variant += ("--workers", str(args.workers))
    if variant:
        label = "queue-core " + " ".join(variant)
        contenders.append(QueueCore(target.settings(workdir), label, worker_args=variant))
    base = tuple(shlex.split(args.base_args))
    if base:
        contenders.append(QueueCore(target.settings(workdir),
                                    "queue-core " + " ".join((*variant, *base)),
                                    worker_args=(*variant, *base)))
    # Flavours: our worker with extra arguments, each compared with the same worker
    # without them (the --isolate/--workers variant when there is one), or with
    # --base-args instead of them.
    flavours: dict[str, str] = {}
    plain = contenders[-1]
    extras = [shlex.split(text) for text in args.worker_args]
    if args.metrics:
        extras.append(["--metrics-port", str(free_port())])
    for extra in extras:
        label = " ".join(["queue-core", *variant, "+metrics" if extra[:1] == ["--metrics-port"]
                          else " ".join(extra)])
        contenders.append(QueueCore(target.settings(workdir), label,
                                    worker_args=(*variant, *extra)))
        flavours[label] = plain.name
    if args.rate_limit:
        limited = {**target.settings(workdir), "rate": args.rate_limit}
        label = " ".join(["queue-core", *variant, f"+rate {args.rate_limit}"])
        if args.bucket_size is not None:
            limited["bucket_size"] = args.bucket_size
            label += f" bucket {args.bucket_size}"
        contenders.append(QueueCore(limited, label, worker_args=plain_args(plain)))
        flavours[label] = plain.name
    for number, code in enumerate(args.code):
        other_dir = os.path.join(workdir, f"code{number}")
        contenders.append(OtherCode(code, target.settings(other_dir), other_dir))
    if not args.no_peers and not args.isolate:
        for peer in target.peers(workdir, **({"workers": args.workers} if args.workers else {})):
            reason = peer.available()
            if reason:
                print(f"  (skipping {peer.name}: {reason})")
            else:
                contenders.append(peer)

    hook = getattr(target, "after_prepare", None)
    if hook is not None:
        for contender in contenders:
            contender.prepare = _then(contender.prepare, hook)  # type: ignore[method-assign]

    peer_n = args.peer_n or args.n
    print(f"driver={args.driver} n={args.n} peer-n={peer_n} repeat={args.repeat} "
          f"python={sys.version.split()[0]} cpus={os.cpu_count()}")
    figures: dict[str, dict[str, float]] = {}

    def jobs_for(contender: Contender) -> int:
        return int(args.n) if isinstance(contender, (QueueCore, OtherCode)) else peer_n

    for contender in contenders:
        n = jobs_for(contender)
        print(f"{contender.name} ({n:,} jobs per measurement):")
        result: dict[str, float] = {}
        pushes = []
        for _ in range(args.repeat):
            contender.prepare()
            pushes.append(n / contender.push(n, mark_dir, n - 1))
        print(median_line("push (one at a time)", pushes))
        result["push"] = statistics.median(pushes)
        contender.prepare()
        if contender.push_many(1, mark_dir, 0) is not None:
            many = []
            for _ in range(args.repeat):
                contender.prepare()
                took = contender.push_many(n, mark_dir, n - 1)
                assert took is not None
                many.append(n / took)
            print(median_line("push_many", many))
            result["push_many"] = statistics.median(many)
        figures[contender.name] = result
    rates: dict[str, list[float]] = {contender.name: [] for contender in contenders}
    for _ in range(args.repeat):
        for contender in contenders:
            rates[contender.name].append(
                process_rate(contender, jobs_for(contender), mark_dir, args.timeout))
    print("process (one worker process unless said), round by round:")
    for contender in contenders:
        label = contender.name if contender.workers == 1 else (
            f"{contender.name} ({contender.workers} worker processes)")
        print(median_line(label, rates[contender.name]))
        figures[contender.name]["process"] = statistics.median(rates[contender.name])
        if contender is not ours:
            contender.close()
    if variant and args.isolate:
        per_job = 1e6 / figures[contenders[1].name]["process"] - 1e6 / figures[ours.name]["process"]
        print(f"isolation ({args.isolate}) adds {per_job:,.0f} us per job")

    if len(figures) > 1:
        print("ratios (same run):")
        for name, result in figures.items():
            if name == ours.name:
                continue
            if name.startswith(("queue-core ", "queue-core@")) and name not in flavours:
                ratio = result["process"] / figures[ours.name]["process"]
                print(f"  process  {name} / queue-core      {ratio:6.2f}x")
                continue
            if name in flavours:
                continue
            base = next((n for n in figures if n.startswith("queue-core ")
                         and n not in flavours), ours.name)
            for metric in ("push", "process"):
                if metric in result:
                    mine = figures[base if metric == "process" else ours.name][metric]
                    print(f"  {metric:<8} queue-core / {name:<22} {mine / result[metric]:6.2f}x")
            for other in (n for n in figures if n.startswith("queue-core@")):
                ratio = figures[other]["process"] / result["process"]
                print(f"  process  {other} / {name:<22} {ratio:6.2f}x")

    if flavours:
        print("process, median of the ratios within each round:")
        for name, base in flavours.items():
            ratio = statistics.median(
                a / b for a, b in zip(rates[name], rates[base], strict=True))
            figures[name][f"process_ratio_to {base}"] = ratio
            cost = 1e6 / figures[name]["process"] - 1e6 / figures[base]["process"]
            print(f"  {name:<30} / {base:<24} {ratio:6.2f}x  ({cost:+,.1f} us per job)")

    others = [c.name for c in contenders if isinstance(c, OtherCode)]
    if others:
        # One slow moment of the machine moves a whole round: the ratio within each round,
        # then their median, is what the other checkouts are judged by.
        print("process, median of the ratios within each round:")
        peers = [c.name for c in contenders if not isinstance(c, (QueueCore, OtherCode))]
        pairs = [(other, ours.name) for other in others] + [
            (left, peer) for peer in peers for left in (ours.name, *others)]
        for left, right in pairs:
            ratio = statistics.median(
                a / b for a, b in zip(rates[left], rates[right], strict=True))
            figures[left][f"process_ratio_to {right}"] = ratio
            print(f"  {left:<20} / {right:<24} {ratio:6.2f}x")

    sizes = [int(s) for s in args.backlog.split(",") if s.strip()]
    if getattr(target, "BACKLOG", False) and sizes:
        print("backlog (queue-core, microseconds per job while draining it):")
        costs: dict[int, float] = {}
        for size in sizes:
            runs = [backlog_cost(ours, size, mark_dir, args.timeout) for _ in range(args.repeat)]
            costs[size] = statistics.median(runs)
            print(median_line(f"{size:,} waiting", runs, unit="us/job"))
        if len(costs) > 1:
            small, large = costs[min(costs)], costs[max(costs)]
            print(f"  ratio {max(costs):,} / {min(costs):,} waiting: {large / small:.2f}x")
        figures["backlog_us_per_job"] = {str(k): v for k, v in costs.items()}
    if hasattr(target, "extra"):
        target.extra(args, ours, figures)
    ours.close()
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
