"""Queues for tests: the memory driver by default, the sync driver, or a file queue in a
directory of the test's own, keeping completed jobs so that tests can look at them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from queue_core.errors import ConfigError
from queue_core.queue import Queue
from queue_core.settings import create_queue

SHORT_DRIVERS = ("memory", "sync", "file")
"""Driver names ``queue_for_test`` takes besides a URL, a dict or a driver object."""

TEST_DEFAULTS: dict[str, Any] = {"keep_completed": True}
"""What a test queue does unlike a default one: it keeps completed jobs, so that ``pushed``
and ``queue.status`` still see them after a drain."""


def queue_for_test(driver: Any = "memory", *, directory: str | Path | None = None,
                   **settings: Any) -> Queue:
    """A queue for a test. ``driver`` is ``"memory"`` (jobs in this process, a store of
    this queue's own), ``"sync"`` (each job runs inside ``push``), ``"file"`` (a queue in
    ``directory``, which the caller creates and removes), or anything ``create_queue``
    takes as a driver. ``settings`` are ``create_queue`` settings (attempts, backoff, ttr,
    events, ...); bad ones raise ConfigError naming the key. Close the queue after use."""
    if "driver" in settings:
        raise ConfigError("pass the driver as queue_for_test's first argument", key="driver")
    if driver == "memory":
        driver = "memory://"
    elif driver == "sync":
        driver = "sync://"
    elif driver == "file":
        if directory is None:
            raise ConfigError("a file test queue needs a directory (the make_test_queue "
                              "fixture gives one under pytest's tmp_path)", key="driver")
        driver = {"url": Path(directory).resolve().as_uri()}
    elif directory is not None:
        raise ConfigError(f"directory is only for driver='file', not {driver!r}",
                          key="directory")
    return create_queue({**TEST_DEFAULTS, "driver": driver, **settings})
