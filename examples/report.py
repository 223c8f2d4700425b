"""A failed-job report: what failed, how often, and the latest example of each error.

    python examples/report.py            (after examples/quickstart.py)
    python examples/report.py --retry    also send every failed job back to waiting
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

from examples.settings import queue  # noqa: E402
from queue_core import JobInfo  # noqa: E402


def main(argv: list[str]) -> int:
    failed = queue.failed(limit=1000)
    if not failed:
        print("no failed jobs")
        return 0
    by_error: dict[str, list[JobInfo]] = defaultdict(list)
    for info in failed:
        by_error[info.error.type if info.error else "unknown"].append(info)
    print(f"{len(failed)} failed job(s) in {queue.driver.describe()}\n")
    for error_type, infos in sorted(by_error.items(), key=lambda item: -len(item[1])):
        latest = max(infos, key=lambda info: info.finished_at or 0)
        print(f"{len(infos):>4} x {error_type}")
        print(f"       latest: job {latest.id} ({latest.job_name}, {latest.attempt} run(s))")
        print(f"       {latest.error.message if latest.error else ''}")
    if "--retry" in argv:
        for info in failed:
            queue.retry(info.id)
        print(f"\n{len(failed)} job(s) sent back to waiting")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
