"""Fuzzing heartbeat records read back: arbitrary bytes, and arbitrary JSON in every field
of a valid record. Decoding either gives a record whose every field is within its bounds,
or raises DamagedRecord, nothing else; reading a set of them never raises; and what the
``workers`` table prints has no control character."""

from __future__ import annotations

import json
import math
import os
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from queue_core.beats import MAX_JOBS, MAX_TEXT, DamagedRecord, decode, encode, read_records
from queue_core.fleet import table
from queue_core.model import RunningJob, WorkerInfo

EXAMPLES = int(os.environ.get("QUEUE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None)
FIELDS = ("id", "host", "pid", "channel", "started_at", "beat_at", "period", "jobs", "done",
          "failed", "memory_mb")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
NOW = time.time()
VALID = json.loads(encode(WorkerInfo("vm-1-abc", "vm", 1, "queue", NOW - 5, NOW, 5.0,
                                     (RunningJob("1", "Job", NOW - 1),), 1, 0, 20.0)))


def _check(info: WorkerInfo) -> None:
    for text in (info.id, info.host, info.channel, *(j.id for j in info.jobs),
                 *(j.name for j in info.jobs)):
        assert len(text) <= MAX_TEXT and not any(ord(c) < 32 for c in text)
    assert 1 <= info.pid < 2**31 and len(info.jobs) <= MAX_JOBS
    assert all(math.isfinite(v) for v in (info.started_at, info.beat_at, info.period))
    assert info.done >= 0 and info.failed >= 0
    for line in table([info], NOW):
        assert not any(ord(c) < 32 for c in line)


def _decoded(raw: bytes) -> None:
    try:
        info = decode(raw)
    except DamagedRecord:
        return
    _check(info)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes(raw: bytes) -> None:
    _decoded(raw)


@FUZZ
@given(st.sampled_from(FIELDS), json_values)
def test_arbitrary_json_in_each_field(field: str, value: object) -> None:
    _decoded(json.dumps({**VALID, field: value}).encode())


@FUZZ
@given(st.lists(st.binary(max_size=100) | json_values.map(lambda v: json.dumps(v).encode()),
                max_size=5))
def test_reading_a_set_never_raises(raws: list[bytes]) -> None:
    for info in read_records([(str(i), raw) for i, raw in enumerate(raws)], "fuzz", NOW):
        _check(info)
