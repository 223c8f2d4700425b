"""The producer side of tests/django_tasks: enqueues through Django's Tasks API, waits
for a worker (started by the test) to finish, and prints what Django's result API reads
back, as JSON on stdout."""

import json
import sys
import time

import django

django.setup()

from django_tasks import default_task_backend  # noqa: E402
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist  # noqa: E402
from tasksapp.tasks import add, always_fails, flaky  # noqa: E402

from queue_core.contrib.django.tasks_job import DjangoTask  # noqa: E402


def refused(call):  # type: ignore[no-untyped-def]
    try:
        call()
    except InvalidTaskError as exc:
        return str(exc)
    return None


def described(result):  # type: ignore[no-untyped-def]
    out = {"status": str(result.status), "attempts": result.attempts,
           "errors": [{"class": e.exception_class_path, "traceback": e.traceback}
                      for e in result.errors]}
    if result.status == "SUCCESSFUL":
        out["return_value"] = result.return_value
    return out


def main() -> None:
    queue = default_task_backend.queue_for("default")
    out = {}
    # Payloads naming tasks this process never registered: one in a module that exists
    # (importing it would leave a mark), one outside the project. Pushed first: the
    # worker must fail them and carry on with the rest.
    strangers = [queue.push(DjangoTask(path, '{"args":[],"kwargs":{}}', "default", "default"))
                 for path in ("tasksapp.unlisted.run", "os.getcwd")]
    results = {"flaky": flaky.enqueue(until=3), "fails": always_fails.enqueue(),
               "add": add.enqueue(2, 3)}
    out["enqueued"] = {name: str(r.status) for name, r in results.items()}
    out["refused"] = {
        "not_json": refused(lambda: add.enqueue(object(), 1)),
        "queue_name": refused(lambda: add.using(queue_name="nosuch").enqueue(1, 2)),
    }
    deadline = time.monotonic() + 30
    while not all(r.is_finished for r in results.values()):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
        for r in results.values():
            r.refresh()
    out["results"] = {name: described(r) for name, r in results.items()}
    # Read back by id, as a view would, through the task and the backend.
    again = flaky.get_result(results["flaky"].id)
    out["by_id"] = {"status": str(again.status), "return_value": again.return_value,
                    "same_id": again.id == results["flaky"].id}
    # Django's priority 10 (higher first) as queue-core's (lower first, 1024 the default).
    out["add_priority"] = queue.get(results["add"].id).priority
    out["strangers"] = []
    for job_id in strangers:
        info = queue.get(job_id)
        try:
            default_task_backend.get_result(job_id)
            readable = "read"
        except TaskResultDoesNotExist as exc:
            readable = str(exc)
        out["strangers"].append({"status": str(info.status), "attempt": info.attempt,
                                 "error": str(info.error), "get_result": readable})
    json.dump(out, sys.stdout)


main()
