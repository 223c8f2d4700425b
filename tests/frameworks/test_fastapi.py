"""examples/fastapi_app through FastAPI's test client: an endpoint pushes with ``apush``,
a real ``queue-core`` worker process runs the job, the status endpoint (``aget``) shows it
done."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from examples.fastapi_app.main import app
from tests.support.procs import ROOT


def test_endpoint_pushes_and_a_queue_core_worker_runs_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Read by the app's settings here and by the worker, as in the example's README.
    monkeypatch.setenv("EXAMPLE_QUEUE_URL", f"file://{tmp_path / 'queue'}")
    monkeypatch.setenv("EXAMPLE_REPORTS_DIR", str(tmp_path / "reports"))
    with TestClient(app) as client:
        pushed = client.post("/reports", json={"name": "june", "rows": 2})
        assert pushed.status_code == 202, pushed.text
        job_id = pushed.json()["job"]
        assert client.post("/reports", json={"name": "../x", "rows": 1}).status_code == 422
        assert client.get(f"/jobs/{job_id}").json()["status"] == "waiting"

        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
            str(ROOT), os.environ.get("PYTHONPATH")]))}
        worker = subprocess.run(
            [sys.executable, "-m", "queue_core", "--app",
             "examples.fastapi_app.settings:queue_settings", "run"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert worker.returncode == 0, worker.stderr
        assert "processed 1 job" in worker.stdout

        report = tmp_path / "reports" / "june.txt"
        assert client.get(f"/jobs/{job_id}").json() == {
            "id": job_id, "status": "done", "attempt": 1, "result": str(report), "error": None}
    assert report.read_text() == "row 0\nrow 1\n"
