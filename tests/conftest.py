from __future__ import annotations

import fcntl
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.support.jobs  # noqa: F401  (registers the job types)
from queue_core import Queue, create_queue
from tests.support.drivers import DriverSpec, selected_specs

REQUIRE_ALL = os.environ.get("QUEUE_TEST_REQUIRE_ALL") == "1"

WORKER_MODES: dict[str, dict[str, Any]] = {
    "c1": {},
    "threads8": {"concurrency": 8},
    "async8": {"concurrency": 8,
               "serializer": "tests.support.async_twins:AsyncTwinSerializer"},
}
"""How the worker of a contract or reliability test runs its jobs: one at a time in its
main thread; eight at a time on pool threads; eight at a time on its event loop (every test
job swapped for its async twin, see tests/support/async_twins.py). QUEUE_TEST_WORKER_MODES
(comma-separated) picks some."""
MARKED_MODES: dict[str, dict[str, Any]] = {
    "async_beside": {"async_concurrency": 8,
                     "serializer": "tests.support.async_twins:AsyncTwinSerializer"},
}
"""Modes only the tests that name them in their worker_modes marker run in: at concurrency
1, async jobs eight at a time side by side (what sets them apart is the dispatcher the
worker switches to when it meets an async job, which the tests that name them check)."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """In CI (QUEUE_TEST_REQUIRE_ALL=1) nothing may be skipped, for any reason."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under QUEUE_TEST_REQUIRE_ALL=1: {reason}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs(*flags): run only on drivers that declare these capabilities "
        "('!flag': that lack it)")
    config.addinivalue_line(
        "markers", "worker_modes(*names): run only in these worker modes (see WORKER_MODES)")
    config.addinivalue_line(
        "markers", "drivers(*names): run only on these drivers (what the test checks does "
        "not depend on the back end beyond them)")
    config.addinivalue_line(
        "markers", "takes_server_down: no other test may use its back end meanwhile")


_NO_SELECTED_DRIVER: set[str] = set()
"""Tests that no driver picked by QUEUE_TEST_DRIVERS applies to (they need a capability
none of them declares): left out of the run, not skipped, since a skip fails under
QUEUE_TEST_REQUIRE_ALL=1."""


def _worker_modes() -> list[str]:
    chosen = os.environ.get("QUEUE_TEST_WORKER_MODES")
    if not chosen:
        return [*WORKER_MODES, *MARKED_MODES]
    names = [name.strip() for name in chosen.split(",") if name.strip()]
    unknown = [name for name in names if name not in WORKER_MODES and name not in MARKED_MODES]
    if unknown:
        raise pytest.UsageError(f"QUEUE_TEST_WORKER_MODES: unknown {unknown}; known: "
                                f"{', '.join([*WORKER_MODES, *MARKED_MODES])}")
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "worker_mode" in metafunc.fixturenames:
        modes = _worker_modes()
        marker = metafunc.definition.get_closest_marker("worker_modes")
        if marker is not None:
            modes = [mode for mode in modes if mode in marker.args]
        else:
            modes = [mode for mode in modes if mode not in MARKED_MODES]
        metafunc.parametrize("worker_mode", modes)
    if "driver_spec" not in metafunc.fixturenames:
        return
    needs: set[str] = set()
    for marker in metafunc.definition.iter_markers("needs"):
        needs.update(marker.args)
    specs = [s for s in selected_specs() if all(_declares(s, flag) for flag in needs)]
    only = metafunc.definition.get_closest_marker("drivers")
    if only is not None:
        specs = [s for s in specs if s.name in only.args]
    if "lacking" in metafunc.fixturenames:
        pairs = [(s, flag) for s in specs for flag in REFUSALS if not getattr(s.capabilities, flag)]
        if not pairs and os.environ.get("QUEUE_TEST_DRIVERS"):
            _NO_SELECTED_DRIVER.add(metafunc.definition.nodeid)
        metafunc.parametrize(("driver_spec", "lacking"), pairs,
                             ids=[f"{s.name}-{flag}" for s, flag in pairs],
                             indirect=["driver_spec"])
        return
    if not specs and os.environ.get("QUEUE_TEST_DRIVERS"):
        _NO_SELECTED_DRIVER.add(metafunc.definition.nodeid)
    metafunc.parametrize("driver_spec", specs, ids=[s.name for s in specs], indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    left_out = [item for item in items if item.nodeid.split("[", 1)[0] in _NO_SELECTED_DRIVER]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]


def _server_group(item: pytest.Item) -> str | None:
    """The back end a test uses (its driver's family, or its driver test file's)."""
    callspec = getattr(item, "callspec", None)
    spec = callspec.params.get("driver_spec") if callspec is not None else None
    if isinstance(spec, DriverSpec):
        return spec.name.split("-", 1)[0]
    name = Path(str(item.fspath)).stem
    if item.nodeid.startswith("tests/drivers/") and name.startswith("test_"):
        return name[len("test_"):].split("_", 1)[0]
    return None


SHARED_SERVERS = ("amqp",)
"""Back ends a test may take down for everyone (RabbitMQ's stop_app): with several test
processes (scripts/test.sh runs three), a test marked ``takes_server_down`` waits until no
other test uses that back end, and the others wait while it runs."""
ALONE_SERVERS = ("mysql",)
"""Back ends whose tests run one at a time across the test processes. Every MySQL test
shares one table, and once, with the other process's MySQL tests running beside it, a
worker stopping took more than 15 s (a lock wait on that table is the likely cause)."""


@pytest.fixture(autouse=True)
def _server_turn(request: pytest.FixtureRequest) -> Iterator[None]:
    group = _server_group(request.node)
    if group not in SHARED_SERVERS and group not in ALONE_SERVERS:
        yield
        return
    exclusive = group in ALONE_SERVERS or (
        request.node.get_closest_marker("takes_server_down") is not None)
    path = Path(tempfile.gettempdir()) / f"queue-core-tests-{group}.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


REFUSALS = ("delay", "priority", "retry", "keep_completed", "status", "manual_retry", "remove",
            "clear", "info", "listing", "reset_attempts", "multiprocess", "heartbeats",
            "retention", "unique", "rate_limit", "cancel", "progress", "transactional_push")
"""Capabilities whose absence the core must refuse with NotSupportedError."""


def _declares(spec: DriverSpec, flag: str) -> bool:
    if flag.startswith("!"):
        return not getattr(spec.capabilities, flag[1:])
    return bool(getattr(spec.capabilities, flag))


@pytest.fixture
def driver_spec(request: pytest.FixtureRequest) -> DriverSpec:
    spec: DriverSpec = request.param
    reason = spec.available()
    if reason:
        message = f"{spec.name} driver unavailable: {reason}"
        if REQUIRE_ALL:
            pytest.fail(message + " (QUEUE_TEST_REQUIRE_ALL=1)")
        pytest.skip(message)
    return spec


@pytest.fixture
def journal(tmp_path: Path) -> str:
    return str(tmp_path / "journal.txt")


@pytest.fixture
def queue_settings(driver_spec: DriverSpec, tmp_path: Path,
                   worker_mode: str) -> Iterator[Callable[..., dict[str, Any]]]:
    """Settings for a queue on a fresh channel of the driver under test, its worker run the
    way ``worker_mode`` says."""
    channel = f"t{uuid.uuid4().hex[:12]}"
    built: list[dict[str, Any]] = []

    def build(**extra: Any) -> dict[str, Any]:
        settings = driver_spec.settings(tmp_path, channel)
        settings["imports"] = ["tests.support.jobs"]
        settings.update({**WORKER_MODES, **MARKED_MODES}[worker_mode])
        settings.update(extra)
        built.append(settings)
        return settings
    yield build
    if built and driver_spec.cleanup is not None:
        driver_spec.cleanup(built[0])


@pytest.fixture
def make_queue(queue_settings: Callable[..., dict[str, Any]]) -> Iterator[Callable[..., Queue]]:
    made: list[Queue] = []

    def build(**extra: Any) -> Queue:
        queue = create_queue(queue_settings(**extra))
        made.append(queue)
        return queue
    yield build
    for queue in made:
        try:
            if queue.capabilities.clear:
                queue.clear()
        finally:
            queue.close()


@pytest.fixture
def queue(make_queue: Callable[..., Queue]) -> Queue:
    return make_queue()
