"""The README's examples run as a new user would run them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.procs import ROOT


def test_quickstart_and_report(tmp_path: Path) -> None:
    copy = tmp_path / "project"
    shutil.copytree(ROOT / "examples", copy / "examples")
    # The installed layout: the drivers live inside queue_core.
    shutil.copytree(ROOT / "queue_core", copy / "queue_core")
    shutil.copytree(ROOT / "drivers", copy / "queue_core" / "drivers")
    run = subprocess.run([sys.executable, "examples/quickstart.py"], cwd=copy,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "worker stopped by SIGTERM with exit code 0" in run.stdout
    assert "flaky    done       3" in run.stdout
    assert "bounce   failed     1  examples.jobs.PermanentError" in run.stdout
    report = subprocess.run([sys.executable, "examples/report.py"], cwd=copy,
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    assert "1 failed job(s)" in report.stdout
    assert "1 x examples.jobs.PermanentError" in report.stdout
    retried = subprocess.run([sys.executable, "examples/report.py", "--retry"], cwd=copy,
                             capture_output=True, text=True, timeout=60)
    assert "1 job(s) sent back to waiting" in retried.stdout
