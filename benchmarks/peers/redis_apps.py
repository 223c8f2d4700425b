"""The peers' side of the Redis benchmark: a no-op task per library, each library on its
own Redis database (BENCH_REDIS_URL). Their workers import this module."""

from __future__ import annotations

import os

from benchmarks.marks import mark

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
LIBRARY = os.environ.get("BENCH_LIBRARY", "")


def noop(index: int, last: int, marks: str) -> None:
    """The RQ task (RQ takes any importable function)."""
    if index == 0 or index == last:
        mark(marks, index, last)


if LIBRARY == "dramatiq":
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    dramatiq.set_broker(RedisBroker(url=URL))

    @dramatiq.actor(queue_name="bench", max_retries=0)
    def dramatiq_noop(index: int, last: int, marks: str) -> None:
        noop(index, last, marks)

if LIBRARY == "huey":
    from huey import RedisHuey

    huey = RedisHuey("bench", url=URL, results=False)

    @huey.task()
    def huey_noop(index: int, last: int, marks: str) -> None:
        noop(index, last, marks)

if LIBRARY == "celery":
    from celery import Celery

    celery = Celery("bench", broker=URL)
    celery.conf.task_ignore_result = True
    celery.conf.worker_hijack_root_logger = False

    @celery.task(name="bench.noop")
    def celery_noop(index: int, last: int, marks: str) -> None:
        noop(index, last, marks)
