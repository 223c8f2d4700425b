"""procrastinate's side of the PostgreSQL benchmark; its worker imports this module."""

from __future__ import annotations

import os

from procrastinate import App, PsycopgConnector

from benchmarks.marks import mark

app = App(connector=PsycopgConnector(conninfo=os.environ.get(
    "BENCH_PROCRASTINATE_DSN", "postgresql://postgres@127.0.0.1:5432/test")))


@app.task(queue="bench", name="noop")
def noop(index: int, last: int, marks: str) -> None:
    if index == 0 or index == last:
        mark(marks, index, last)
