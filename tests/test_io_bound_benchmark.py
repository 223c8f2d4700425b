"""benchmarks/io_bound.py runs end to end without a server: a real worker with jobs in
flight on the file driver, every job marked once, figures written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import io_marks
from tests.support.procs import ROOT


def test_io_marks_span_and_refill(tmp_path: Path) -> None:
    io_marks.reset(str(tmp_path))
    # Two slots: jobs 0 and 1 start at once; 2 takes the slot 0 left (0.5 s later),
    # 3 the slot 1 left (0.25 s later).
    for index, start, end in ((0, 10.0, 11.0), (1, 10.0, 12.0), (2, 11.5, 13.0),
                              (3, 12.25, 13.5)):
        io_marks.record(str(tmp_path), index, start, end)
    assert io_marks.Tail(str(tmp_path)).count() == 4
    span = io_marks.span(str(tmp_path), slots=2)
    assert (span.jobs, span.lines) == (4, 4)
    assert span.seconds == pytest.approx(3.5)
    assert span.mean_job == pytest.approx((1 + 2 + 1.5 + 1.25) / 4)
    assert span.refill == pytest.approx(0.5)  # the median of [0.25, 0.5], upper one


@pytest.mark.slow
def test_io_bound_benchmark_runs_queue_core_on_the_file_driver(tmp_path: Path) -> None:
    out = tmp_path / "io.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "io_bound.py"), "--driver", "file",
         "--no-peers", "--scenario", "all", "-n", "24", "--async-n", "60", "--rounds", "1",
         "--sleep", "0.01", "--json", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    scenarios = json.loads(out.read_text())["scenarios"]
    assert set(scenarios) == {"eight", "async200", "defaults"}
    names = {scenario: set(figures["contenders"]) for scenario, figures in scenarios.items()}
    assert names["eight"] == {"queue-core threads -c 8", "queue-core asyncio -c 8"}
    assert names["async200"] == {"queue-core asyncio -c 200"}
    assert names["defaults"] == {"queue-core (default)", "queue-core (default) asyncio",
                                 "queue-core threads -c 8"}
    for figures in scenarios.values():
        for entry in figures["contenders"].values():
            assert "error" not in entry, entry
            assert 0 < entry["rate"] <= entry["ideal"] * 1.05
            assert entry["rss_mb"] > 5 and entry["procs"] == 1
    # With 8 in flight, 24 jobs of 10 ms take far less than one at a time would (240 ms).
    assert scenarios["eight"]["contenders"]["queue-core threads -c 8"]["rate"] > 200
    # At the default the async job runs side by side too, where the synchronous one cannot.
    assert scenarios["defaults"]["contenders"]["queue-core (default) asyncio"]["rate"] > 200
    assert "peak RSS" in result.stdout
