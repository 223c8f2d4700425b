"""The code base stays type-clean (mypy --strict) and lint-clean (ruff)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.procs import ROOT


def test_mypy_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "queue_core", "drivers"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "queue_core", "drivers",
                             "tests", "benchmarks", "examples"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_core_imports_only_the_standard_library() -> None:
    code = ("import sys, queue_core, queue_core.cli;"
            "mods = {m.split('.')[0] for m in sys.modules};"
            "print(sorted(m for m in mods if m in {'redis','sqlalchemy','greenstalk','pika',"
            "'psycopg','pymysql'}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
