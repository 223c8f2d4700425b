"""queue_core.contrib.flask as an app uses it: examples/flask_app through Flask's test
client, workers started by ``flask --app ... queue listen`` as real processes, and
``flask queue`` through Flask's CLI runner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from examples.flask_app import create_app, queues
from examples.flask_app.jobs import SendWelcome, signups
from queue_core import ConfigError, JobStatus, Queue
from queue_core.contrib.flask import QueueCore
from tests.support.procs import ROOT, wait_for


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    # Read by create_app here and by the worker processes, as in the example's README.
    monkeypatch.setenv("FLASK_DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    app = create_app()
    yield app
    queues.close(app)
    app.extensions["example_db"].dispose()


@pytest.mark.slow  # four Python processes start; 3 to 8 s on a busy machine
def test_a_view_pushes_in_its_transaction_and_flask_queue_listen_runs_it(app: Flask) -> None:
    client = app.test_client()
    created = client.post("/signups", json={"email": "ann@example.com"})
    assert created.status_code == 201, created.text
    job_id, signup = created.json["job"], created.json["signup"]  # type: ignore[index]
    # The same address again: the insert fails and takes the job pushed before it along.
    assert client.post("/signups", data={"email": "ann@example.com"}).status_code == 409
    assert client.get(f"/jobs/{job_id}").json == {"id": job_id, "status": "waiting",
                                                   "attempt": 0, "error": None}
    with app.app_context():
        assert queues.queue.info()[JobStatus.WAITING] == 1

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(ROOT), os.environ.get("PYTHONPATH")]))}
    # Two worker processes under a supervisor: each loads the app from --app anew, and
    # runs jobs in threads, which find the app context the worker pushed.
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "examples.flask_app", "queue", "listen",
         "--workers", "2", "--concurrency", "2", "--timeout", "0.5"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        wait_for(lambda: client.get(f"/signups/{signup}").json["welcomed"],  # type: ignore[index]
                 30, "the worker to run the welcome job")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        _, errors = worker.communicate(timeout=30)
    assert worker.returncode == 0, errors
    assert client.get(f"/jobs/{job_id}").json["status"] == "done"  # type: ignore[index]


def test_push_in_a_session_rolls_back_and_in_a_connection_commits(app: Flask) -> None:
    engine = app.extensions["example_db"]
    with app.app_context():
        queue = queues.queue
        with Session(engine) as session:
            session.execute(insert(signups).values(email="bob@example.com"))
            queue.push(SendWelcome("bob@example.com"), connection=session)
            session.rollback()
        assert sum(queue.info().values()) == 0
        with engine.begin() as conn:
            conn.execute(insert(signups).values(email="cy@example.com"))
            queue.push(SendWelcome("cy@example.com"), connection=conn)

    ran = app.test_cli_runner().invoke(args=["queue", "run"])
    assert ran.exit_code == 0, ran.output
    assert "processed 1 job" in ran.output
    with engine.connect() as conn:
        rows = conn.execute(select(signups.c.email, signups.c.welcomed)).all()
    assert [tuple(row) for row in rows] == [("cy@example.com", True)]


def _app(config: object) -> tuple[Flask, QueueCore]:
    app = Flask("configured")
    app.config["QUEUE_CORE"] = config
    return app, QueueCore(app)


def test_queue_core_config_shapes_errors_and_several_apps(tmp_path: Path) -> None:
    app, ext = _app(f"file://{tmp_path / 'one'}")
    assert isinstance(ext.queue, Queue) and ext.queue is ext.queue  # built once, kept
    assert app.extensions["queue_core"]["default"] is ext.queue
    _, ext = _app({"driver": "memory://", "ttr": 7})
    assert ext.queue.ttr == 7

    app, ext = _app({"default": "memory://", "mail": {"driver": f"file://{tmp_path / 'mail'}"}})
    assert ext.queues["mail"] is ext.get_queue("mail") is not ext.queue
    info = app.test_cli_runner().invoke(args=["queue", "--queue", "mail", "info"])
    assert info.exit_code == 0 and str(tmp_path / "mail") in info.output, info.output
    unknown = app.test_cli_runner().invoke(args=["queue", "info", "--queue", "nope"])
    assert unknown.exit_code == 2 and "no queue named 'nope'" in unknown.output
    with pytest.raises(ConfigError) as error:
        ext.get_queue("nope")
    assert error.value.key == "QUEUE_CORE.nope"

    for config, key in [(None, "QUEUE_CORE"),
                        ({"ttr": 3, "mail": "memory://"}, "QUEUE_CORE"),
                        ({"mail": {"tt": 1}}, "QUEUE_CORE.mail.tt"),
                        ({"mail": 3}, "QUEUE_CORE.mail")]:
        app = Flask("bad")
        if config is not None:
            app.config["QUEUE_CORE"] = config
        with pytest.raises(ConfigError) as error:
            QueueCore(app)
        assert error.value.key == key, error.value
    _, ext = _app({"default": {"driver": "nope://x"}})
    with pytest.raises(ConfigError) as error:
        ext.queue  # noqa: B018  (values are checked when the queue is built)
    assert error.value.key == "QUEUE_CORE.default.driver" and "nope" in str(error.value)

    # The app-factory pattern: one extension, each app with its own queues.
    ext = QueueCore()
    first, second = Flask("first"), Flask("second")
    for each in (first, second):
        each.config["QUEUE_CORE"] = "memory://"
        ext.init_app(each)
    with first.app_context():
        one = ext.queue
    with second.app_context():
        assert ext.queue is not one
    with first.app_context():
        assert ext.queue is one
    with pytest.raises(RuntimeError, match="app context"):
        ext.queue  # noqa: B018
    ext.close(first)
    with first.app_context():
        assert ext.queue is not one  # built again after close
