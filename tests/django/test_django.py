"""The example Django project (examples/django_app) on SQLite and PostgreSQL: a view pushes
jobs inside ``transaction.atomic()`` (on commit, and in the transaction itself), a worker
started by ``manage.py queue listen --workers 2`` runs them, rolled-back orders push
nothing, and ``manage.py queue info`` counts what ran.

Django runs only in subprocesses (manage.py and scenario.py), never in the test process,
so no Django settings leak into other tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import ROOT
from tests.support.specs.db import POSTGRESQL_URL, _reachable

EXAMPLE = ROOT / "examples" / "django_app"
SCENARIO = Path(__file__).with_name("scenario.py")

SQLITE_DATABASES = """
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": BASE_DIR / "db.sqlite3",
                         "OPTIONS": {"transaction_mode": "IMMEDIATE"}}}
"""
POSTGRESQL_DATABASES = """
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "test",
                         "USER": "postgres", "HOST": "127.0.0.1", "PORT": "5432",
                         "OPTIONS": {"options": "-c search_path={schema}"}}}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A copy of the example project whose settings put everything in this test's own
    place: a fresh SQLite file, or a fresh PostgreSQL schema (the shop's tables, Django's
    and the queue's), and a queue table named for this run."""
    run = uuid.uuid4().hex[:10]
    copy = tmp_path / "project"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("db.sqlite3*", "__pycache__"))
    schema = None
    databases = SQLITE_DATABASES
    if request.param == "postgresql":
        reason = _reachable(POSTGRESQL_URL)
        if reason:
            pytest.skip(reason)
        schema = f"django_{run}"
        _postgresql(f"CREATE SCHEMA {schema}")
        databases = POSTGRESQL_DATABASES.replace("{schema}", schema)
    (copy / "test_settings.py").write_text(
        "from mysite.settings import *  # noqa: F403\n" + databases
        + "QUEUE_CORE['default'].update(driver={'table': 'jobs_" + run + "', "
        "'poll_interval': 0.02, 'max_poll_interval': 0.2}, keep_completed=True)\n")
    try:
        yield copy
    finally:
        if schema is not None:
            _postgresql(f"DROP SCHEMA {schema} CASCADE")


def _postgresql(statement: str) -> None:
    import sqlalchemy
    engine = sqlalchemy.create_engine(POSTGRESQL_URL)
    with engine.begin() as connection:
        connection.exec_driver_sql(statement)
    engine.dispose()


def _env(project: Path) -> dict[str, str]:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="test_settings")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project), str(ROOT),
                                                      env.get("PYTHONPATH")]))
    return env


def manage(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=project, env=_env(project),
                          capture_output=True, text=True, timeout=60)


def test_views_push_in_atomic_blocks_and_manage_py_workers_run_what_committed(
        project: Path) -> None:
    migrated = manage(project, "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "queue", "listen", "--workers", "2", "--timeout", "1"],
        cwd=project, env=_env(project), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        scenario = subprocess.run([sys.executable, str(SCENARIO), "30"], cwd=project,
                                  env=_env(project), capture_output=True, text=True, timeout=60)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    assert scenario.returncode == 0, scenario.stdout + scenario.stderr
    report = json.loads(scenario.stdout.splitlines()[-1])
    assert len(report["placed"]) == 2
    assert set(report["statuses"].values()) == {"confirmed"}, (report, err)
    assert worker.returncode == 0, out + err

    info = manage(project, "queue", "info")
    assert info.returncode == 0, info.stderr
    counts = {line.split()[0]: line.split()[1] for line in info.stdout.splitlines()
              if line.startswith("  ")}
    # Kept completed jobs: exactly the two committed orders' jobs ran; the rolled-back
    # ones were never pushed (a leaked one would be done, failed or waiting here).
    assert counts == {"waiting": "0", "delayed": "0", "reserved": "0", "done": "2",
                      "failed": "0"}, info.stdout
