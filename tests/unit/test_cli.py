"""The real queue-core command: output and exit codes, bad arguments included."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.procs import ROOT, kill_group, queue_core, stop, wait_for, worker_env


def cli(*args: str, settings: dict | None = None, app: str | None = "tests.support.app:queue",
        timeout: float = 30, stdin: str = "") -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "queue_core"]
    if app:
        command += ["--app", app]
    env = worker_env(settings or {"driver": "sync://"})
    return subprocess.run([*command, *args], env=env, cwd=ROOT, text=True, input=stdin,
                          capture_output=True, timeout=timeout)


@pytest.fixture
def file_settings(tmp_path: Path) -> dict:
    return {"driver": f"file://{tmp_path}/q", "imports": ["tests.support.jobs"],
            "keep_completed": True}


def push(settings: dict, *jobs) -> list[str]:  # type: ignore[no-untyped-def]
    from queue_core import create_queue
    queue = create_queue(settings)
    return [queue.push(job) for job in jobs]


def test_info_prints_counts_and_capabilities(file_settings: dict, tmp_path: Path) -> None:
    from tests.support.jobs import Record
    push(file_settings, Record(str(tmp_path / "j"), "a"), Record(str(tmp_path / "j"), "b"))
    result = cli("info", settings=file_settings)
    assert result.returncode == 0, result.stderr
    assert "waiting   2" in result.stdout and "failed    0" in result.stdout
    assert "supports:" in result.stdout and "delay" in result.stdout
    assert "oldest waiting: " in result.stdout and "s ago" in result.stdout
    result = cli("info", "--json", settings=file_settings)
    data = json.loads(result.stdout)
    assert data["counts"]["waiting"] == 2 and data["capabilities"]["priority"] is True
    assert 0 <= data["oldest_waiting_seconds"] < 60


def test_run_processes_what_is_ready(file_settings: dict, tmp_path: Path) -> None:
    from tests.support.jobs import Record, read_lines
    journal = str(tmp_path / "j")
    push(file_settings, *[Record(journal, f"r{i}") for i in range(3)])
    result = cli("run", settings=file_settings)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "processed 3 jobs"
    assert read_lines(journal) == ["r0", "r1", "r2"]


def test_listen_with_max_jobs_exits_zero(file_settings: dict, tmp_path: Path) -> None:
    from tests.support.jobs import Record, read_lines
    journal = str(tmp_path / "j")
    push(file_settings, *[Record(journal, f"r{i}") for i in range(4)])
    result = cli("listen", "--timeout", "0.2", "--max-jobs", "2", settings=file_settings)
    assert result.returncode == 0, result.stderr
    assert read_lines(journal) == ["r0", "r1"]


def test_app_from_the_environment(file_settings: dict) -> None:
    env = worker_env(file_settings)
    env["QUEUE_APP"] = "tests.support.app:queue"
    result = subprocess.run([sys.executable, "-m", "queue_core", "info"], env=env, cwd=ROOT,
                            text=True, capture_output=True, timeout=30)
    assert result.returncode == 0 and "waiting" in result.stdout


@pytest.mark.parametrize("args, app, message", [
    ((), "tests.support.app:queue", "no command given"),
    (("info",), None, "no queue given: pass --app module:attr or set QUEUE_APP"),
    (("info",), "tests.support.app", "must look like package.module:attribute"),
    (("info",), "no_such_module:queue", "cannot import module 'no_such_module'"),
    (("info",), "tests.support.app:nothing", "has no attribute 'nothing'"),
    (("frobnicate",), "tests.support.app:queue", "invalid choice: 'frobnicate'"),
    (("listen", "--timeout", "-1"), "tests.support.app:queue", "'-1' must be >= 0"),
    (("listen", "--max-jobs", "zero"), "tests.support.app:queue", "is not a whole number"),
    (("run", "--bogus"), "tests.support.app:queue", "unrecognized arguments: --bogus"),
])
def test_bad_arguments_exit_2_with_one_sentence(args, app, message) -> None:  # type: ignore[no-untyped-def]
    result = cli(*args, app=app)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("settings, message", [
    ({"driver": "sync://", "ttr": -5}, "ttr must be a positive number"),
    ({"driver": "nosuch://x"}, "unknown scheme 'nosuch'"),
    ({"driver": "sync://", "attempts": 3}, "the sync driver does not support retries"),
    ({"driver": "sync://", "colour": "blue"}, "unknown setting 'colour'"),
])
def test_bad_settings_exit_2_with_one_sentence(settings: dict, message: str) -> None:
    result = cli("info", settings=settings)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_help_lists_the_commands() -> None:
    result = cli("--help", app=None)
    assert result.returncode == 0
    for command in ("listen", "run", "info"):
        assert command in result.stdout


def test_global_options_after_the_command(file_settings: dict, tmp_path: Path) -> None:
    from tests.support.jobs import Record, read_lines
    journal = str(tmp_path / "j")
    push(file_settings, Record(journal, "a"))
    result = cli("listen", "--app", "tests.support.app:queue", "-v", "--timeout", "0.2",
                 "--max-jobs", "1", app=None, settings=file_settings)
    assert result.returncode == 0, result.stderr
    assert read_lines(journal) == ["a"]
    assert "Record (attempt 1, pid" in result.stdout and "- started" in result.stdout
    result = cli("info", "--app", "tests.support.app:queue", "--verbose", app=None,
                 settings=file_settings)
    assert result.returncode == 0, result.stderr
    assert "done      1" in result.stdout


def test_the_app_after_the_command_wins(file_settings: dict) -> None:
    result = cli("info", "--app", "tests.support.app:queue", app="no_such_module:queue",
                 settings=file_settings)
    assert result.returncode == 0, result.stderr
    assert "waiting   0" in result.stdout


def test_verbose_counts_before_and_after_the_command_add_up(file_settings: dict,
                                                            tmp_path: Path) -> None:
    from tests.support.jobs import Record
    journal = str(tmp_path / "j")
    stopping = "processed 1 jobs (max_jobs): stopping"  # an info log: shown from -vv
    push(file_settings, Record(journal, "a"))
    once = cli("-v", "listen", "--timeout", "0.2", "--max-jobs", "1", settings=file_settings)
    assert once.returncode == 0, once.stderr
    assert "- started" in once.stdout and stopping not in once.stderr
    push(file_settings, Record(journal, "b"))
    twice = cli("-v", "listen", "-v", "--timeout", "0.2", "--max-jobs", "1",
                settings=file_settings)
    assert twice.returncode == 0, twice.stderr
    assert "- started" in twice.stdout and stopping in twice.stderr


@pytest.mark.parametrize("command", ["listen", "run", "info", "status", "retry", "clear"])
def test_help_of_a_command_lists_the_global_options(command: str) -> None:
    result = cli(command, "--help", app=None)
    assert result.returncode == 0, result.stderr
    assert "global options:" in result.stdout
    assert "--app APP" in result.stdout and "-v, --verbose" in result.stdout


def test_a_stop_signal_while_the_worker_exits_leaves_the_exit_code_0(
        file_settings: dict, tmp_path: Path) -> None:
    # Supervisors and process groups often send SIGTERM twice; the second one may land after
    # the worker has put back the handlers it found, while the process is on its way out.
    ready, exiting = tmp_path / "ready", tmp_path / "exiting"
    worker = queue_core(file_settings, "listen", "--timeout", "0.2", ready=ready,
                        exiting=exiting)
    try:
        wait_for(ready.exists, 20, "the worker to start")
        worker.send_signal(signal.SIGTERM)
        wait_for(exiting.exists, 20, "the worker to begin its exit")
        code, _, err = stop(worker, signal.SIGTERM)
    finally:
        kill_group(worker)
    assert code == 0, err


def test_workers_and_info_list_the_workers_heartbeats(file_settings: dict) -> None:
    from queue_core import create_queue
    from queue_core.model import WorkerInfo
    queue = create_queue(file_settings)
    result = cli("workers", settings=file_settings)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("no workers are beating on file:")
    now = time.time()
    queue.driver.beat(WorkerInfo(id="vm-77-00000001", host="vm", pid=77, channel="queue",
                                 started_at=now - 5, beat_at=now, period=5.0, done=3))
    queue.driver.beat(WorkerInfo(id="vm-78-00000001", host="vm", pid=78, channel="queue",
                                 started_at=now - 90, beat_at=now - 60, period=5.0))
    result = cli("workers", settings=file_settings)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "1 live, 1 stopped beating" in lines[0]
    assert " 77  live" in lines[2] and " 78  stopped beating" in lines[3], result.stdout
    data = json.loads(cli("workers", "--json", settings=file_settings).stdout)
    assert [(w["pid"], w["state"], w["done"]) for w in data] == [
        (77, "live", 3), (78, "stopped beating", 0)]
    result = cli("info", settings=file_settings)
    assert "workers: 1 live, 1 stopped beating" in result.stdout
    assert len(json.loads(cli("info", "--json", settings=file_settings).stdout)["workers"]) == 2
    result = cli("workers", settings={"driver": "sync://"})
    assert result.returncode == 2
    assert "the sync driver does not support worker heartbeats" in result.stderr
    result = cli("listen", "--heartbeat", "0.01", settings=file_settings)
    assert result.returncode == 2 and "heartbeat" in result.stderr
