"""The DB driver's retention on SQLite: kept rows carry their finish time in ready_at, and a
trim that fails is logged and never fails a job."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from queue_core import JobStatus, create_queue
from tests.support.jobs import Noop


def test_a_kept_row_is_ordered_by_its_finish_time(tmp_path: Path) -> None:
    queue = create_queue({"driver": f"sqlite:///{tmp_path}/q.db", "keep_completed": 5})
    try:
        job_id = queue.push(Noop())
        assert job_id is not None
        queue.run()
        with sqlite3.connect(tmp_path / "q.db") as db:
            row = db.execute("SELECT status, ready_at, finished_at FROM queue WHERE id = ?",
                             (int(job_id),)).fetchone()
        assert row[0] == "done" and row[1] == row[2]
    finally:
        queue.close()


def test_a_failing_trim_is_logged_and_the_jobs_still_finish(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    queue = create_queue({"driver": f"sqlite:///{tmp_path}/q.db", "keep_completed": 2})
    try:
        # Every trim now fails (the statement names no table).
        queue.driver.sql.__dict__["kept_cutoff"] = "SELECT ready_at, id FROM nowhere"
        queue.push_many([Noop() for _ in range(6)])
        with caplog.at_level(logging.WARNING, logger="queue_core.drivers.db.retention"):
            assert queue.run() == 6
        assert queue.info()[JobStatus.DONE] == 6
        assert any("the trim failed" in r.getMessage() for r in caplog.records)
        del queue.driver.sql.__dict__["kept_cutoff"]
        queue.push(Noop())
        queue.run()
        assert queue.info()[JobStatus.DONE] == 2  # the next trim catches up
    finally:
        queue.close()
