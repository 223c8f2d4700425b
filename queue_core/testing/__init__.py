"""Testing helpers for applications that use queue-core, and its pytest plugin.

``queue_for_test`` builds a queue on the memory driver (or sync, or a file queue);
``drain`` runs what is ready, retries included, without waiting out backoffs; ``pushed``,
``assert_pushed``, ``assert_nothing_pushed``, ``failed_jobs`` and ``assert_failed`` look
at what a queue holds. The pytest fixtures (plugin.py) wrap them: see docs/testing.md.
"""

from .asserts import (
    FailedJob,
    assert_failed,
    assert_nothing_pushed,
    assert_pushed,
    describe,
    failed_jobs,
    pushed,
)
from .drain import DrainError, DrainResult, Run, drain
from .queues import queue_for_test

__all__ = [
    "DrainError", "DrainResult", "FailedJob", "Run", "assert_failed", "assert_nothing_pushed",
    "assert_pushed", "describe", "drain", "failed_jobs", "pushed", "queue_for_test",
]
