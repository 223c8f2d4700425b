"""benchmarks/latency.py runs end to end: a real worker, every job timed, figures written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import ROOT


@pytest.mark.slow
def test_latency_benchmark_times_every_job_on_the_file_driver(tmp_path: Path) -> None:
    out = tmp_path / "latency.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "latency.py"), "--driver", "file",
         "-n", "5", "--gap", "0.01", "--settle", "0.1", "--json", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(out.read_text())["drivers"]["file"]
    assert figures["jobs"] == 5
    assert len(figures["latencies_ms"]) == 5
    assert all(0 <= value < 30_000 for value in figures["latencies_ms"])
    assert 0 <= figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert figures["worker_code"]["queue_core"].startswith(str(ROOT))
    assert "file" in result.stdout.splitlines()[-1]
