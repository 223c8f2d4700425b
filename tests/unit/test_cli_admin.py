"""The admin and operator commands of the real queue-core command."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from queue_core import JobStatus, Queue, create_queue
from tests.support.jobs import Fail, Record, read_lines
from tests.support.procs import ROOT, worker_env
from tests.unit.test_cli import cli


@pytest.fixture
def settings(tmp_path: Path) -> dict:
    return {"driver": f"file://{tmp_path}/q", "imports": ["tests.support.jobs"],
            "keep_completed": True, "attempts": 1}


@pytest.fixture
def queue(settings: dict) -> Queue:
    return create_queue(settings)


@pytest.fixture
def journal(tmp_path: Path) -> str:
    return str(tmp_path / "journal")


def _failed(queue: Queue, journal: str, count: int = 1) -> list[str]:
    ids = [queue.push(Fail(journal, f"f{i}")) for i in range(count)]
    queue.run()
    return [job_id for job_id in ids if job_id]


def assert_usage_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def assert_failure(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# -- status --------------------------------------------------------------------------

def test_status_of_a_failed_job(settings, queue, journal) -> None:  # type: ignore[no-untyped-def]
    (job_id,) = _failed(queue, journal)
    result = cli("status", job_id, settings=settings)
    assert result.returncode == 0, result.stderr
    assert "status:    failed" in result.stdout
    assert "job:       tests.support.jobs.Fail" in result.stdout
    assert "error:     RuntimeError: f0 failed on run 1" in result.stdout
    data = json.loads(cli("status", job_id, "--json", settings=settings).stdout)
    assert data["status"] == "failed" and data["attempt"] == 1
    assert data["error"]["type"] == "RuntimeError"


def test_status_of_an_unknown_job_reads_done(settings) -> None:  # type: ignore[no-untyped-def]
    result = cli("status", "0" * 32, settings=settings)
    assert result.returncode == 0
    assert result.stdout.startswith("done (job 000") and "not stored" in result.stdout


def test_status_needs_an_id(settings) -> None:  # type: ignore[no-untyped-def]
    assert_usage_error(cli("status", settings=settings), "the following arguments are required")


# -- failed --------------------------------------------------------------------------

def test_failed_lists_failed_jobs(settings, queue, journal) -> None:  # type: ignore[no-untyped-def]
    ids = _failed(queue, journal, 3)
    result = cli("failed", settings=settings)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "job", "attempts", "failed", "at", "error"]
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(ids)
    assert all("tests.support.jobs.Fail" in line and "RuntimeError" in line for line in lines[1:])
    assert len(cli("failed", "--limit", "2", settings=settings).stdout.splitlines()) == 3
    listed = json.loads(cli("failed", "--json", settings=settings).stdout)
    assert sorted(item["id"] for item in listed) == sorted(ids)


def test_failed_when_there_are_none(settings) -> None:  # type: ignore[no-untyped-def]
    result = cli("failed", settings=settings)
    assert result.returncode == 0 and result.stdout.strip() == "no failed jobs"


def test_failed_with_a_bad_limit(settings) -> None:  # type: ignore[no-untyped-def]
    assert_usage_error(cli("failed", "--limit", "0", settings=settings), "'0' must be >= 1")


# -- retry ---------------------------------------------------------------------------

def test_retry_a_failed_job(settings, queue, journal) -> None:  # type: ignore[no-untyped-def]
    (job_id,) = _failed(queue, journal)
    result = cli("retry", job_id, settings=settings)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"job {job_id} sent back to waiting"
    assert queue.status(job_id) is JobStatus.WAITING
    queue.run()
    assert queue.get(job_id).attempt == 2
    result = cli("retry", job_id, "--reset-attempts", settings=settings)
    assert result.returncode == 0
    queue.run()
    assert queue.get(job_id).attempt == 1


def test_retry_a_done_job_needs_state_done(settings, queue, journal) -> None:  # type: ignore[no-untyped-def]
    job_id = queue.push(Record(journal, "a"))
    queue.run()
    assert_failure(cli("retry", job_id, settings=settings), "(code -3)")
    result = cli("retry", job_id, "--state", "done", settings=settings)
    assert result.returncode == 0, result.stderr
    assert queue.status(job_id) is JobStatus.WAITING


def test_retry_all_failed(settings, queue, journal) -> None:  # type: ignore[no-untyped-def]
    ids = _failed(queue, journal, 4)
    result = cli("retry", "--all-failed", settings=settings)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4 failed jobs sent back to waiting"
    assert all(queue.status(job_id) is JobStatus.WAITING for job_id in ids)


@pytest.mark.parametrize("args, message", [
    (("retry",), "retry needs a job id (or --all-failed)"),
    (("retry", "abc", "--all-failed"), "retry --all-failed takes no job id"),
    (("retry", "abc", "--state", "waiting"), "invalid choice: 'waiting'"),
])
def test_retry_usage_errors(settings, args, message) -> None:  # type: ignore[no-untyped-def]
    assert_usage_error(cli(*args, settings=settings), message)


def test_retry_of_an_unknown_job(settings) -> None:  # type: ignore[no-untyped-def]
    assert_failure(cli("retry", "0" * 32, settings=settings), "(code -1)")


# -- remove and clear ----------------------------------------------------------------

def test_remove(settings, queue, journal) -> None:  # type: ignore[no-untyped-def]
    job_id = queue.push(Record(journal, "a"))
    result = cli("remove", job_id, settings=settings)
    assert result.returncode == 0 and result.stdout.strip() == f"job {job_id} removed"
    assert_failure(cli("remove", job_id, settings=settings), f"no job {job_id}")
    assert_usage_error(cli("remove", settings=settings), "the following arguments are required")


def test_cancel(settings, queue, journal) -> None:  # type: ignore[no-untyped-def]
    job_id = queue.push(Record(journal, "a"))
    result = cli("cancel", job_id, settings=settings)
    assert result.returncode == 0 and result.stdout.strip() == f"job {job_id} cancelled"
    assert queue.status(job_id) is JobStatus.FAILED
    assert queue.get(job_id).error.type == "queue_core.errors.JobCancelledError"
    shown = cli("status", job_id, settings=settings)
    assert "JobCancelledError" in shown.stdout
    # Already finished, or unknown: nothing to cancel, as remove says of a missing job.
    assert_failure(cli("cancel", job_id, settings=settings),
                   f"no job {job_id} waiting, delayed or running")
    assert_failure(cli("cancel", "0" * 32, settings=settings), "waiting, delayed or running")
    assert_usage_error(cli("cancel", settings=settings), "the following arguments are required")


def test_cancel_where_the_driver_cannot(journal) -> None:  # type: ignore[no-untyped-def]
    # As for every feature a driver lacks: a usage error (exit 2), one sentence.
    result = cli("cancel", "1", settings={"driver": "sync://"})
    assert_usage_error(result, "the sync driver does not support cancelling jobs")


def test_status_shows_progress(settings, queue, journal) -> None:  # type: ignore[no-untyped-def]
    from tests.support.jobs import Progressing
    job_id = queue.push(Progressing(journal, "p", steps=4))
    queue.run()
    result = cli("status", job_id, settings=settings)
    assert "progress:  100.0% step 4 (at " in result.stdout, result.stdout
    data = json.loads(cli("status", job_id, "--json", settings=settings).stdout)
    assert data["progress"]["fraction"] == 1.0 and data["progress"]["message"] == "step 4"


def test_clear_asks_first(settings, queue, journal) -> None:  # type: ignore[no-untyped-def]
    for index in range(3):
        queue.push(Record(journal, f"r{index}"))
    refused = cli("clear", settings=settings, stdin="n\n")
    assert_failure(refused, "not confirmed; nothing deleted")
    assert "Delete every job in file:" in refused.stdout
    assert queue.info()[JobStatus.WAITING] == 3
    assert_failure(cli("clear", settings=settings, stdin=""), "not confirmed")
    result = cli("clear", settings=settings, stdin="y\n")
    assert result.returncode == 0 and "cleared" in result.stdout
    assert sum(queue.info().values()) == 0


def test_clear_yes_does_not_ask(settings, queue, journal) -> None:  # type: ignore[no-untyped-def]
    queue.push(Record(journal, "a"))
    result = cli("clear", "--yes", settings=settings)
    assert result.returncode == 0 and "Delete every job" not in result.stdout
    assert sum(queue.info().values()) == 0


# -- push ----------------------------------------------------------------------------

def test_push_by_job_name(settings, queue, journal) -> None:  # type: ignore[no-untyped-def]
    fields = json.dumps({"journal": journal, "tag": "from-cli"})
    result = cli("push", "tests.support.jobs.Record", "--args", fields, "--priority", "5",
                 settings=settings)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert queue.status(job_id) is JobStatus.WAITING and queue.get(job_id).priority == 5
    delayed = cli("push", "tests.support.jobs.Record", "--args", fields, "--delay", "60",
                  settings=settings)
    assert queue.status(delayed.stdout.strip()) is JobStatus.DELAYED
    queue.run()
    assert read_lines(journal) == ["from-cli"]


@pytest.mark.parametrize("args, message", [
    (("push", "no.such.Job"), "no job type named 'no.such.Job'"),
    (("push", "tests.support.jobs.Record", "--args", "{nope"), "--args is not valid JSON"),
    (("push", "tests.support.jobs.Record", "--args", "[1]"), "--args must be a JSON object"),
    (("push", "tests.support.jobs.Record", "--args", '{"color": 1}'),
     "cannot build tests.support.jobs.Record from --args"),
    (("push", "tests.support.jobs.Record", "--args", '{"journal": "j", "tag": "t"}',
      "--priority", "-1"), "priority -1 is out of range"),
    (("push", "tests.support.jobs.Record", "--delay", "soon"), "'soon' is not a number"),
])
def test_push_errors(settings, args, message) -> None:  # type: ignore[no-untyped-def]
    assert_usage_error(cli(*args, settings=settings), message)


# -- run and listen on a terminal, verbose, limits -------------------------------------

def test_verbose_prints_a_line_per_job(settings, queue, journal) -> None:  # type: ignore[no-untyped-def]
    ok = queue.push(Record(journal, "a"))
    bad = queue.push(Fail(journal, "f"))
    result = cli("-v", "run", settings=settings)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(f"[{ok}] tests.support.jobs.Record (attempt 1, pid" in line
               and line.endswith("- started") for line in lines)
    assert any(f"[{ok}]" in line and " - done in " in line and " MB" in line for line in lines)
    assert any(f"[{bad}]" in line and "error in" in line and
               "RuntimeError: f failed on run 1 (no retry)" in line for line in lines)
    assert lines[-1] == "processed 2 jobs"


def test_run_shows_a_progress_bar_on_a_terminal(settings, queue, journal) -> None:  # type: ignore[no-untyped-def]
    for index in range(5):
        queue.push(Record(journal, f"r{index}"))
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "queue_core", "--app",
                                "tests.support.app:queue", "run"], env=worker_env(settings),
                               cwd=ROOT, stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=30) == 0
    text = output.decode()
    assert "[" + "#" * 30 + "] 5/5 jobs" in text
    assert "processed 5 jobs" in text


def test_listen_max_time_exits_0(settings) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = cli("-vv", "listen", "--timeout", "0.2", "--max-time", "1", settings=settings)
    assert result.returncode == 0, result.stderr
    assert 0.9 < time.monotonic() - started < 15
    assert "(max_time): stopping" in result.stderr


def test_listen_max_memory_exits_0(settings, queue, journal) -> None:  # type: ignore[no-untyped-def]
    queue.push(Record(journal, "a"))
    queue.push(Record(journal, "b"))
    result = cli("-vv", "listen", "--timeout", "0.2", "--max-memory", "1", settings=settings)
    assert result.returncode == 0, result.stderr
    assert "(max_memory 1 MB): stopping" in result.stderr
    assert read_lines(journal) == ["a"]  # it checks after each job


@pytest.mark.parametrize("args, message", [
    (("listen", "--workers", "0"), "'0' must be >= 1"),
    (("listen", "--isolate", "thread"), "invalid choice: 'thread'"),
    (("listen", "--max-memory", "-5"), "'-5' must be >= 1"),
    (("run", "--max-time", "x"), "'x' is not a number"),
    (("exec",), "the following arguments are required: --report-fd"),
])
def test_worker_usage_errors(settings, args, message) -> None:  # type: ignore[no-untyped-def]
    assert_usage_error(cli(*args, settings=settings), message)


def test_exec_mode_needs_the_app_target(settings) -> None:  # type: ignore[no-untyped-def]
    from queue_core import ConfigError
    queue = create_queue(settings)
    env_app = os.environ.pop("QUEUE_APP", None)
    try:
        with pytest.raises(ConfigError, match="needs the app target"):
            queue.run(isolate="exec")
    finally:
        if env_app is not None:
            os.environ["QUEUE_APP"] = env_app


# -- hostile stored values and surprising back ends -------------------------------------

SURPRISING = {"driver": {"class": "tests.support.recording:SurprisingDriver"}}


@pytest.mark.parametrize("command", [["info"], ["status", "1"], ["failed"], ["remove", "1"],
                                     ["cancel", "1"], ["clear", "--yes"], ["retry", "1"],
                                     ["retry", "--all-failed"]])
def test_an_unexpected_error_is_one_sentence_and_exit_1(command: list[str]) -> None:
    result = cli(*command, settings=SURPRISING)
    assert_failure(result, "an answer nothing expected")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_status_shows_damaged_times_as_stored(settings, queue, journal) -> None:  # type: ignore[no-untyped-def]
    from queue_core.drivers import file as file_driver
    job_id = queue.push(Record(journal, "a"))
    driver = queue.driver
    marker = driver.root / "new" / job_id
    target = file_driver._Target.parse(os.readlink(marker))
    data = driver._read(job_id, target)
    record = file_driver._parse(data)
    damaged = file_driver._record({**record.meta, "pushed_at": 1e300, "ttr": "soon"},
                                  record.payload)
    (driver.root / "records" / job_id).write_bytes(damaged)  # a record file, older naming
    os.unlink(marker)
    os.symlink("@", marker)
    result = cli("status", job_id, settings=settings)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "pushed:    -" in result.stdout or "1e+300" in result.stdout
    assert json.loads(cli("status", job_id, "--json", settings=settings).stdout)["ttr"] is None
