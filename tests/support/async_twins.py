"""Async twins of the test jobs, to run the contract suites on the worker's event loop.

A queue built with ``AsyncTwinSerializer`` stores every job exactly as the JSON serializer
does; on decoding, the job becomes an instance of its twin, whose ``async def execute``
awaits the job's own ``execute`` run in a daemon thread, so that a job that sleeps or blocks
does not hold up the other jobs on the loop, and a run cancelled at its ttr does not keep
its worker from exiting. What the suites check then runs through the
worker's asyncio path: tasks, results, errors, cancellation at ttr.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from typing import Any

from queue_core import Job
from queue_core.serializers import JsonSerializer

_TWINS: dict[type[Job], type[Job]] = {}


def twin(kind: type[Job]) -> type[Job]:
    found = _TWINS.get(kind)
    if found is None and inspect.iscoroutinefunction(kind.execute):
        found = _TWINS[kind] = kind  # async already
    if found is None:
        async def execute(self: Job, queue: Any) -> Any:
            return await in_daemon_thread(kind.execute, self, queue)
        found = type(f"Async{kind.__name__}", (kind,),
                     {"execute": execute, "__module__": __name__}, abstract=True)
        _TWINS[kind] = found
    return found


async def in_daemon_thread(call: Callable[..., Any], *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(error: BaseException | None, result: Any) -> None:
        if not future.done():  # cancelled at its ttr meanwhile
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    def body() -> None:
        try:
            result = call(*args)
        except BaseException as error:
            outcome: tuple[BaseException | None, Any] = (error, None)
        else:
            outcome = (None, result)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:
            pass  # the loop is closed: nobody waits for this run any more

    threading.Thread(target=body, name="async twin", daemon=True).start()
    return await future


class AsyncTwinSerializer(JsonSerializer):
    def loads(self, data: bytes) -> tuple[Job, Any]:
        job, meta = super().loads(data)
        job.__class__ = twin(type(job))
        return job, meta
