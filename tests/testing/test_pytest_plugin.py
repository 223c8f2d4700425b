"""The pytest plugin as a user meets it: examples/pytest_user run by a real pytest process,
in its own directory, so that only the installed package's plugin gives it fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.support.procs import ROOT

PROJECT = ROOT / "examples" / "pytest_user"


def run_pytest(tmp_path: Path, *args: str) -> tuple[dict[str, int], dict[str, str], str]:
    """Counts (tests, failures, errors, skipped), failure messages by test name, output."""
    report = tmp_path / "report.xml"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "QUEUE_TEST_"))}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                          f"--junitxml={report}", *args],
                         cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120)
    assert report.exists(), run.stdout + run.stderr
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors",
                                                        "skipped")}
    messages = {case.get("name", ""): failure.get("message", "")
                for case in suite.iter("testcase") for failure in case.iter("failure")}
    return counts, messages, run.stdout + run.stderr


def test_the_user_project_passes(tmp_path: Path) -> None:
    counts, messages, output = run_pytest(tmp_path)
    assert counts == {"tests": 13, "failures": 0, "errors": 0, "skipped": 0}, output
    assert f"rootdir: {PROJECT}" in output   # its pytest.ini, not the repository's


def test_the_helpers_fail_with_readable_messages(tmp_path: Path) -> None:
    counts, messages, output = run_pytest(tmp_path, "expected_failures")
    assert counts == {"tests": 4, "failures": 4, "errors": 0, "skipped": 0}, output
    assert ("expected a pushed SendReceipt with to='bob@example.com'"
            in messages["test_wrong_address"])
    assert "differs: to='ann@example.com', not 'bob@example.com'" in output
    assert "job 1 [waiting] SendReceipt(order_id=2" in output
    assert "expected a failed SendReceipt with error shop.mail.MailDown" in output
    assert "shop.mail.BadAddress: 550 no such mailbox" in output
    assert "drain stopped after 10 runs (max_runs)" in messages["test_runaway_job"]
    # The failing line is the test's own: the helpers hide their frames.
    assert "queue_core/testing/asserts.py" not in output, output
