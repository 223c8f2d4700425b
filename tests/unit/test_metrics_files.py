"""Supervised workers' tallies written to files and added up by the supervisor
(metrics_files.py); a file that is not a well-formed tally is skipped, never trusted."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

prometheus_client = pytest.importorskip("prometheus_client")

from queue_core.drivers.memory import MemoryDriver  # noqa: E402

from queue_core import Job, Queue  # noqa: E402
from queue_core.metrics import Tallies, TallyCollector, instrument  # noqa: E402
from queue_core.metrics_files import TallyWriter, parse, read_all  # noqa: E402


class Quick(Job):
    job_name = "files.quick"

    def execute(self, queue: Any) -> None:
        return None


def worker_file(directory: Path, jobs: int) -> Tallies:
    tallies = Tallies()
    queue = Queue(MemoryDriver(channel="fq"))
    instrument(queue, into=tallies)
    queue.push_many([Quick() for _ in range(jobs)])
    queue.run()
    return tallies


def test_the_supervisor_scrape_adds_up_every_file(tmp_path: Path) -> None:
    for pid, jobs in ((101, 3), (102, 4)):
        tallies = worker_file(tmp_path, jobs)
        text = json.dumps([{"queue": q, "job": j, **v} for (q, j), v in
                           tallies.snapshot().items()])
        (tmp_path / f"{pid}.json").write_text(text)
    registry = prometheus_client.CollectorRegistry()
    registry.register(TallyCollector(lambda: read_all(str(tmp_path))))
    labels = {"queue": "fq", "job": "files.quick"}
    assert registry.get_sample_value("queue_core_jobs_done_total", labels) == 7
    assert registry.get_sample_value("queue_core_jobs_started_total", labels) == 7
    assert registry.get_sample_value("queue_core_job_run_seconds_count", labels) == 7
    assert registry.get_sample_value("queue_core_job_run_seconds_bucket",
                                     {**labels, "le": "+Inf"}) == 7


def test_a_writer_writes_its_file_when_closed(tmp_path: Path) -> None:
    tallies = worker_file(tmp_path, 2)
    writer = TallyWriter(tallies, str(tmp_path))
    writer.close()
    [snapshot] = read_all(str(tmp_path))
    assert snapshot[("fq", "files.quick")]["done"] == 2


@pytest.mark.parametrize("content, problem", [
    ("not json", "Expecting value"),
    ('{"a": 1}', "not a list"),
    ('[{"queue": "q", "job": "j"}]', "pushed is not a count"),
    ('[{"queue": "q\\u0000", "job": "j"}]', "label"),
])
def test_a_bad_file_is_skipped_with_a_warning(tmp_path: Path, content: str, problem: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "7.json").write_text(content)
    (tmp_path / "notes.txt").write_text("ignored: not a worker's file")
    with caplog.at_level(logging.WARNING, logger="queue_core.metrics_files"):
        assert read_all(str(tmp_path)) == []
    assert problem in caplog.text


def test_counts_and_buckets_must_be_whole_and_in_range() -> None:
    good = {"queue": "q", "job": "j", "pushed": 0, "started": 1, "done": 1, "failed": 0,
            "retried": 0, "lost": 0, "run": {"counts": [1] + [0] * 19, "sum": 0.0005},
            "wait": {"counts": [0] * 19, "sum": 0.0}}
    assert parse([good])[("q", "j")]["done"] == 1
    for change in ({"done": -1}, {"done": True}, {"done": 1.5},
                   {"run": {"counts": [1], "sum": 0.0}},
                   {"run": {"counts": [0] * 20, "sum": float("nan")}}):
        with pytest.raises(ValueError):
            parse([{**good, **change}])
