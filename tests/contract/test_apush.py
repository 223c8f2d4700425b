"""apush and its kin on every driver: concurrent pushes from one event loop are batched,
and each job runs once, as if pushed with push (the order of apush_many's jobs is checked
by tests/unit/test_apush.py, where a worker running jobs side by side cannot blur it)."""

from __future__ import annotations

import asyncio

import pytest

from queue_core import JobStatus, Queue
from tests.support.jobs import Record, read_lines
from tests.support.run import run_until


def test_apush_from_many_tasks_queues_each_job_once(queue: Queue, journal: str) -> None:
    async def main() -> tuple[list[str | None], list[str | None]]:
        async def task(number: int) -> list[str | None]:
            return [await queue.apush(Record(journal, f"t{number}.{i}")) for i in range(3)]
        done = await asyncio.gather(*(task(n) for n in range(20)))
        many = await queue.apush_many([Record(journal, f"m{i}") for i in range(10)])
        return [job_id for ids in done for job_id in ids], many

    singles, many = asyncio.run(main())
    assert len(set(singles + many)) == 70 and all(singles + many)
    run_until(queue, lambda: len(read_lines(journal)) >= 70)
    lines = read_lines(journal)
    assert sorted(lines) == sorted([f"t{n}.{i}" for n in range(20) for i in range(3)]
                                   + [f"m{i}" for i in range(10)])


@pytest.mark.needs("status", "!runs_at_push")
def test_astatus_and_aget_agree_with_status_and_get(queue: Queue, journal: str) -> None:
    job_id = asyncio.run(queue.apush(Record(journal, "a")))
    assert job_id is not None
    assert asyncio.run(queue.astatus(job_id)) is queue.status(job_id) is JobStatus.WAITING
    assert asyncio.run(queue.aget(job_id)).id == queue.get(job_id).id == job_id
