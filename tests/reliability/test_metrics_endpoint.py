"""``listen --metrics-port``: real worker processes, scraped over HTTP.

With ``--workers N`` every worker records in its own files and the supervisor serves the
sum, so one scrape counts the jobs of every process. Without the option no port opens.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from queue_core import create_queue
from tests.support.jobs import Record, Sleep, read_lines
from tests.support.procs import children, kill_group, queue_core, stop, wait_for

pytest.importorskip("prometheus_client")

JOB = "tests.support.jobs.Record"
SLEEP = "tests.support.jobs.Sleep"


def _redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture(params=["file", "redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    channel = f"m{uuid.uuid4().hex[:12]}"
    if request.param == "redis":
        if not _redis_up():
            pytest.skip("no Redis on 127.0.0.1:6379")
        driver = "redis://127.0.0.1:6379/0?warn_persistence=0"
    else:
        driver = f"file://{tmp_path}/queue"
    built = {"driver": driver, "channel": channel, "imports": ["tests.support.jobs"]}
    yield built
    with create_queue(built) as queue:
        queue.clear()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text: str = answer.read().decode()
            return text
    except OSError:
        return None


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample; 0 when absent (nothing counted yet)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)\{(.*)\} (\S+)", line)
        if match and match[1] == name:
            found = ",".join(sorted(match[2].split(",")))
            if found == wanted:
                return float(match[3])
    return 0.0


def listening_inodes() -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.read().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    found.add(fields[9])
    return found


def listens(pid: int) -> bool:
    inodes = listening_inodes()
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except FileNotFoundError:
        return False
    return any(link.startswith("socket:[") and link[8:-1] in inodes for link in links)


def multiproc_dir(pid: int) -> str | None:
    with open(f"/proc/{pid}/environ", "rb") as handle:
        for item in handle.read().split(b"\0"):
            if item.startswith(b"QUEUE_CORE_METRICS_DIR="):
                return item.split(b"=", 1)[1].decode()
    return None


@pytest.mark.slow
def test_one_scrape_counts_the_jobs_of_four_workers(settings: dict[str, Any], journal: str,
                                                    tmp_path: Path) -> None:
    queue = create_queue(settings)
    total = 200
    port = free_port()
    done_log, ready = tmp_path / "done.log", tmp_path / "ready"
    supervisor = queue_core(settings, "listen", "--workers", "4", "--timeout", "0.2",
                            "--metrics-port", str(port), done_log=done_log, ready=ready,
                            stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(read_lines(str(ready))) == 4, 30, "four workers ready")
        # Jobs of 10 ms pushed once all four wait: each worker gets its share.
        queue.push_many([Sleep(journal, f"j{index}", 0.01) for index in range(total)])
        directory = wait_for(lambda: multiproc_dir(children(supervisor.pid)[0]), 10,
                             "the metrics directory")
        during = wait_for(lambda: scrape(port), 30, "a scrape while the jobs run")
        assert "queue_core_jobs{" in during
        labels = {"queue": settings["channel"], "job": SLEEP}
        wait_for(lambda: sum(line.startswith("end") for line in read_lines(journal)) >= total,
                 120, "every job run", every=0.1)
        text = wait_for(
            lambda: (t := scrape(port)) and sample(t, "queue_core_jobs_done_total",
                                                   **labels) >= total and t,
            30, "the done counters to add up")
        assert sample(text, "queue_core_jobs_done_total", **labels) == total
        assert sample(text, "queue_core_jobs_started_total", **labels) == total
        assert sample(text, "queue_core_jobs_failed_total", **labels) == 0
        assert sample(text, "queue_core_job_run_seconds_count", **labels) == total
        assert sample(text, "queue_core_job_wait_seconds_count", **labels) == total
        assert sample(text, "queue_core_jobs", queue=settings["channel"],
                      status="waiting") == 0
        # The sum is over processes: every worker that ran a job has its own file.
        ran = {line.split()[0] for line in read_lines(str(done_log))}
        files = {name.split(".")[0] for name in os.listdir(directory)
                 if name.endswith(".json")}
        # (Four would be usual; a loaded machine may leave a worker out of the run.)
        assert len(ran) >= 2 and ran <= files, (ran, files)
        assert not any(listens(pid) for pid in children(supervisor.pid))
        code, _, err = stop(supervisor, timeout=20)
    finally:
        kill_group(supervisor)
    assert code == 0, err
    assert not os.path.exists(directory)


@pytest.mark.slow
def test_a_lone_worker_serves_its_own_metrics(settings: dict[str, Any], journal: str) -> None:
    queue = create_queue(settings)
    queue.push_many([Record(journal, f"j{index}") for index in range(20)])
    port = free_port()
    worker = queue_core(settings, "listen", "--timeout", "0.2", "--metrics-port", str(port),
                        stdout=subprocess.DEVNULL)
    try:
        labels = {"queue": settings["channel"], "job": JOB}
        wait_for(lambda: (t := scrape(port)) and sample(
            t, "queue_core_jobs_done_total", **labels) == 20, 60, "20 jobs counted")
        code, _, err = stop(worker, timeout=20)
    finally:
        kill_group(worker)
    assert code == 0, err


@pytest.mark.slow
def test_without_metrics_port_nothing_listens(settings: dict[str, Any], tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    supervisor = queue_core(settings, "listen", "--workers", "2", "--timeout", "0.2",
                            ready=ready, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(read_lines(str(ready))) >= 2, 30, "two workers ready")
        pids = [supervisor.pid, *children(supervisor.pid)]
        assert len(pids) == 3
        assert not any(listens(pid) for pid in pids)
        assert all(multiproc_dir(pid) is None for pid in pids[1:])
        code, _, err = stop(supervisor, timeout=20)
    finally:
        kill_group(supervisor)
    assert code == 0, err


@pytest.mark.slow
def test_the_counts_of_replaced_workers_stay_in_the_sum(settings: dict[str, Any],
                                                          journal: str, tmp_path: Path) -> None:
    """Workers that exit (here at --max-jobs) and are replaced keep their counts: a
    counter never goes back."""
    queue = create_queue(settings)
    total = 100
    queue.push_many([Record(journal, f"j{index}") for index in range(total)])
    port = free_port()
    supervisor = queue_core(settings, "listen", "--workers", "2", "--timeout", "0.2",
                            "--max-jobs", "15", "--metrics-port", str(port),
                            ready=tmp_path / "ready", stdout=subprocess.DEVNULL)
    try:
        labels = {"queue": settings["channel"], "job": JOB}
        text = wait_for(lambda: (t := scrape(port)) and sample(
            t, "queue_core_jobs_done_total", **labels) >= total and t, 120,
            "every job counted")
        assert sample(text, "queue_core_jobs_done_total", **labels) == total
        code, _, err = stop(supervisor, timeout=20)
    finally:
        kill_group(supervisor)
    assert code == 0, err
    # 100 jobs at 15 per worker: at least 7 workers, so 5 or more were replaced.
    assert len(read_lines(str(tmp_path / "ready"))) >= 7
