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
    """The core, the CLI and the framework packages' entry points load nothing but the
    standard library: Django, Flask and FastAPI load only in the apps that use them."""
    code = ("import sys, queue_core, queue_core.cli, queue_core.contrib, "
            "queue_core.contrib.django, queue_core.testing;"
            "mods = {m.split('.')[0] for m in sys.modules};"
            "print(sorted(m for m in mods if m not in sys.stdlib_module_names "
            "and not m.startswith('_') and m not in ('queue_core', 'sitecustomize')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
