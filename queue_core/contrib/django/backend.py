"""``QueueCoreBackend``: a backend of Django's Tasks framework (``django.tasks``, or the
``django_tasks`` backport) that runs ``@task`` functions on queue-core, with its drivers,
retries (``attempts``, ``backoff``, ``age_limit``) and ttr.

    TASKS = {"default": {"BACKEND": "queue_core.contrib.django.QueueCoreBackend",
                         "OPTIONS": {"QUEUE": "default"}}}

``OPTIONS`` names where tasks go: ``QUEUE``, the name of a queue in ``settings.QUEUE_CORE``
(the default: ``"default"``), or a dict of Django queue name -> such a name; or
``SETTINGS``, the settings of a queue of its own (what ``create_queue`` takes). A result
id is the job id, prefixed with the Django queue name (``"mail:42"``) when the backend
spreads its queue names over several queue-core queues. See docs/django-tasks.md.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from ...errors import JobNotFoundError, QueueError, SerializationError
from ...queue import Queue
from ...settings import create_queue
from .tasks_compat import (
    DEFAULT_TASK_PRIORITY,
    DEFAULT_TASK_QUEUE_NAME,
    TASK_MAX_PRIORITY,
    TASK_MIN_PRIORITY,
    BaseTaskBackend,
    InvalidTask,
    InvalidTaskBackend,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_enqueued,
)
from .tasks_job import (
    DjangoTask,
    TaskPayloadError,
    decode_arguments,
    encode_arguments,
    find_task,
    register_task,
)
from .tasks_results import result_from_info

logger = logging.getLogger(__name__)

OPTION_KEYS = ("QUEUE", "SETTINGS")
DEFAULT_QUEUE = "default"
CENTRE = 1024
"""queue-core's default priority (model.DEFAULT_PRIORITY): Django's 0 lands on it, so that
tasks and plain jobs pushed without a priority share one rank."""

_inline: dict[str, tuple[Any, Queue]] = {}
_inline_lock = threading.Lock()


class QueueCoreBackend(BaseTaskBackend):  # type: ignore[misc]
    """Runs Django tasks as queue-core jobs (``DjangoTask``) on the queue(s) ``OPTIONS``
    names; reads their results back from the queue's job records."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True
    queues: set[str]
    options: Any

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options = self.options
        if not isinstance(options, Mapping):
            raise self._bad(f"OPTIONS must be a dict, got {type(options).__name__}")
        unknown = sorted(str(key) for key in options if key not in OPTION_KEYS)
        if unknown:
            raise self._bad(f"unknown OPTIONS key(s) {', '.join(map(repr, unknown))}; "
                            f"expected {' or '.join(map(repr, OPTION_KEYS))}")
        if "QUEUE" in options and "SETTINGS" in options:
            raise self._bad("give OPTIONS either QUEUE (a queue of settings.QUEUE_CORE) or "
                            "SETTINGS (a queue's own settings), not both")
        self._settings: Any = options.get("SETTINGS")
        if "SETTINGS" in options and not isinstance(self._settings, (Mapping, str)):
            raise self._bad("OPTIONS['SETTINGS'] must be queue settings (a dict or a driver "
                            f"URL), got {type(self._settings).__name__}")
        self._routes: dict[str, str] | None = None
        self._queue_name = DEFAULT_QUEUE
        target = options.get("QUEUE", DEFAULT_QUEUE)
        if isinstance(target, Mapping):
            self._routes = self._read_routes(target, params)
        elif isinstance(target, str) and target:
            self._queue_name = target
        else:
            raise self._bad("OPTIONS['QUEUE'] must be the name of a queue in "
                            "settings.QUEUE_CORE, or a dict of Django queue name -> such a "
                            f"name, got {target!r}")
        self.single = self._routes is None or len(set(self._routes.values())) == 1
        """One queue-core queue behind every Django queue name: result ids are job ids."""

    def _bad(self, problem: str) -> Exception:
        return InvalidTaskBackend(f"TASKS[{self.alias!r}]: {problem}")

    def _read_routes(self, target: Mapping[Any, Any], params: dict[str, Any]) -> dict[str, str]:
        routes: dict[str, str] = {}
        for name, queue in target.items():
            if not isinstance(name, str) or not name or ":" in name:
                raise self._bad(f"OPTIONS['QUEUE']: Django queue name {name!r} must be a "
                                "non-empty string without ':'")
            if not isinstance(queue, str) or not queue:
                raise self._bad(f"OPTIONS['QUEUE'][{name!r}] must name a queue of "
                                f"settings.QUEUE_CORE, got {queue!r}")
            routes[name] = queue
        if not routes:
            raise self._bad("OPTIONS['QUEUE'] is an empty dict: map at least one Django "
                            "queue name to a queue of settings.QUEUE_CORE")
        if "QUEUES" in params:
            unrouted = sorted(set(self.queues) - set(routes))
            if unrouted or not self.queues:
                raise self._bad("QUEUES lists Django queue names that OPTIONS['QUEUE'] does "
                                f"not map: {', '.join(map(repr, unrouted)) or 'any name'}")
        else:
            self.queues = set(routes)
        return routes

    # -- queues ------------------------------------------------------------------------

    def queue_for(self, queue_name: str = DEFAULT_TASK_QUEUE_NAME) -> Queue:
        """The queue-core queue that runs the tasks of Django queue ``queue_name``."""
        if self._settings is not None:
            return self._inline_queue()
        name = self._queue_name
        if self._routes is not None:
            if queue_name not in self._routes:
                raise InvalidTask(self._unknown_queue(queue_name))
            name = self._routes[queue_name]
        from . import get_queue
        found: Queue = get_queue(name)
        return found

    def _inline_queue(self) -> Queue:
        # One queue per alias for the process: Django builds a backend per thread.
        with _inline_lock:
            held = _inline.get(self.alias)
            if held is not None and held[0] == self._settings:
                return held[1]
            queue = create_queue(self._settings)
            _inline[self.alias] = (self._settings, queue)
        if held is not None:
            held[1].close()
        return queue

    def queues_in_use(self) -> dict[str, Queue]:
        """Every queue-core queue this backend sends to, by a Django queue name that
        reaches it."""
        names = sorted(self._routes) if self._routes is not None else [DEFAULT_TASK_QUEUE_NAME]
        found: dict[int, tuple[str, Queue]] = {}
        for name in names:
            queue = self.queue_for(name)
            found.setdefault(id(queue), (name, queue))
        return dict(found.values())

    def _unknown_queue(self, queue_name: Any) -> str:
        known = ", ".join(repr(name) for name in sorted(self.queues)) or "none"
        return (f"queue_name {queue_name!r} is not a queue of the task backend "
                f"{self.alias!r} (its queues: {known})")

    # -- the Tasks API -----------------------------------------------------------------

    def validate_task(self, task: Any) -> None:
        if self.queues and task.queue_name not in self.queues:
            raise InvalidTask(self._unknown_queue(task.queue_name))
        super().validate_task(task)
        # The allowlist of what a worker of this process may run (tasks_job).
        register_task(task)

    def result_id(self, queue_name: str, job_id: str) -> str:
        return job_id if self.single else f"{queue_name}:{job_id}"

    def _split_id(self, result_id: Any) -> tuple[str, str]:
        if not isinstance(result_id, str) or not result_id:
            raise TaskResultDoesNotExist(f"{result_id!r} is not a task result id")
        if self.single:
            return DEFAULT_TASK_QUEUE_NAME if self._routes is None else next(
                iter(self._routes)), result_id
        queue_name, sep, job_id = result_id.partition(":")
        if not sep or self._routes is None or queue_name not in self._routes:
            raise TaskResultDoesNotExist(
                f"{result_id!r} is not a result id of the task backend {self.alias!r}: "
                "expected '<queue name>:<job id>' with one of its queue names")
        return queue_name, job_id

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        queue = self.queue_for(task.queue_name)
        try:
            arguments = encode_arguments(args, kwargs)
        except ValueError as exc:
            raise InvalidTask(f"task {task.module_path}: {exc}") from None
        job = DjangoTask(task.module_path, arguments, self.alias, task.queue_name)
        job_id = queue.push(job, delay=self._delay(task), priority=self._priority(task, queue))
        if job_id is None:
            raise InvalidTask(f"task {task.module_path} was not enqueued: a before_push "
                              "handler of its queue cancelled the push")
        result_id = self.result_id(task.queue_name, job_id)
        if queue.capabilities.runs_at_push and queue.capabilities.status:
            return self.get_result(result_id)  # the sync driver ran it inside push
        plain = json.loads(arguments)
        result = TaskResult(task=task, id=result_id, status=TaskResultStatus.READY,
                            enqueued_at=self._now(), started_at=None, finished_at=None,
                            last_attempted_at=None, args=plain["args"],
                            kwargs=plain["kwargs"], backend=self.alias, errors=[],
                            worker_ids=[])
        task_enqueued.send(type(self), task_result=result)
        return result

    @staticmethod
    def _now() -> dt.datetime:
        from django.utils import timezone
        now: dt.datetime = timezone.now()
        return now

    def _delay(self, task: Any) -> float:
        if task.run_after is None:
            return 0.0
        run_after: dt.datetime = task.run_after
        if run_after.tzinfo is None:  # validate_task allows it only without USE_TZ
            from django.utils import timezone
            run_after = timezone.make_aware(run_after)
        return max(0.0, (run_after - dt.datetime.now(dt.timezone.utc)).total_seconds())

    def _priority(self, task: Any, queue: Queue) -> int | None:
        """Django's priority (-100..100, higher first) as queue-core's (lower first)."""
        priority = int(task.priority)
        caps = queue.capabilities
        if caps.runs_at_push:
            return None  # the sync driver runs each task inside enqueue: none waits
        if not caps.priority:
            if priority == DEFAULT_TASK_PRIORITY:
                return None
            raise InvalidTask(f"task {task.module_path}: priority {priority} cannot be kept: "
                              f"the {queue.driver.name} driver has no priorities (use the "
                              "default priority 0, or a driver with priorities)")
        low, high = caps.priority_range
        if low <= CENTRE - TASK_MAX_PRIORITY and CENTRE - TASK_MIN_PRIORITY <= high:
            return None if priority == DEFAULT_TASK_PRIORITY else CENTRE - priority
        # A narrow range (AMQP's 0..255): spread Django's 201 levels over it.
        span = TASK_MAX_PRIORITY - TASK_MIN_PRIORITY
        return low + round((TASK_MAX_PRIORITY - priority) * (high - low) / span)

    def get_result(self, result_id: str) -> Any:
        queue_name, job_id = self._split_id(result_id)
        queue = self.queue_for(queue_name)
        if not queue.capabilities.status:
            raise NotImplementedError(
                f"the {queue.driver.name} driver keeps no job status: the results of the "
                f"task backend {self.alias!r} cannot be read back")
        try:
            info = queue.get(job_id)
        except JobNotFoundError:
            raise TaskResultDoesNotExist(
                f"no task result {result_id!r} in {queue.driver.describe()} (a finished task "
                "is found only while its queue keeps it: keep_completed for successful "
                "ones, keep_failed for failed ones)") from None
        if info.job_name != DjangoTask.job_name:
            raise TaskResultDoesNotExist(f"job {result_id!r} is not a Django task "
                                         f"(it is a {info.job_name!r} job)")
        try:
            job, _meta = queue.decode(info.payload)
        except (SerializationError, QueueError) as exc:
            raise TaskResultDoesNotExist(f"task result {result_id!r} cannot be read: "
                                         f"{exc}") from None
        assert isinstance(job, DjangoTask)
        task = find_task(job.task) if isinstance(job.task, str) else None
        if task is None:
            raise TaskResultDoesNotExist(
                f"task result {result_id!r} is of task {str(job.task)[:200]!r}, which is not "
                "registered in this process (import the module that defines it)")
        if task.backend != self.alias:
            task = task.using(backend=self.alias)
        try:
            args, kwargs = decode_arguments(job.arguments)
        except TaskPayloadError:
            args, kwargs = [], {}  # the job failed on them; its error tells why
        return result_from_info(task, result_id, info, args, kwargs, self.alias)

    def check(self, **kwargs: Any) -> list[Any]:
        """Django system checks: the queues exist and can give results back."""
        from django.core import checks
        messages: list[Any] = []
        try:
            queues = self.queues_in_use()
        except Exception as exc:  # noqa: BLE001 - any failure is the check's finding
            return [checks.Error(f"task backend {self.alias!r}: its queue cannot be built: "
                                 f"{type(exc).__name__}: {exc}", id="queue_core.E001")]
        for name, queue in queues.items():
            where = f"task backend {self.alias!r}, queue {name!r} ({queue.driver.name} driver)"
            if not queue.capabilities.status:
                messages.append(checks.Warning(
                    f"{where}: the driver keeps no job status, so get_result() cannot work",
                    id="queue_core.W001"))
            elif not queue.keep_completed:
                messages.append(checks.Warning(
                    f"{where}: keep_completed is off, so a task that succeeded can no longer "
                    "be found: get_result() raises TaskResultDoesNotExist for it",
                    hint="set keep_completed (True, a count or {'max_age': seconds}) in the "
                         "queue's settings", id="queue_core.W002"))
        return messages
