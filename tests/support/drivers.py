"""The drivers the suites run on. A driver joins every suite by adding one DriverSpec.

A spec builds the settings of a queue on a fresh channel and says whether its server is
reachable. Unreachable: skipped with the reason, or a failure when
QUEUE_TEST_REQUIRE_ALL=1 (CI). QUEUE_TEST_DRIVERS=file,redis narrows the run.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from queue_core import Capabilities, Driver

LEASE_GRACE = 0.5
"""Short leases keep the ttr-recovery tests quick."""


@dataclass
class DriverSpec:
    name: str
    driver_class: str
    settings: Callable[[Path, str], dict[str, Any]]
    available: Callable[[], str | None] = lambda: None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def cls(self) -> type[Driver]:
        module, _, name = self.driver_class.partition(":")
        found: type[Driver] = getattr(importlib.import_module(module), name)
        return found

    @property
    def capabilities(self) -> Capabilities:
        return self.cls.capabilities

    def __str__(self) -> str:
        return self.name


def _file_settings(tmp: Path, channel: str) -> dict[str, Any]:
    return {"driver": {"url": f"file://{tmp}/queue", "lease_grace": LEASE_GRACE},
            "channel": channel}


SPECS: list[DriverSpec] = [
    DriverSpec("sync", "drivers.sync:SyncDriver", lambda tmp, channel: {
        "driver": "sync://", "channel": channel}),
    DriverSpec("file", "drivers.file:FileDriver", _file_settings),
]


def selected_specs() -> list[DriverSpec]:
    wanted = os.environ.get("QUEUE_TEST_DRIVERS")
    if not wanted:
        return SPECS
    names = {name.strip() for name in wanted.split(",") if name.strip()}
    unknown = names - {spec.name for spec in SPECS}
    if unknown:
        raise ValueError(f"QUEUE_TEST_DRIVERS names unknown drivers: {sorted(unknown)}")
    return [spec for spec in SPECS if spec.name in names]
