"""queue-core on a platform without ``resource``, ``os.fork`` and SIGALRM (as Windows is).

Each test runs Python processes whose start-up (a ``sitecustomize`` on PYTHONPATH, so
that the worker's own children are lean too) takes those away before anything else is
imported. A producer must push and inspect jobs there; a worker must enforce ttr another
way or refuse, in one sentence, what it cannot do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import ROOT, wait_for

LEAN_STARTUP = '''
"""Makes this interpreter look like Windows to queue-core (see test_lean_imports.py)."""
import importlib.abc
import os
import signal
import sys


class _NoResource(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "resource":
            raise ModuleNotFoundError("No module named 'resource'", name=name)
        return None


sys.modules.pop("resource", None)
sys.meta_path.insert(0, _NoResource())
for _name in ("fork", "forkpty", "register_at_fork"):
    if hasattr(os, _name):
        delattr(os, _name)
for _name in ("SIGALRM", "setitimer", "getitimer", "alarm", "ITIMER_REAL", "ITIMER_VIRTUAL",
              "ITIMER_PROF"):
    if hasattr(signal, _name):
        delattr(signal, _name)
if os.environ.get("LEAN_NO_PROC"):
    # No /proc either: the worker has no way left to read its memory use.
    import queue_core.host
    queue_core.host.PROC_STATM = "/nonexistent/statm"
'''

LEAN_JOBS = '''
"""A job that spins until the ttr interrupt comes twice (it swallows the first)."""
import os
import time
from dataclasses import dataclass

from queue_core import Job


def note(path, line):
    with open(path, "a") as handle:
        handle.write(line + "\\n")


@dataclass
class Spin(Job):
    journal: str

    def execute(self, queue):
        for round in ("first", "second"):
            try:
                while True:
                    time.sleep(0.01)
            except BaseException as exc:
                note(self.journal, f"{round} {type(exc).__name__}")
                if round == "second":
                    raise
'''

CHECK_LEAN = '''
import os, signal
try:
    import resource
except ImportError:
    pass
else:
    raise SystemExit("resource is importable: the lean start-up is not in force")
for module, name in ((os, "fork"), (signal, "SIGALRM"), (signal, "setitimer"), (signal, "alarm")):
    if hasattr(module, name):
        raise SystemExit(f"{name} exists: the lean start-up is not in force")
'''


@pytest.fixture
def lean(tmp_path: Path) -> dict[str, str]:
    """The environment of a lean process: PYTHONPATH with the start-up and the job module."""
    where = tmp_path / "lean"
    where.mkdir()
    (where / "sitecustomize.py").write_text(LEAN_STARTUP)
    (where / "lean_jobs.py").write_text(LEAN_JOBS)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(where), str(ROOT)])
    env.pop("QUEUE_APP", None)
    return env


def python(env: dict[str, str], code: str, *args: str,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHECK_LEAN + textwrap.dedent(code), *args],
                          env=env, cwd=ROOT, text=True, capture_output=True, timeout=timeout)


def cli(env: dict[str, str], settings: dict[str, Any], *args: str,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(env, QUEUE_TEST_SETTINGS=json.dumps(settings))
    code = ("import sys\nfrom queue_core.cli import main\n"
            "raise SystemExit(main(sys.argv[1:]))\n")
    return python(env, code, "--app", "tests.support.app:queue", *args, timeout=timeout)


def push(settings: dict[str, Any], *jobs: Any, ttr: float | None = None) -> list[str]:
    from queue_core import create_queue
    queue = create_queue(settings)
    try:
        return [str(queue.push(job, ttr=ttr)) for job in jobs]
    finally:
        queue.close()


def test_a_producer_pushes_and_inspects_jobs(lean: dict[str, str], tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    result = python(lean, '''
        import json, sys
        import queue_core
        from queue_core import JobStatus, create_queue
        from tests.support.jobs import Record

        folder, journal = sys.argv[1], sys.argv[2]
        queue = create_queue({"driver": "file://" + folder, "keep_completed": True})
        first = queue.push(Record(journal, "a"))
        more = queue.push_many([Record(journal, "b"), Record(journal, "c")], delay=60)
        seen = {"status": queue.status(first).value, "get": queue.get(first).job_name,
                "info": {str(k.value): v for k, v in queue.info().items()}}
        seen["removed"] = queue.remove(more[0])
        seen["delayed_after_remove"] = queue.info()[JobStatus.DELAYED]
        queue.clear()
        seen["after_clear"] = sum(queue.info().values())
        queue.close()
        sync = create_queue("sync://")
        sync.push(Record(journal, "ran inside push"))
        print(json.dumps(seen))
    ''', str(tmp_path / "q"), str(journal))
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["status"] == "waiting" and seen["get"]
    assert seen["info"]["waiting"] == 1 and seen["info"]["delayed"] == 2
    assert seen["removed"] is True and seen["delayed_after_remove"] == 1
    assert seen["after_clear"] == 0
    assert journal.read_text().splitlines() == ["ran inside push"]


def test_listen_enforces_ttr_without_a_timer_signal(lean: dict[str, str],
                                                    tmp_path: Path) -> None:
    settings = {"driver": f"file://{tmp_path}/q", "imports": ["lean_jobs"]}
    journal = tmp_path / "journal"
    sys.path.insert(0, lean["PYTHONPATH"].split(os.pathsep)[0])
    try:
        from lean_jobs import Spin  # type: ignore[import-not-found]
        [job_id] = push(settings, Spin(str(journal)), ttr=0.5)
    finally:
        sys.path.pop(0)
    started = time.monotonic()
    result = cli(lean, settings, "listen", "--timeout", "0.2", "--max-jobs", "1")
    assert result.returncode == 0, result.stderr
    # Interrupted at its ttr, then again a second later because it swallowed the first.
    assert journal.read_text().splitlines() == ["first TtrExpired", "second TtrExpired"]
    assert time.monotonic() - started < 20
    from queue_core import JobStatus, create_queue
    queue = create_queue(settings)
    info = queue.get(job_id)
    queue.close()
    assert info.status is JobStatus.FAILED
    assert info.error is not None and info.error.type.endswith("JobTimeoutError")
    assert "exceeded its ttr of 0.5s" in info.error.message


@pytest.mark.parametrize("args, no_proc, message", [
    (("listen", "--isolate", "fork"), False,
     "isolate='fork' needs os.fork, which this platform does not have; use isolate='exec'"),
    (("run", "--max-memory", "500"), True,
     "max_memory needs a memory reading (/nonexistent/statm or the resource module)"),
])
def test_a_worker_refuses_what_the_platform_lacks_in_one_sentence(
        lean: dict[str, str], tmp_path: Path, args: tuple[str, ...], no_proc: bool,
        message: str) -> None:
    env = dict(lean, LEAN_NO_PROC="1") if no_proc else lean
    result = cli(env, {"driver": f"file://{tmp_path}/q"}, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_max_memory_works_without_resource_where_proc_is_readable(
        lean: dict[str, str], tmp_path: Path) -> None:
    settings = {"driver": f"file://{tmp_path}/q", "imports": ["tests.support.jobs"]}
    from tests.support.jobs import Record
    journal = str(tmp_path / "journal")
    push(settings, Record(journal, "a"), Record(journal, "b"))
    # 1 MB is below any interpreter: the worker stops after its first job.
    result = cli(lean, settings, "listen", "--timeout", "0.2", "--max-memory", "1")
    assert result.returncode == 0, result.stderr
    assert Path(journal).read_text().splitlines() == ["a"]


def test_isolate_without_fork_runs_each_job_in_a_fresh_interpreter(
        lean: dict[str, str], tmp_path: Path) -> None:
    settings = {"driver": f"file://{tmp_path}/q", "imports": ["tests.support.jobs"]}
    from tests.support.jobs import Record
    journal = tmp_path / "journal"
    push(settings, Record(str(journal), "isolated"))
    # A bare --isolate means exec here, since fork is missing.
    result = cli(lean, settings, "run", "--isolate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "processed 1 job"
    assert journal.read_text().splitlines() == ["isolated"]


def test_workers_run_under_a_supervisor_without_fork(lean: dict[str, str],
                                                      tmp_path: Path) -> None:
    settings = {"driver": f"file://{tmp_path}/q", "imports": ["tests.support.jobs"]}
    from tests.support.jobs import Record, read_lines
    journal = str(tmp_path / "journal")
    push(settings, *[Record(journal, f"r{i}") for i in range(4)])
    env = dict(lean, QUEUE_TEST_SETTINGS=json.dumps(settings))
    code = "import sys\nfrom queue_core.cli import main\nraise SystemExit(main(sys.argv[1:]))\n"
    supervisor = subprocess.Popen(
        [sys.executable, "-c", CHECK_LEAN + code, "--app", "tests.support.app:queue",
         "listen", "--workers", "2", "--timeout", "0.2"],
        env=env, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def done() -> bool:
            if supervisor.poll() is not None:
                raise AssertionError(f"the supervisor exited: {supervisor.communicate()}")
            return len(read_lines(journal)) == 4
        wait_for(done, 30, "4 jobs done by the workers")
    finally:
        if supervisor.poll() is None:
            supervisor.send_signal(signal.SIGTERM)
        _, stderr = supervisor.communicate(timeout=30)
    assert supervisor.returncode == 0, stderr
    assert sorted(read_lines(journal)) == ["r0", "r1", "r2", "r3"]


def test_the_watchdog_interrupts_late_jobs_and_leaves_no_interrupt_behind() -> None:
    from queue_core.watchdog import TtrExpired, Watchdog
    watchdog = Watchdog()
    try:
        # Jobs that end about when their deadline passes: an interrupt either lands inside
        # the job or is withdrawn, never raised afterwards.
        for _ in range(300):
            watchdog.arm(0.0005)
            try:
                try:
                    sum(range(300))
                finally:
                    watchdog.disarm()
            except TtrExpired:
                pass
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            sum(range(100))
        watchdog.arm(0.05)
        started = time.monotonic()
        with pytest.raises(TtrExpired):
            try:
                while time.monotonic() - started < 5:
                    sum(range(100))
            finally:
                watchdog.disarm()
        assert time.monotonic() - started < 1
    finally:
        watchdog.close()


def test_a_worker_with_no_way_to_enforce_ttr_refuses_and_keeps_the_job(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import queue_core.worker
    from queue_core import JobStatus, NotSupportedError, create_queue
    from tests.support.jobs import Record
    monkeypatch.setattr(queue_core.worker.host, "has_timer_signal", lambda: False)
    monkeypatch.setattr(queue_core.worker, "watchdog_available", lambda: False)
    queue = create_queue({"driver": f"file://{tmp_path}/q"})
    job_id = queue.push(Record(str(tmp_path / "journal"), "a"))
    assert job_id is not None
    try:
        with pytest.raises(NotSupportedError, match=r"ttr cannot be enforced in this process: "
                           r"the platform has no signal.setitimer \(SIGALRM\)"):
            queue.run()
        assert queue.status(job_id) is JobStatus.WAITING
        # Not asked to enforce ttr, or not running jobs in this process: it works.
        assert queue.run(enforce_ttr=False) == 1
    finally:
        queue.close()
