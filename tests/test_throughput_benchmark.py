"""benchmarks/throughput.py --code runs another checkout's queue-core in the same run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import ROOT

MARKER = "# a copy measured by test_throughput_benchmark\n"


def copy_of_checkout(where: Path) -> Path:
    code = where / "code"
    for folder in ("queue_core", "drivers"):
        shutil.copytree(ROOT / folder, code / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    init = code / "queue_core" / "__init__.py"
    init.write_text(MARKER + init.read_text())
    return code


def run_throughput(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A tiny run on the file driver, without peers, its figures in figures.json."""
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--driver", "file",
         "-n", "30", "--repeat", "1", "--backlog", "", "--no-peers", *args,
         "--json", str(tmp_path / "figures.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=180)


def flavours_run(tmp_path: Path, *args: str) -> tuple[str, dict[str, Any]]:
    pytest.importorskip("prometheus_client")
    result = run_throughput(tmp_path, "--metrics", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, json.loads((tmp_path / "figures.json").read_text())


@pytest.mark.slow
def test_another_checkout_is_measured_beside_this_one(tmp_path: Path) -> None:
    code = copy_of_checkout(tmp_path)
    result = run_throughput(tmp_path, "--code", str(code))
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads((tmp_path / "figures.json").read_text())
    other = [name for name in figures if name.startswith("queue-core@")]
    assert len(other) == 1
    assert figures[other[0]]["process"] > 0 and figures["queue-core"]["process"] > 0
    assert f"{other[0]} / queue-core" in result.stdout


@pytest.mark.slow
def test_a_worker_that_would_run_this_checkout_instead_stops_the_run(tmp_path: Path) -> None:
    """A checkout whose drivers folder is missing would take this environment's installed
    drivers: the run must refuse rather than measure the wrong code."""
    code = copy_of_checkout(tmp_path)
    shutil.rmtree(code / "drivers")
    result = run_throughput(tmp_path, "--code", str(code))
    assert result.returncode != 0
    assert f"not from {code}" in result.stderr


@pytest.mark.slow
def test_metrics_on_and_off_are_measured_in_the_same_run(tmp_path: Path) -> None:
    stdout, figures = flavours_run(tmp_path, "--worker-args=--max-time 600")
    assert figures["queue-core +metrics"]["process"] > 0
    assert figures["queue-core --max-time 600"]["process"] > 0
    assert re.search(r"queue-core \+metrics +/ queue-core ", stdout)
    assert "process_ratio_to queue-core" in figures["queue-core +metrics"]


@pytest.mark.slow
def test_flavours_are_compared_with_the_base_args_worker(tmp_path: Path) -> None:
    stdout, figures = flavours_run(tmp_path, "--base-args=--heartbeat 0")
    assert figures["queue-core --heartbeat 0"]["process"] > 0
    assert re.search(r"queue-core \+metrics +/ queue-core --heartbeat 0 ", stdout)


@pytest.mark.slow
def test_a_rate_limit_is_measured_beside_the_worker_without_it(tmp_path: Path) -> None:
    result = run_throughput(tmp_path, "--rate-limit", "1000000/s", "--bucket-size", "500")
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads((tmp_path / "figures.json").read_text())
    limited = figures["queue-core +rate 1000000/s bucket 500"]
    assert limited["process"] > 0
    assert "process_ratio_to queue-core" in limited
    assert re.search(r"queue-core \+rate 1000000/s bucket 500 +/ queue-core ", result.stdout)
