"""The peers' side of benchmarks/io_bound.py: a task that sleeps, per library, each library
on its own Redis database (BENCH_REDIS_URL). Their workers import this module."""

from __future__ import annotations

import os
import time

from benchmarks.io_marks import record

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
LIBRARY = os.environ.get("BENCH_LIBRARY", "")


def sleep(index: int, seconds: float, marks: str) -> None:
    """The RQ task (RQ takes any importable function)."""
    start = time.time()
    time.sleep(seconds)
    record(marks, index, start, time.time())


if LIBRARY == "dramatiq":
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    dramatiq.set_broker(RedisBroker(url=URL))

    @dramatiq.actor(queue_name="bench", max_retries=0)
    def dramatiq_sleep(index: int, seconds: float, marks: str) -> None:
        sleep(index, seconds, marks)

if LIBRARY == "huey":
    from huey import RedisHuey

    huey = RedisHuey("bench", url=URL, results=False)

    @huey.task()
    def huey_sleep(index: int, seconds: float, marks: str) -> None:
        sleep(index, seconds, marks)

if LIBRARY == "celery":
    from celery import Celery

    celery = Celery("bench", broker=URL)
    celery.conf.task_ignore_result = True
    celery.conf.worker_hijack_root_logger = False

    @celery.task(name="bench.io.sleep")
    def celery_sleep(index: int, seconds: float, marks: str) -> None:
        sleep(index, seconds, marks)
