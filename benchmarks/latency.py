"""Latency from push to the start of the job, with an idle worker, per driver.

    python benchmarks/latency.py --driver redis [-n 200] [--gap 0.05]
    python benchmarks/latency.py --driver all --json latency.json
    python benchmarks/latency.py --driver all --code /path/to/other/checkout

One real worker process (``queue-core listen``, the target's default settings) is started
and warmed up with one job; then ``-n`` jobs are pushed one at a time, ``--gap`` seconds
apart. Each job records the wall-clock time it started; its latency is that time minus the
time taken just before push() was called. p50, p90, p99 and max are nearest-rank
percentiles in milliseconds. A job that never runs fails the run.

``--code DIR`` runs queue_core (and its drivers) from another checkout, in the worker and in
the pushing process alike, to measure old code with today's benchmark; the worker reports
where its code came from and the run stops if it is not DIR.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
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
from benchmarks.contenders import ROOT, code_env, python_env, worker_log
from benchmarks.throughput import stop_worker, targets

PERCENTILES = (50, 90, 99)


def use_code(code: str) -> None:
    """Import queue_core from ``code`` in this process. The benchmarks package is already
    imported from this checkout, so ``code``'s own benchmarks/ folder cannot replace it."""
    if "queue_core" in sys.modules:
        raise SystemExit("--code: queue_core was imported before the code path was set")
    sys.path.insert(0, code)


def check_code(where: str, paths: dict[str, Any], root: str) -> None:
    """Stop the run unless every file in ``paths`` lies under ``root``."""
    base = os.path.realpath(root) + os.sep
    files = [paths["queue_core"], *paths["drivers"].values()]
    stray = [f for f in files if not os.path.realpath(f).startswith(base)]
    if stray:
        raise SystemExit(f"{where} did not run the code under {root}: {stray}")


def pusher_code() -> dict[str, Any]:
    from benchmarks.latency_app import code_paths
    return code_paths()


def git_state(root: str) -> dict[str, Any]:
    """HEAD and the uncommitted files of the code measured, for the record."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True)
        return done.stdout.rstrip() if done.returncode == 0 else ""
    changed = git("status", "--porcelain", "--", "queue_core", "drivers").splitlines()
    return {"head": git("rev-parse", "--short", "HEAD"), "changed": changed}


def start_worker(settings: dict[str, Any], mark_dir: str, workdir: str,
                 code: str | None) -> subprocess.Popen[bytes]:
    """``queue-core listen`` in a new session, run from ``workdir`` (see code_env)."""
    extra = {"BENCH_SETTINGS": json.dumps(settings), "BENCH_MARKS": mark_dir}
    env = python_env(**extra) if code is None else code_env(code, workdir, **extra)
    command = [sys.executable, "-m", "queue_core", "--app", "benchmarks.latency_app:queue",
               "listen"]
    log_path = os.path.join(workdir, "worker.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, cwd=workdir, stdout=log, stderr=log,
                                   start_new_session=True)
    process.log_path = log_path  # type: ignore[attr-defined]
    return process


def wait_for(path: str, worker: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited before {what}:\n{worker_log(worker)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} after {timeout:.0f}s:\n{worker_log(worker)}")
        time.sleep(0.005)


def percentile(ordered: list[float], p: float) -> float:
    """Nearest rank: the smallest value that ``p`` percent of the values do not exceed."""
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def summary(latencies: list[float], pushes: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    figures: dict[str, Any] = {"jobs": len(ordered)}
    for p in PERCENTILES:
        figures[f"p{p}_ms"] = percentile(ordered, p) * 1000
    figures["max_ms"] = ordered[-1] * 1000
    figures["push_p50_ms"] = percentile(sorted(pushes), 50) * 1000
    figures["push_p99_ms"] = percentile(sorted(pushes), 99) * 1000
    # From the moment push() returned (the job stored as durably as the server makes it)
    # to its start: the wake-up and the reserve, without the push's own commit.
    woken = sorted(latency - push for latency, push in zip(latencies, pushes, strict=True))
    figures["after_push_p50_ms"] = percentile(woken, 50) * 1000
    figures["after_push_p99_ms"] = percentile(woken, 99) * 1000
    return figures


def disk_sync_ms(directory: str, count: int = 200) -> dict[str, float]:
    """p50 and p99 of fdatasync after a small write on this disk, which every durable push
    (a database commit, a broker's confirm) waits for: the floor under their p99."""
    path = os.path.join(directory, "sync-probe")
    took: list[float] = []
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(count):
            os.write(descriptor, b"x" * 512)
            start = time.perf_counter()
            os.fdatasync(descriptor)
            took.append(time.perf_counter() - start)
            time.sleep(0.005)
    finally:
        os.close(descriptor)
        os.unlink(path)
    ordered = sorted(took)
    return {"p50_ms": percentile(ordered, 50) * 1000, "p99_ms": percentile(ordered, 99) * 1000}


def measure(name: str, target: ModuleType, args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.latency_app import LatencyJob, job_mark, mark_name
    from queue_core import create_queue

    workdir = tempfile.mkdtemp(prefix=f"latency-{name}-")
    mark_dir = os.path.join(workdir, "marks")
    os.makedirs(mark_dir)
    settings = {**target.settings(workdir), "channel": "latency"}
    queue = create_queue(settings)
    queue.clear()
    if hasattr(target, "after_prepare"):
        target.after_prepare()
    worker = start_worker(settings, mark_dir, workdir, args.code)
    try:
        wait_for(os.path.join(mark_dir, "code.json"), worker, args.timeout, "worker start")
        with open(os.path.join(mark_dir, "code.json")) as handle:
            worker_code = json.load(handle)
        check_code(f"the {name} worker", worker_code, args.code or str(ROOT))
        # One job end to end, then a pause: the worker is connected, has imported the job
        # module and sits idle in its wait when the measured pushes begin.
        queue.push(LatencyJob(-1, mark_dir))
        wait_for(job_mark(mark_dir, -1), worker, args.timeout, "warm-up job")
        time.sleep(args.settle)

        pushed: list[float] = []
        pushes: list[float] = []
        due = time.monotonic()
        for index in range(args.n):
            time.sleep(max(0.0, due - time.monotonic()))
            before = time.time()
            queue.push(LatencyJob(index, mark_dir))
            pushes.append(time.time() - before)
            pushed.append(before)
            due += args.gap

        deadline = time.monotonic() + args.timeout
        started: dict[int, float] = {}
        while True:
            for index in range(args.n):
                if index not in started:
                    at = marks.read(mark_dir, mark_name(index))
                    if at is not None:
                        started[index] = at
            if len(started) == args.n:
                break
            if worker.poll() is not None or time.monotonic() > deadline:
                missing = sorted(set(range(args.n)) - set(started))
                why = "the worker exited" if worker.poll() is not None else (
                    f"{args.timeout:.0f}s after the last push")
                raise RuntimeError(f"{len(missing)} of {args.n} jobs never ran ({why}); "
                                   f"first missing: {missing[:10]}\n{worker_log(worker)}")
            time.sleep(0.01)
    finally:
        stop_worker(worker)
        queue.clear()
        queue.close()
    latencies = [started[i] - pushed[i] for i in range(args.n)]
    figures = summary(latencies, pushes)
    figures["worker_code"] = worker_code
    figures["latencies_ms"] = [round(value * 1000, 3) for value in latencies]
    return figures


def row(name: str, figures: dict[str, Any]) -> str:
    if "error" in figures:
        return f"  {name:<11} FAILED: {figures['error'].splitlines()[0]}"
    cells = "".join(f"{figures[key]:>9.1f}" for key in
                    ("p50_ms", "p90_ms", "p99_ms", "max_ms", "push_p50_ms",
                     "push_p99_ms", "after_push_p50_ms", "after_push_p99_ms"))
    return f"  {name:<11}{figures['jobs']:>6}{cells}"


HEADER = f"  {'driver':<11}{'jobs':>6}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}" \
         f"{'push50':>9}{'push99':>9}{'after50':>9}{'after99':>9}"
LEGEND = "  (push50/push99: the push() call; after50/after99: from push() returning to the start)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    found = targets()
    parser.add_argument("--driver", required=True, choices=[*sorted(found), "all"])
    parser.add_argument("-n", type=int, default=200, help="jobs measured per driver")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between pushes")
    parser.add_argument("--settle", type=float, default=0.5,
                        help="seconds of idleness after the warm-up job")
    parser.add_argument("--timeout", type=float, default=30,
                        help="seconds to wait for the worker, and for the jobs after the "
                             "last push")
    parser.add_argument("--code", metavar="DIR",
                        help="run queue_core and its drivers from this checkout")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.n < 1 or args.gap < 0:
        parser.error("-n must be at least 1 and --gap at least 0")
    if args.code:
        args.code = os.path.realpath(args.code)
        use_code(args.code)
    root = args.code or str(ROOT)
    mine = pusher_code()
    check_code("the pushing process", mine, root)
    state = git_state(root)
    meta = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "code": root, "git_head": state["head"], "uncommitted": state["changed"],
            "n": args.n, "gap": args.gap, "python": platform.python_version(),
            "cpus": os.cpu_count(), "load": os.getloadavg()[0]}
    print(f"latency push -> job start, idle worker: n={args.n} gap={args.gap}s "
          f"python={meta['python']} cpus={meta['cpus']} load={meta['load']:.2f} "
          f"at {meta['time']}")
    print(f"code: {root} (git {state['head']}; uncommitted in queue_core/ drivers/: "
          f"{' '.join(line[3:] for line in state['changed']) or 'none'})")
    print(f"the pushing process runs {mine['queue_core']}")
    with tempfile.TemporaryDirectory(prefix="latency-disk-") as probe:
        meta["disk_sync"] = disk_sync_ms(probe)
    print(f"this disk, fdatasync of a small write: p50 {meta['disk_sync']['p50_ms']:.1f} ms, "
          f"p99 {meta['disk_sync']['p99_ms']:.1f} ms (what a durable push waits for)")
    print(LEGEND)

    names = sorted(found) if args.driver == "all" else [args.driver]
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        try:
            results[name] = measure(name, found[name], args)
        except Exception as error:  # one driver's failure must not hide the others' figures
            results[name] = {"error": f"{type(error).__name__}: {error}"}
            print(f"{name}: FAILED\n{results[name]['error']}", file=sys.stderr)
            continue
        worker = results[name]["worker_code"]
        print(f"{name}: the worker ran {worker['queue_core']} with "
              f"{', '.join(worker['drivers'].values())}")
        print(HEADER)
        print(row(name, results[name]), flush=True)
    if len(names) > 1:
        print("all drivers:")
        print(HEADER)
        for name in names:
            print(row(name, results[name]))
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "drivers": results}, indent=2))
    return 1 if any("error" in figures for figures in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
