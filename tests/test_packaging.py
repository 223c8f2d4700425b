"""What ``pip install .`` puts into site-packages: queue_core alone, drivers inside it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.procs import ROOT


def test_the_wheel_installs_only_queue_core(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--disable-pip-version-check", "--wheel-dir", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = tmp_path.glob("queue_core-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"queue_core"}
    shipped = {name for name in names if name.startswith("queue_core/drivers/")}
    in_tree = {f"queue_core/drivers/{p.relative_to(ROOT / 'drivers').as_posix()}"
               for p in (ROOT / "drivers").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert in_tree <= shipped, f"not in the wheel: {sorted(in_tree - shipped)}"
    dashboard = {f"queue_core/dashboard/{p.relative_to(ROOT / 'queue_core/dashboard').as_posix()}"
                 for p in (ROOT / "queue_core" / "dashboard").rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts}
    assert dashboard <= set(names), f"not in the wheel: {sorted(dashboard - set(names))}"
    core = {f"queue_core/{p.relative_to(ROOT / 'queue_core').as_posix()}"
            for p in (ROOT / "queue_core").rglob("*.py") if "__pycache__" not in p.parts}
    assert core <= set(names), f"not in the wheel: {sorted(core - set(names))}"
    # `pip install queue-core` alone pulls nothing: every requirement is an extra's.
    metadata = zipfile.ZipFile(wheel).read(next(
        name for name in names if name.endswith(".dist-info/METADATA"))).decode()
    required = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert required and all("extra ==" in line for line in required), required
    for framework in ("django", "flask", "fastapi"):
        assert any(line.lower().startswith(f"requires-dist: {framework}")
                   or f"requires-dist: {framework}" in line.lower() for line in required)
    entry_points = zipfile.ZipFile(wheel).read(next(
        name for name in names if name.endswith(".dist-info/entry_points.txt"))).decode()
    assert "[pytest11]\nqueue_core = queue_core.testing.plugin" in entry_points
