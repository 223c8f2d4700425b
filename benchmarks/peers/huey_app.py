"""Huey's side of the file/SQLite benchmark; the consumer imports this module."""

from __future__ import annotations

import os

from huey import FileHuey, SqliteHuey

from benchmarks.marks import mark

_kind = os.environ.get("BENCH_HUEY", "sqlite")
_path = os.environ.get("BENCH_HUEY_PATH", "/tmp/bench-huey")
if _kind == "file":
    huey = FileHuey("bench", path=_path, results=False, use_thread_lock=True)
else:
    huey = SqliteHuey("bench", filename=_path, results=False)


@huey.task()
def noop(index: int, last: int, marks: str) -> None:
    if index == 0 or index == last:
        mark(marks, index, last)
