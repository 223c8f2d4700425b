"""The docs stay true: runnable code blocks run, and each driver page's capability table
says what the driver declares."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from queue_core import Capabilities, JobStatus
from tests.support.drivers import all_specs
from tests.support.procs import ROOT

DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```python runnable\n(.*?)^```", re.S | re.M)


def runnable_blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for number, match in enumerate(BLOCK.finditer(page.read_text()), 1):
            found.append((str(page.relative_to(ROOT)), number, match.group(1)))
    return found


def test_the_docs_have_runnable_blocks() -> None:
    assert len(runnable_blocks()) >= 8


@pytest.mark.parametrize("page, number, code", runnable_blocks(),
                         ids=[f"{page}#{number}" for page, number, _ in runnable_blocks()])
def test_runnable_block_runs(page: str, number: int, code: str, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, f"{page} block {number} failed:\n{result.stderr}"


def _table(page: Path) -> dict[str, bool]:
    section = page.read_text().split("## Capabilities", 1)[1]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[1].split(" ")[0] in ("yes", "no"):
            rows[cells[0]] = cells[1].startswith("yes")
    return rows


DRIVER_PAGES = sorted({(spec.cls.name, spec.driver_class) for spec in all_specs()})


@pytest.mark.parametrize("name, driver_class", DRIVER_PAGES, ids=[n for n, _ in DRIVER_PAGES])
def test_each_driver_page_tells_its_capabilities(name: str, driver_class: str) -> None:
    import importlib
    module, _, cls_name = driver_class.partition(":")
    declared = getattr(importlib.import_module(module), cls_name).capabilities
    page = DOCS / "drivers" / f"{name}.md"
    assert page.exists(), f"{page} is missing"
    table = _table(page)
    flags = {f.name for f in fields(Capabilities) if isinstance(getattr(declared, f.name), bool)}
    assert set(table) == flags, f"{page}: rows {sorted(table)} vs flags {sorted(flags)}"
    wrong = {flag for flag in flags if table[flag] != getattr(declared, flag)}
    assert not wrong, f"{page} says the opposite of the driver for {sorted(wrong)}"
    listed = _listed(page)
    assert listed == set(declared.listing), (
        f"{page}: the listing row names {sorted(listed)}, the driver lists "
        f"{sorted(s.value for s in declared.listing)}")


def _listed(page: Path) -> set[JobStatus]:
    """The statuses the page's "listing" row names ("all statuses" for every one)."""
    section = page.read_text().split("## Capabilities", 1)[1]
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] == "listing":
            if cells[1] == "all statuses":
                return set(JobStatus)
            return {JobStatus.parse(word) for word in re.findall(r"[a-z]+", cells[1])
                    if word not in ("no", "only", "and")}
    raise AssertionError(f"{page} has no listing row")
