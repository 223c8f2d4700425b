"""What a driver does not declare, the core refuses with a sentence naming both."""

from __future__ import annotations

import pytest

from queue_core import NotSupportedError, Queue, control, create_queue
from tests.support.jobs import Record


def test_a_missing_capability_is_refused(make_queue, queue_settings, driver_spec,
                                         journal: str, lacking: str) -> None:
    name = driver_spec.cls.name
    match = f"the {name} driver does not support"
    queue: Queue
    if lacking == "retry":
        with pytest.raises(NotSupportedError, match=match):
            create_queue(queue_settings(attempts=3))
        with pytest.raises(NotSupportedError, match=match):
            create_queue(queue_settings(age_limit=60))
        with pytest.raises(NotSupportedError, match=match):
            make_queue().push(Record(journal, "x"), attempts=2)
        return
    if lacking == "multiprocess":
        with pytest.raises(NotSupportedError, match=match + " isolated jobs"):
            create_queue(queue_settings(isolate=True))
        with pytest.raises(NotSupportedError, match=match + " isolated jobs"):
            make_queue().worker(isolate="fork")
        return
    if lacking == "retention":
        with pytest.raises(NotSupportedError, match=match + " limits on kept jobs"):
            create_queue(queue_settings(keep_failed={"max_count": 10}))
        with pytest.raises(NotSupportedError, match=match + " limits on kept jobs"):
            create_queue(queue_settings(keep_failed=100))
        return
    if lacking == "rate_limit":
        from tests.support.limited_jobs import CrowdedStamp, MeteredStamp
        for settings in ({"rate": "5/s"}, {"rate": 3, "bucket_size": 1},
                         {"max_concurrent": 2}):
            with pytest.raises(NotSupportedError, match=match + " rate limits"):
                create_queue(queue_settings(**settings))
        queue = make_queue()
        for job in (MeteredStamp(journal, "x"), CrowdedStamp(journal, "y")):
            with pytest.raises(NotSupportedError,
                               match=f"{match} rate limits \\({type(job).__qualname__}"):
                queue.push(job)
        return
    if lacking == "keep_completed":
        with pytest.raises(NotSupportedError, match=match + " keeping completed"):
            create_queue(queue_settings(keep_completed=True))
        # A count or an age too, even where the driver limits the failed jobs it keeps.
        with pytest.raises(NotSupportedError, match=match + " keeping completed"):
            create_queue(queue_settings(keep_completed={"max_count": 10, "max_age": 60}))
        return
    queue = make_queue()
    calls = {
        "delay": lambda: queue.push(Record(journal, "x"), delay=5),
        "priority": lambda: queue.push(Record(journal, "x"), priority=1),
        "status": lambda: queue.status("1"),
        "manual_retry": lambda: queue.retry("1"),
        "remove": lambda: queue.remove("1"),
        "clear": lambda: queue.clear(),
        "info": lambda: queue.info(),
        "listing": lambda: queue.failed(),
        "reset_attempts": lambda: queue.retry("1", reset_attempts=True),
        "heartbeats": lambda: queue.workers(),
        "unique": lambda: queue.push(Record(journal, "x"), unique_key="k"),
        "cancel": lambda: queue.cancel("1"),
        # What Job.progress calls inside a worker's run (tests/contract/test_progress.py
        # runs a real job where the driver has progress).
        "progress": lambda: control.RunControl("1", queue.driver).progress(0.5, ""),
        # (Refused before the connection is looked at.)
        "transactional_push": lambda: queue.push(Record(journal, "x"), connection=object()),
    }
    with pytest.raises(NotSupportedError, match=match):
        calls[lacking]()
