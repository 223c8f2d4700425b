"""queue-core from another checkout as a contender of throughput.py (``--code DIR``).

Old and new code then run in the same benchmark, round by round next to the same peer, so
a change in speed shows as a ratio of one run rather than of two runs minutes apart. The
pushes run in a child process that imports DIR's queue_core (one process cannot hold two),
and so does the worker; either stops at once if its queue_core does not come from DIR.

    python -m benchmarks.other_code clear|push|push_many [count marks last]

is that child, with the settings in ``$BENCH_SETTINGS`` and DIR in ``$BENCH_CODE``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from benchmarks.contenders import Contender, code_env, spawn


def git_head(code: str) -> str:
    done = subprocess.run(["git", "-C", code, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    return done.stdout.strip() or os.path.basename(code)


def apart(settings: dict[str, Any], suffix: str) -> dict[str, Any]:
    """The same back end under other names (channel, table), so that two versions of the
    code, whose stored formats may differ, never read each other's jobs."""
    driver = settings["driver"]
    if isinstance(driver, dict) and "table" in driver:
        driver = {**driver, "table": f"{driver['table']}_{suffix}"}
    return {**settings, "driver": driver, "channel": f"{settings['channel']}-{suffix}"}


class OtherCode(Contender):
    """queue-core as checked out in ``code``; its worker is that code's ``listen``."""

    def __init__(self, code: str, settings: dict[str, Any], workdir: str) -> None:
        self.code = os.path.realpath(code)
        head = git_head(self.code)
        self.name = f"queue-core@{head}"
        self.settings = apart(settings, head)
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)

    def env(self, **extra: str) -> dict[str, str]:
        return code_env(self.code, self.workdir, BENCH_CODE=self.code,
                        BENCH_SETTINGS=json.dumps(self.settings), **extra)

    def _child(self, *args: object) -> str:
        done = subprocess.run([sys.executable, "-m", "benchmarks.other_code",
                               *map(str, args)], env=self.env(), cwd=self.workdir,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{self.name} {args[0]} failed:\n{done.stderr[-3000:]}")
        return done.stdout.strip()

    def prepare(self) -> None:
        self._child("clear")

    def push(self, count: int, marks: str, last: int) -> float:
        return float(self._child("push", count, marks, last))

    def push_many(self, count: int, marks: str, last: int) -> float:
        return float(self._child("push_many", count, marks, last))

    def worker(self, marks: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "queue_core", "--app", "benchmarks.app:queue",
                   "listen", "--timeout", "1"]
        return spawn(command, self.env(BENCH_MARKS=marks), cwd=self.workdir)

    def close(self) -> None:
        self._child("clear")


def main(argv: list[str]) -> int:
    from benchmarks.app import BenchJob, queue

    built = queue()
    try:
        if argv[0] == "clear":
            built.clear()
            return 0
        count, marks, last = int(argv[1]), argv[2], int(argv[3])
        if argv[0] == "push":
            push = built.push
            start = time.perf_counter()
            for index in range(count):
                push(BenchJob(index, last, marks))
        else:
            jobs = [BenchJob(index, last, marks) for index in range(count)]
            start = time.perf_counter()
            built.push_many(jobs)
        print(time.perf_counter() - start)
        return 0
    finally:
        built.close()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
