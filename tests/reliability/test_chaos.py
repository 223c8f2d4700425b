"""SIGKILL chaos on every durable driver: two real workers, 2,000 jobs, 15 kills, and
(second test) operators running retry, remove, info, failed, status and clear from the
CLI at the same time. Counted from the jobs' own journal: nothing lost, nothing run twice
unless a kill explains it, no entry left behind whose record is gone, every command ends.
"""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from queue_core import JobStatus, Queue, create_queue
from tests.support.drivers import DriverSpec
from tests.support.jobs import Chaos, FailOnce, read_lines
from tests.support.procs import ROOT, kill_group, queue_core, stop, wait_for, worker_env

pytestmark = [pytest.mark.needs("ttr_lease", "!runs_at_push", "multiprocess"),
              pytest.mark.slow]
logger = logging.getLogger(__name__)

JOBS = 2000
KILLS = 15
JOB_SECONDS = 0.003
"""How long each job works, with one job in flight per worker."""
TTR = 2.0
"""Short: a job whose worker was killed comes back within ttr plus the lease grace."""


@dataclass
class Fleet:
    """Two workers; a killed one is replaced at once."""

    settings: dict[str, Any]
    workers: list[subprocess.Popen[str]] = field(default_factory=list)
    killed: set[str] = field(default_factory=set)

    def start(self) -> None:
        self.workers.append(queue_core(self.settings, "listen", "--timeout", "0.2",
                                       stdout=subprocess.DEVNULL))

    def kill_one(self, pid: str | None = None) -> None:
        """Kill the worker with ``pid``, or one picked at random."""
        index = next((i for i, worker in enumerate(self.workers) if str(worker.pid) == pid),
                     None)
        victim = self.workers.pop(random.randrange(len(self.workers)) if index is None
                                  else index)
        kill_group(victim)
        self.killed.add(str(victim.pid))
        self.start()

    def stop(self) -> None:
        for worker in self.workers:
            code, _, err = stop(worker, timeout=30)
            assert code == 0, err
            assert "Traceback" not in err, err
        self.workers.clear()


@dataclass
class Runs:
    """Each tag's runs from the journal, split by whether their worker was killed."""

    starts: dict[str, list[str]]
    ends: dict[str, list[str]]

    @classmethod
    def read(cls, journal: str) -> Runs:
        starts: dict[str, list[str]] = defaultdict(list)
        ends: dict[str, list[str]] = defaultdict(list)
        for line in read_lines(journal):
            words = line.split()
            if len(words) != 3:
                continue  # a line a kill cut short
            kind, tag, pid = words
            (starts if kind == "start" else ends)[tag].append(pid)
        return cls(starts, ends)

    def unexplained_repeats(self, killed: set[str], failing: set[str],
                            copies_then_acks: bool = False) -> dict[str, Any]:
        """Tags that ran more often than once (twice for a job that fails its first run)
        in workers that were never killed.

        With ``copies_then_acks`` (see DriverSpec), a worker killed while it moved a job
        to the failed store can leave both the failed copy and the original: the original
        comes back as a lost run and ends, and so does the failed copy once retried. That
        is explained only when the failing run's own worker was killed."""
        found = {}
        for tag, pids in self.starts.items():
            live_starts = [pid for pid in pids if pid not in killed]
            live_ends = [pid for pid in self.ends.get(tag, []) if pid not in killed]
            ends_allowed = 1
            if copies_then_acks and tag in failing and pids[0] in killed:
                ends_allowed = 2
            if (len(live_ends) > ends_allowed
                    or len(live_starts) > (2 if tag in failing else 1)):
                found[tag] = (pids, self.ends.get(tag, []))
        return found


def _push(queue: Queue, journal: str, tags: list[str], failing: set[str]) -> dict[str, str]:
    # A worker with N jobs in flight gets through them N times as fast: each job lasts N
    # times as long, so that the kills still land while the backlog is worked off.
    seconds = JOB_SECONDS * queue.concurrency
    jobs = [FailOnce(journal, tag) if tag in failing else Chaos(journal, tag, seconds)
            for tag in tags]
    ids: dict[str, str] = {}
    for start in range(0, len(jobs), 500):
        chunk = jobs[start:start + 500]
        for job, job_id in zip(chunk, queue.push_many(chunk), strict=True):
            assert job_id is not None
            ids[job_id] = job.tag
    return ids


def _kill_while_running(fleet: Fleet, journal: str, done: Any, kills: int) -> None:
    """``kills`` SIGKILLs while jobs are being processed, each once the workers have
    started jobs since the last one: every other one at a random moment (between jobs as
    well as inside one), the others aimed at a worker seen inside a job."""
    for number in range(kills):
        wanted = len(read_lines(journal)) + 20
        wait_for(lambda wanted=wanted: len(read_lines(journal)) > wanted or done(), 60,
                 "the workers to run jobs")
        time.sleep(random.uniform(0.05, 0.2))
        if done():
            break
        fleet.kill_one(_inside_a_job(fleet, journal) if number % 2 else None)


def _inside_a_job(fleet: Fleet, journal: str, within: float = 1.0) -> str | None:
    """The pid of a live worker whose last journal line is a start, as soon as one is
    seen (None if none is within ``within`` seconds)."""
    live = {str(worker.pid) for worker in fleet.workers}
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        last: dict[str, str] = {}
        for line in read_lines(journal)[-50:]:
            words = line.split()
            if len(words) == 3:
                last[words[2]] = words[0]
        inside = [pid for pid, kind in last.items() if kind == "start" and pid in live]
        if inside:
            return random.choice(inside)
        time.sleep(0.001)
    return None


def _assert_kills_landed(fleet: Fleet, runs: Runs, failing: set[str]) -> None:
    """Every kill happened, and some caught a job between its start and its end (jobs
    that fail their first run on purpose left aside)."""
    assert len(fleet.killed) == KILLS, f"only {len(fleet.killed)} kills before the end"
    cut = [tag for tag, pids in runs.starts.items() if tag not in failing
           and any(pid in fleet.killed and pids.count(pid) > runs.ends.get(tag, []).count(pid)
                   for pid in pids)]
    assert cut, "no kill landed inside a job"
    again = sum(1 for tag, pids in runs.starts.items() if len(pids) > 1 and tag not in failing)
    logger.info("%d kills; %d jobs cut short by one; %d jobs started more than once",
                len(fleet.killed), len(cut), again)


def _status(queue: Queue, job_id: str) -> str:
    if not queue.capabilities.status:
        return "?"
    try:
        return str(queue.get(job_id))
    except Exception as exc:
        return repr(exc)


def _settled(queue: Queue) -> dict[JobStatus, int]:
    counts = queue.info()
    return {status: count for status, count in counts.items() if count}


def _assert_no_entry_left(queue: Queue) -> None:
    """Nothing waiting, delayed, held, failed or half-there: every entry is gone."""
    counts = _settled(queue)
    assert counts == {} or set(counts) <= {JobStatus.DONE}, counts
    if queue.capabilities.listing:
        assert queue.failed() == []


def test_sigkill_chaos_loses_nothing_and_runs_nothing_twice(queue_settings,
                                                           tmp_path: Path) -> None:
    settings = queue_settings(ttr=TTR, attempts=5)
    queue = create_queue(settings)
    journal = str(tmp_path / "journal")
    tags = [f"c{number}" for number in range(JOBS)]
    _push(queue, journal, tags, set())
    fleet = Fleet(settings)
    fleet.start()
    fleet.start()
    try:
        runs = lambda: Runs.read(journal)  # noqa: E731
        _kill_while_running(fleet, journal, lambda: len(runs().ends) >= JOBS, KILLS)
        wait_for(lambda: len(runs().ends) >= JOBS, 120, "every job to end", every=0.2)
        wait_for(lambda: not _settled(queue), 30, "the store to settle", every=0.2)
    finally:
        fleet.stop()
    final = runs()
    _assert_kills_landed(fleet, final, set())
    assert sorted(final.ends) == sorted(tags)
    assert final.unexplained_repeats(fleet.killed, set()) == {}
    _assert_no_entry_left(queue)


class Operators(threading.Thread):
    """The CLI, run again and again beside the workers: retry --all-failed, remove,
    info, failed, status. Records each command's exit and what it removed."""

    def __init__(self, settings: dict[str, Any], queue: Queue, ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.caps = queue.capabilities
        self.ids = ids
        self.removed: set[str] = set()
        self.results: list[tuple[list[str], int, str]] = []
        self.halt = threading.Event()

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "queue_core", "--app",
                               "tests.support.app:queue", *args],
                              env=worker_env(self.settings), cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        self.results.append((list(args), done.returncode, done.stderr))
        return done

    def run(self) -> None:
        choices: list[list[str]] = [["retry", "--all-failed"], ["info"]]
        if self.caps.listing:
            choices.append(["failed"])
        choices += [["remove"]] if self.caps.remove else []
        choices += [["status"]] if self.caps.status else []
        # Rounds of every command in a random order, a halt taking effect between rounds:
        # however quickly the workers finish, each command has run beside them.
        while not self.halt.is_set():
            for pick in random.sample(choices, len(choices)):
                self._run_one(pick)

    def _run_one(self, pick: list[str]) -> None:
        if pick == ["remove"]:
            job_id = random.choice(self.ids)
            if self.command("remove", job_id).returncode == 0:
                self.removed.add(job_id)
        elif pick == ["status"]:
            self.command("status", random.choice(self.ids))
        else:
            self.command(*pick)


# One worker mode: the operators race the store through the CLI, which no worker mode
# changes; the test above kills workers in every mode.
@pytest.mark.worker_modes("c1")
def test_sigkill_chaos_with_operators_at_the_cli(queue_settings, driver_spec: DriverSpec,
                                                 tmp_path: Path) -> None:
    settings = queue_settings(ttr=TTR, attempts=5)
    queue = create_queue(settings)
    journal = str(tmp_path / "journal")
    tags = [f"c{number}" for number in range(JOBS)]
    failing = set(tags[::20])  # 100 jobs fail their first run, for retry to act on
    tag_of = _push(queue, journal, tags, failing)
    runs = lambda: Runs.read(journal)  # noqa: E731
    operators = Operators(settings, queue, list(tag_of))
    fleet = Fleet(settings)
    fleet.start()
    fleet.start()
    try:
        operators.start()

        def finished() -> bool:
            ended = runs().ends
            return all(tag in ended for job_id, tag in tag_of.items()
                       if job_id not in operators.removed)
        _kill_while_running(fleet, journal, finished, KILLS)
        # The failed ones come back through the operators' retry --all-failed.
        try:
            wait_for(finished, 180, "every job not removed to end", every=0.3)
        except AssertionError:
            ended = runs().ends
            missing = {job_id: tag for job_id, tag in tag_of.items()
                       if job_id not in operators.removed and tag not in ended}
            states = {job_id: _status(queue, job_id) for job_id in list(missing)[:10]}
            raise AssertionError(f"{len(missing)} jobs never ended, e.g. {states}; "
                                 f"counts {queue.info()}") from None
        operators.halt.set()
        operators.join(timeout=150)
        assert not operators.is_alive(), "a CLI command did not end"

        # Then clear, racing the workers on a fresh batch; and a batch after it, which
        # must all run (clear left the store whole).
        racing = [f"r{number}" for number in range(300)]
        _push(queue, journal, racing, set())
        time.sleep(0.05)
        cleared = operators.command("clear", "--yes")
        after = [f"a{number}" for number in range(200)]
        _push(queue, journal, after, set())
        wait_for(lambda: all(tag in runs().ends for tag in after), 60,
                 "every job pushed after the clear to end", every=0.2)
        wait_for(lambda: not _settled(queue), 30, "the store to settle", every=0.2)
    finally:
        operators.halt.set()
        fleet.stop()
    assert cleared.returncode == 0, cleared.stderr
    for args, code, err in operators.results:
        assert code in (0, 1), (args, code, err)
        assert "Traceback" not in err, (args, err)
        if code == 1:
            assert len(err.strip().splitlines()) == 1, (args, err)
    final = runs()
    _assert_kills_landed(fleet, final, failing)
    lost = [tag for job_id, tag in tag_of.items()
            if job_id not in operators.removed and tag not in final.ends]
    assert lost == []
    assert final.unexplained_repeats(fleet.killed, failing,
                                     driver_spec.copies_then_acks) == {}
    _assert_no_entry_left(queue)
    commands = sorted({args[0] for args, _, _ in operators.results})
    assert {"retry", "info"} <= set(commands), commands
    assert ("status" in commands) == queue.capabilities.status, commands
