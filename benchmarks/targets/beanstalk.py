"""The beanstalk driver, against a raw greenstalk reserve+delete loop in the same run.

Uses the beanstalkd at $BENCH_BEANSTALK (host:port), or starts one on a free port."""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import socket
import statistics
import subprocess
import time
from typing import Any

from benchmarks.contenders import Contender, QueueCore

BACKLOG = False
_address: list[tuple[str, int]] = []


def address() -> tuple[str, int]:
    if not _address:
        given = os.environ.get("BENCH_BEANSTALK")
        if given:
            host, _, port = given.rpartition(":")
            _address.append((host or "127.0.0.1", int(port)))
        else:
            binary = shutil.which("beanstalkd")
            if binary is None:
                raise SystemExit("beanstalkd is not on PATH (apt-get install beanstalkd)")
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            process = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(port)])
            atexit.register(process.kill)
            time.sleep(0.3)
            _address.append(("127.0.0.1", port))
    return _address[0]


def settings(workdir: str) -> dict[str, Any]:
    host, port = address()
    return {"driver": f"beanstalk://{host}:{port}", "channel": "bench"}


def peers(workdir: str, workers: int = 1) -> list[Contender]:
    return []


def raw_loop(count: int, body: bytes) -> float:
    """greenstalk alone: put ``count`` jobs, then reserve and delete them; jobs/s."""
    import greenstalk
    client = greenstalk.Client(address(), encoding=None, use="bench-raw", watch="bench-raw")
    for _ in range(count):
        client.put(body)
    start = time.perf_counter()
    for _ in range(count):
        client.delete(client.reserve(0))
    elapsed = time.perf_counter() - start
    client.close()
    return count / elapsed


def extra(args: argparse.Namespace, ours: QueueCore, figures: dict[str, Any]) -> None:
    """The raw loop, each run paired with a fresh run of our worker: the loop waits on two
    round trips per job and suffers most from a busy machine, so only figures taken
    side by side make a fair ratio."""
    import tempfile

    from benchmarks.app import BenchJob
    from benchmarks.throughput import process_rate
    body = ours.queue.serializer.dumps(BenchJob(1, args.n - 1, "/tmp/marks"))
    mark_dir = tempfile.mkdtemp(prefix="bench-beanstalk-pairs-")
    pairs = [(process_rate(ours, args.n, mark_dir, args.timeout), raw_loop(args.n, body))
             for _ in range(args.repeat)]
    mine = statistics.median(p[0] for p in pairs)
    raw = statistics.median(p[1] for p in pairs)
    ratios = [p[0] / p[1] for p in pairs]
    print("queue-core worker against the raw greenstalk reserve+delete loop, run in pairs:")
    print(f"  {'queue-core worker process':<28} {mine:>12,.0f} jobs/s   "
          f"(runs: {', '.join(f'{p[0]:,.0f}' for p in pairs)})")
    print(f"  {'raw in-process loop':<28} {raw:>12,.0f} jobs/s   "
          f"(runs: {', '.join(f'{p[1]:,.0f}' for p in pairs)})")
    print(f"  worker / raw loop, median of pairs {statistics.median(ratios):6.0%}   "
          f"(pairs: {', '.join(f'{r:.0%}' for r in ratios)}; target: at least 70%)")
    figures["raw_greenstalk"] = {"process": raw, "paired_worker": mine,
                                 "ratio": statistics.median(ratios)}
