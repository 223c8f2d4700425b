"""The pytest plugin (entry point ``pytest11``): fixtures only; nothing happens unless a test
uses one. Loading it imports pytest, the queue_core package (the parent of this module;
standard library only) and the helpers beside it; drivers load when a fixture builds a queue.

- ``queue_core_queue``: a test queue, memory driver by default, closed after the test;
  its settings come from the ``queue_core_settings`` fixture (override it in a conftest)
  and then from the test's ``queue_core`` marker:
  ``@pytest.mark.queue_core("sync", attempts=3)``.
- ``make_test_queue``: a factory, ``make_test_queue("file", attempts=3)``, for a test that
  needs several queues or builds one late; every queue it made is closed after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from queue_core.queue import Queue

MARKER = "queue_core"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(driver='memory', **settings): the driver ('memory', 'sync', "
        "'file' or a URL) and create_queue settings of the queue_core_queue fixture")


@pytest.fixture
def queue_core_settings() -> dict[str, Any]:
    """Settings for ``queue_core_queue``: the driver ('memory', 'sync', 'file' or any
    create_queue driver) and create_queue settings. Override it in a conftest or a test
    module to change every test queue there."""
    return {}


@pytest.fixture
def make_test_queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Queue]]:
    """A factory of test queues: ``make_test_queue(driver="memory", **settings)``; a
    ``"file"`` queue gets a fresh directory under pytest's temporary directory."""
    from queue_core.testing.queues import queue_for_test

    made: list[Queue] = []

    def make(driver: Any = "memory", **settings: Any) -> Queue:
        directory = tmp_path_factory.mktemp("queue") if driver == "file" else None
        made.append(queue_for_test(driver, directory=directory, **settings))
        return made[-1]

    yield make
    for queue in reversed(made):
        queue.close()


@pytest.fixture
def queue_core_queue(request: pytest.FixtureRequest, make_test_queue: Callable[..., Queue],
                     queue_core_settings: dict[str, Any]) -> Queue:
    """A test queue (memory driver unless the settings or the marker say otherwise)."""
    settings = dict(queue_core_settings)
    # The closest marker (the test's own) is applied last, over its class's and module's.
    for marker in reversed(list(request.node.iter_markers(MARKER))):
        if len(marker.args) > 1:
            raise pytest.UsageError(f"@pytest.mark.{MARKER} takes at most one positional "
                                    f"argument, the driver; got {marker.args!r}")
        if marker.args:
            settings["driver"] = marker.args[0]
        settings.update(marker.kwargs)
    driver = settings.pop("driver", "memory")
    return make_test_queue(driver, **settings)
