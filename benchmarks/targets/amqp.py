"""The AMQP driver on RabbitMQ at its defaults (a classic queue with priorities, prefetch
20); its peer is Dramatiq's RabbitmqBroker on the same server, at its defaults and with a
prefetch of 100. The same run then measures the driver with a prefetch of 100 (as
Dramatiq's second line) and on a quorum queue. ``$BENCH_AMQP``: the broker's URL."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from typing import Any

from benchmarks.contenders import Contender, QueueCore

SERVER = os.environ.get("BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F")
BACKLOG = True
VARIANTS = {"queue-core prefetch=100": {"prefetch": 100},
            "queue-core quorum": {"queue_type": "quorum"}}


def settings(workdir: str) -> dict[str, Any]:
    return {"driver": SERVER, "channel": "bench"}


def peers(workdir: str, workers: int = 1) -> list[Contender]:
    from benchmarks.peers.rabbitmq_peers import rabbitmq_peers
    return rabbitmq_peers(SERVER)


def extra(args: argparse.Namespace, ours: QueueCore, figures: dict[str, Any]) -> None:
    from benchmarks.throughput import median_line, process_rate
    n = args.n
    for label, options in VARIANTS.items():
        variant = QueueCore({"driver": {"url": SERVER, **options},
                             "channel": f"bench-{label.split()[-1].replace('=', '')}"}, label)
        mark_dir = os.path.join(tempfile.mkdtemp(prefix="bench-amqp-"), "marks")
        print(f"{label} ({n:,} jobs per measurement):")
        pushes, many = [], []
        for _ in range(args.repeat):
            variant.prepare()
            pushes.append(n / variant.push(n, mark_dir, n - 1))
        for _ in range(args.repeat):
            variant.prepare()
            many.append(n / variant.push_many(n, mark_dir, n - 1))
        rates = [process_rate(variant, n, mark_dir, args.timeout) for _ in range(args.repeat)]
        print(median_line("push (one at a time)", pushes))
        print(median_line("push_many", many))
        print(median_line("process (1 worker process)", rates))
        figures[label] = {"push": statistics.median(pushes), "push_many": statistics.median(many),
                          "process": statistics.median(rates)}
        variant.queue.driver.delete_queues()
        variant.queue.close()
    for name in [name for name in figures if name.startswith("dramatiq")]:
        for label in VARIANTS:
            ratio = figures[label]["process"] / figures[name]["process"]
            print(f"  process  {label} / {name:<22} {ratio:6.2f}x")
