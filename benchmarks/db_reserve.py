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
    """Microseconds per reserve+ack, in-process, over ``count`` ready jobs, as a worker
    takes them: through its consumer, each ack carried by the next reserve."""
    from queue_core.driver import PushRequest
    queue.driver.push_many([PushRequest(b'{"n": 1}', 60.0)] * count)
    _settle(queue)
    consumption = queue.consume()
    start = time.perf_counter()
    taken = 0
    while (message := consumption.next(0)) is not None:
        consumption.ack(message)
        taken += 1
    consumption.close()
    assert taken == count, (taken, count)
    return (time.perf_counter() - start) / count * 1e6


def _settle(queue: Any) -> None:
    """Leave no bulk-load debt to be paid inside a measurement: SQLite would checkpoint
    its WAL, and on PostgreSQL (autovacuum is off here) dead rows of earlier samples stay."""
    driver = queue.driver
    with driver.engine.connect() as conn:
        if driver.dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        elif driver.dialect == "postgresql":
            conn.connection.driver_connection.autocommit = True
            conn.exec_driver_sql(f"VACUUM ANALYZE {driver.table}")


def _queue(ours: QueueCore, table: str) -> Any:
    from queue_core import create_queue
    driver = ours.settings["driver"]
    driver = dict(driver) if isinstance(driver, dict) else {"url": driver}
    queue = create_queue({**ours.settings, "driver": {**driver, "table": table}})
    queue.clear()
    return queue


def measure(args: argparse.Namespace, ours: QueueCore, figures: dict[str, Any]) -> None:
    from queue_core.driver import PushRequest
    # Two tables, sampled in turn, so that a drift of the machine hits both alike.
    empty_queue, loaded_queue = _queue(ours, "bench_empty"), _queue(ours, "bench_delayed")
    loaded_queue.driver.push_many([PushRequest(b'{"n": 1}', 60.0, 3600.0)] * DELAYED)
    empty: list[float] = []
    loaded: list[float] = []
    for _ in range(args.repeat):
        empty.append(_reserve_us(empty_queue, SAMPLE))
        loaded.append(_reserve_us(loaded_queue, SAMPLE))
    for queue in (empty_queue, loaded_queue):
        queue.clear()
        queue.close()
    a, b = statistics.median(empty), statistics.median(loaded)
    print(f"reserve+ack, in-process, {SAMPLE:,} ready jobs (medians of {args.repeat}):")
    print(f"  {'empty table':<28} {a:>10,.0f} us   (runs: {', '.join(f'{r:,.0f}' for r in empty)})")
    print(f"  {f'{DELAYED:,} delayed rows':<28} {b:>10,.0f} us   "
          f"(runs: {', '.join(f'{r:,.0f}' for r in loaded)})")
    print(f"  ratio {b / a:.2f}x   (target: at most 1.5x)")
    figures["reserve_us"] = {"empty": a, "delayed_100k": b}
