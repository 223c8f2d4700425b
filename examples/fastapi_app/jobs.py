"""The example's job: writes a small report file (the side effect you can see)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from queue_core import RetryableJob

from .settings import reports_dir


@dataclass
class BuildReport(RetryableJob):
    name: str
    rows: int

    def execute(self, queue: Any) -> str:
        os.makedirs(reports_dir(), exist_ok=True)
        path = os.path.join(reports_dir(), f"{self.name}.txt")
        with open(path, "w") as report:
            report.writelines(f"row {n}\n" for n in range(self.rows))
        return path
