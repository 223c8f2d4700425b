"""Reserve time of the DB driver with and without a large delayed backlog (issue: reserve
must not slow down as delayed rows pile up, as Yii2-queue's DB driver does)."""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from benchmarks.contenders import QueueCore

DELAYED = 100_000
SAMPLE = 2_000


def _reserve_us(queue: Any, count: int) -> float:
    """Microseconds per reserve+ack, in-process, over ``count`` ready jobs."""
    from queue_core.driver import PushRequest
    driver = queue.driver
    driver.push_many([PushRequest(b'{"n": 1}', 60.0)] * count)
    start = time.perf_counter()
    taken = 0
    while (message := driver.reserve(0)) is not None:
        driver.ack(message)
        taken += 1
    driver.flush()
    assert taken == count, (taken, count)
    return (time.perf_counter() - start) / count * 1e6


def measure(args: argparse.Namespace, ours: QueueCore, figures: dict[str, Any]) -> None:
    from queue_core import create_queue
    settings = dict(ours.settings)
    settings["channel"] = "bench-delayed"
    queue = create_queue(settings)
    queue.clear()
    empty = [_reserve_us(queue, SAMPLE) for _ in range(args.repeat)]
    from queue_core.driver import PushRequest
    queue.driver.push_many([PushRequest(b'{"n": 1}', 60.0, 3600.0)] * DELAYED)
    loaded = [_reserve_us(queue, SAMPLE) for _ in range(args.repeat)]
    queue.clear()
    queue.close()
    a, b = statistics.median(empty), statistics.median(loaded)
    print(f"reserve+ack, in-process, {SAMPLE:,} ready jobs (medians of {args.repeat}):")
    print(f"  {'empty table':<28} {a:>10,.0f} us   (runs: {', '.join(f'{r:,.0f}' for r in empty)})")
    print(f"  {f'{DELAYED:,} delayed rows':<28} {b:>10,.0f} us   "
          f"(runs: {', '.join(f'{r:,.0f}' for r in loaded)})")
    print(f"  ratio {b / a:.2f}x   (target: at most 1.5x)")
    figures["reserve_us"] = {"empty": a, "delayed_100k": b}

