"""Unique jobs under real concurrency: producers in several threads, each with its own
queue, and four worker processes; the back end alone decides which push of a key stores
a job."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from queue_core import JobStatus, create_queue
from tests.support.jobs import Hold, Record, read_lines
from tests.support.procs import wait_for, workers

pytestmark = [pytest.mark.needs("unique", "multiprocess", "!runs_at_push"),
              pytest.mark.worker_modes("c1")]

PUSHES = 1000
KEYS = 100
THREADS = 8


@pytest.mark.slow
def test_a_thousand_pushes_of_a_hundred_keys_store_and_run_a_hundred_jobs(
        queue_settings, journal: str, tmp_path: Path) -> None:
    settings = queue_settings(ttr=120)
    hold = tmp_path / "hold"
    hold.touch()
    ids: list[list[str | None]] = [[] for _ in range(THREADS)]
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def produce(index: int) -> None:
        queue = create_queue(settings)
        try:
            start.wait()
            for number in range(index, PUSHES, THREADS):
                key = f"k{number % KEYS}"
                # Each job waits for the hold file to go, so that every key's job is still
                # live when the last push of the key arrives.
                ids[index].append(queue.push(Hold(journal, key, str(hold)), unique_key=key))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)
        finally:
            queue.close()

    with workers(settings, 4, "listen", "--timeout", "0.2"):
        threads = [threading.Thread(target=produce, args=(index,)) for index in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors
        pushed = [job_id for chunk in ids for job_id in chunk]
        assert len(pushed) == PUSHES and None not in pushed
        assert len(set(pushed)) == KEYS
        queue = create_queue(settings)
        try:
            if queue.capabilities.info:
                counts = queue.info()
                live = sum(counts.get(s, 0) for s in (JobStatus.WAITING, JobStatus.DELAYED,
                                                      JobStatus.RESERVED))
                assert live == KEYS, counts
            hold.unlink()
            wait_for(lambda: sum(line.startswith("end ") for line in read_lines(journal))
                     >= KEYS, 120, "every job done")
            # A job run twice would show here.
            wait_for(lambda: queue.info().get(JobStatus.WAITING, 1) == 0
                     if queue.capabilities.info else True, 10, "nothing left")
            ends = Counter(line[4:] for line in read_lines(journal) if line.startswith("end "))
            assert ends == Counter({f"k{key}": 1 for key in range(KEYS)})
            # Done: the key is free, and a push of it runs again.
            queue.push(Record(journal, "again k7"), unique_key="k7")
            wait_for(lambda: "again k7" in read_lines(journal), 30, "the key pushed again")
        finally:
            queue.close()
    starts = Counter(line[6:] for line in read_lines(journal) if line.startswith("start "))
    assert starts == Counter({f"k{key}": 1 for key in range(KEYS)})
