"""The drivers the suites run on. A driver joins every suite by adding one DriverSpec.

A spec builds the settings of a queue on a fresh channel and says whether its server is
reachable. Specs live in tests/support/specs/, one module per driver. Unreachable: skipped
with the reason, or a failure when QUEUE_TEST_REQUIRE_ALL=1 (CI).
QUEUE_TEST_DRIVERS=file,redis narrows the run.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from queue_core import Capabilities, Store

LEASE_GRACE = 0.5
"""Short leases keep the ttr-recovery tests quick."""


@dataclass
class DriverSpec:
    name: str
    driver_class: str
    settings: Callable[[Path, str], dict[str, Any]]
    available: Callable[[], str | None] = lambda: None
    cleanup: Callable[[dict[str, Any]], None] | None = None
    """Removes what a test's channel left on a shared server, when the test ends (a broker
    that keeps every test's queues runs out of file handles)."""
    copies_then_acks: bool = False
    """A settlement that moves a job (a retry, the failed store) writes the copy, then
    removes the original in a second step: a worker killed between them leaves both, and
    the job runs once more (AMQP has no atomic publish-and-ack outside a transaction)."""

    @property
    def cls(self) -> type[Store]:
        module, _, name = self.driver_class.partition(":")
        found: type[Store] = getattr(importlib.import_module(module), name)
        return found

    @property
    def capabilities(self) -> Capabilities:
        return self.cls.capabilities

    def __str__(self) -> str:
        return self.name


def all_specs() -> list[DriverSpec]:
    import pkgutil

    from tests.support import specs as package
    modules = [importlib.import_module(f"{package.__name__}.{info.name}")
               for info in pkgutil.iter_modules(package.__path__)]
    modules.sort(key=lambda module: (getattr(module, "ORDER", 100), module.__name__))
    return [spec for module in modules for spec in module.SPECS]


def selected_specs() -> list[DriverSpec]:
    specs = all_specs()
    wanted = os.environ.get("QUEUE_TEST_DRIVERS")
    if not wanted:
        return specs
    names = {name.strip() for name in wanted.split(",") if name.strip()}
    unknown = names - {spec.name for spec in specs}
    if unknown:
        raise ValueError(f"QUEUE_TEST_DRIVERS names unknown drivers: {sorted(unknown)}")
    return [spec for spec in specs if spec.name in names]
