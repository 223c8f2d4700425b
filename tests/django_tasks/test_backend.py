"""The django.tasks backend end to end: a real Django project (tests/django_tasks/project)
enqueues @task functions through QueueCoreBackend in one process, a queue-core worker
started with the backend's factory runs them in another, and Django's result API reads
the outcome back. Django runs only in these subprocesses, so its global configuration
never meets another test's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.drivers import DriverSpec
from tests.support.procs import ROOT, stop

PROJECT = Path(__file__).resolve().parent / "project"


def _env(settings: dict[str, Any], mark: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"DJANGO_SETTINGS_MODULE": "tasksite.settings",
                "QUEUE_TEST_SETTINGS": json.dumps(settings), "QUEUE_TEST_MARK": str(mark),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), str(ROOT),
                                                            env.get("PYTHONPATH")]))})
    return env


WORKERS = {
    # OPTIONS {"QUEUE": "default"}: the queue of settings.QUEUE_CORE, whose imports list
    # queue_core.contrib.django.tasks_worker; the worker is manage.py's.
    "QUEUE": [sys.executable, "manage.py", "queue", "listen", "--timeout", "1"],
    # OPTIONS {"SETTINGS": {...}}: the backend's own queue; the worker is the queue-core
    # command on the backend's factory.
    "SETTINGS": [sys.executable, "-m", "queue_core", "--app",
                 "queue_core.contrib.django.tasks_worker:queue", "listen", "--timeout", "1"],
}


def _scenario(driver_spec: DriverSpec, tmp_path: Path, options: str) -> tuple[Any, Path]:
    """Run project/scenario.py beside a worker; what it printed, and the mark file a
    module leaves when it is imported."""
    settings = driver_spec.settings(tmp_path, f"t{uuid.uuid4().hex[:12]}")
    settings.update({"attempts": 3, "backoff": 0, "ttr": 30, "keep_completed": True})
    mark = tmp_path / "unlisted-imported"
    env = _env(settings, mark)
    env["QUEUE_TEST_TASKS_OPTIONS"] = options
    worker = subprocess.Popen(WORKERS[options], env=env, cwd=PROJECT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        producer = subprocess.run([sys.executable, "scenario.py"], env=env, cwd=PROJECT,
                                  capture_output=True, text=True, timeout=60)
    finally:
        _, _, worker_log = stop(worker)
    assert producer.returncode == 0, producer.stderr + worker_log
    return json.loads(producer.stdout), mark


@pytest.mark.drivers("sqlite", "postgresql")
def test_tasks_retry_per_queue_settings_and_report_through_django(
        driver_spec: DriverSpec, tmp_path: Path) -> None:
    out, mark = _scenario(driver_spec, tmp_path, "QUEUE")
    _check(out, mark)


@pytest.mark.drivers("sqlite")
def test_a_backend_with_its_own_queue_settings_and_the_factory_worker(
        driver_spec: DriverSpec, tmp_path: Path) -> None:
    out, mark = _scenario(driver_spec, tmp_path, "SETTINGS")
    _check(out, mark)


def _check(out: Any, mark: Path) -> None:
    assert out["enqueued"] == {"flaky": "READY", "fails": "READY", "add": "READY"}
    assert "JSON" in out["refused"]["not_json"]
    assert "'nosuch'" in out["refused"]["queue_name"], out["refused"]

    results = out["results"]
    # attempts: 3 in the queue's settings: two failed runs, then the third succeeds.
    assert results["flaky"]["status"] == "SUCCESSFUL", results
    assert results["flaky"]["attempts"] == 3
    assert results["flaky"]["return_value"] == 3
    assert out["by_id"] == {"status": "SUCCESSFUL", "return_value": 3, "same_id": True}
    # Always failing: FAILED after its three attempts, its error readable.
    fails = results["fails"]
    assert fails["status"] == "FAILED" and fails["attempts"] == 3
    assert fails["errors"][-1]["class"] == "builtins.ValueError"
    assert "the report template is missing" in fails["errors"][-1]["traceback"]
    assert results["add"] == {"status": "SUCCESSFUL", "attempts": 1, "errors": [],
                              "return_value": {"sum": 5}}
    assert out["add_priority"] == 1024 - 10

    # Payloads naming unregistered tasks: failed at once, never imported, never retried;
    # the worker carried on (the tasks above ran after them).
    for stranger in out["strangers"]:
        assert stranger["status"] == "failed" and stranger["attempt"] == 1, stranger
        assert "is not registered in this worker" in stranger["error"]
        assert "not registered in this process" in stranger["get_result"]
    assert not mark.exists(), "the worker imported a module because a payload named it"


def test_a_stored_attempt_count_out_of_bounds_reads_as_the_largest_count(tmp_path: Path) -> None:
    """Django counts a result's attempts as the length of a list: a damaged record's
    attempt count (2**31 - 1) must not become a list that long."""
    script = (
        "import django; django.setup()\n"
        "from queue_core.bounds import MAX_ATTEMPTS\n"
        "from queue_core.contrib.django.tasks_results import result_from_info\n"
        "from queue_core.model import JobInfo, JobStatus\n"
        "from tasksapp.tasks import flaky\n"
        "info = JobInfo('7', JobStatus.FAILED, attempt=2**31 - 1)\n"
        "result = result_from_info(flaky, '7', info, [], {}, 'default')\n"
        "print(result.attempts == MAX_ATTEMPTS, result.status)\n")
    settings = {"driver": f"file://{tmp_path}/queue"}
    done = subprocess.run([sys.executable, "-c", script], env=_env(settings, tmp_path / "m"),
                          cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "FAILED"], done.stdout
