"""queue-core in one minute, on the embedded file driver (no server).

    python examples/quickstart.py

Pushes a few e-mails, starts a real worker (``queue-core listen``) in a child process,
waits until the queue is drained, stops the worker with SIGTERM and prints what happened
to every job.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

from examples.jobs import SendEmail  # noqa: E402
from examples.settings import queue  # noqa: E402
from queue_core import JobStatus  # noqa: E402


def main() -> int:
    queue.clear()
    shutil.rmtree("queue-data/smtp-tries", ignore_errors=True)
    jobs = {
        "welcome": SendEmail("ann@example.com", "Welcome!"),
        "flaky": SendEmail("flaky-bob@example.com", "Your invoice"),
        "bounce": SendEmail("nobody@invalid.example", "Hello?"),
        "vip": SendEmail("ceo@example.com", "Quarterly numbers", vip=True),
    }
    ids = {name: queue.push(job) for name, job in jobs.items()}
    ids["later"] = queue.push(SendEmail("dan@example.com", "Reminder"), delay=1)
    print(f"pushed {len(ids)} jobs to {queue.driver.describe()}: "
          f"{queue.info()[JobStatus.WAITING]} waiting, {queue.info()[JobStatus.DELAYED]} delayed")

    worker = subprocess.Popen(
        [sys.executable, "-m", "queue_core", "--app", "examples.settings:queue", "-v",
         "listen", "--timeout", "1"], cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not all(queue.status(i) in (JobStatus.DONE, JobStatus.FAILED)
                      for i in ids.values()):
            if time.monotonic() > deadline or worker.poll() is not None:
                print("the worker did not drain the queue", file=sys.stderr)
                return 1
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=10)
    print(f"worker stopped by SIGTERM with exit code {code}\n")

    print(f"{'job':<8} {'status':<7} {'runs':>4}  outcome")
    for name, job_id in ids.items():
        info = queue.get(job_id)
        outcome = info.result if info.status is JobStatus.DONE else str(info.error)
        print(f"{name:<8} {info.status.value:<7} {info.attempt:>4}  {outcome}")
    counts = queue.info()
    print("\nqueue:", ", ".join(f"{status.value} {n}" for status, n in counts.items()))
    expected = {"welcome": (JobStatus.DONE, 1), "flaky": (JobStatus.DONE, 3),
                "bounce": (JobStatus.FAILED, 1), "vip": (JobStatus.DONE, 1),
                "later": (JobStatus.DONE, 1)}
    wrong = {name for name, (status, runs) in expected.items()
             if (queue.get(ids[name]).status, queue.get(ids[name]).attempt) != (status, runs)}
    if wrong:
        print(f"unexpected outcome for: {', '.join(sorted(wrong))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
