"""Workers in threads of one process, each with its own queue object: every job runs
exactly once. The one reliability check that applies to in-process drivers too."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from queue_core import JobStatus, Worker
from tests.support.jobs import Record, read_lines

pytestmark = pytest.mark.needs("!runs_at_push")

JOBS = 600


def test_four_worker_threads_run_every_job_exactly_once(make_queue, journal: str) -> None:
    producer = make_queue()
    workers: list[Worker] = [make_queue().worker(handle_signals=False, timeout=0.1)
                             for _ in range(4)]
    threads = [threading.Thread(target=worker.listen) for worker in workers]
    for thread in threads:
        thread.start()
    try:
        producer.push_many([Record(journal, f"j{index}") for index in range(JOBS)])
        deadline = time.monotonic() + 120
        while len(read_lines(journal)) < JOBS and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # a duplicate would show up now
    finally:
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert Counter(read_lines(journal)) == Counter(f"j{index}" for index in range(JOBS))
    assert sum(worker.processed for worker in workers) == JOBS
    if producer.capabilities.info:
        counts = producer.info()
        assert counts[JobStatus.WAITING] == counts.get(JobStatus.RESERVED, 0) == 0
