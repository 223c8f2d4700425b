"""The formats a file queue stores: job records and the markers that point to them.

A record starts with a fixed-width header (length, attempt, running flag, start time, dead
flag), then one JSON line of metadata, then the payload; the mutable fields are rewritten
in place. A marker's target (``Target``) says where the record is and, for a delayed job,
when it becomes ready. Everything here is read back from disk: parsing refuses what the
driver did not write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

NS = 1_000_000_000
"""Times in headers, markers and reserved/ names are integer nanoseconds."""

_HEADER = "QCF2 {length:010d} {attempt:010d} {running:d} {started:019d} {dead:d}\n"
MAGIC = b"QCF2 "
HEADER_LEN = len(_HEADER.format(length=0, attempt=0, running=0, started=0, dead=0))
ATTEMPT_AT = 16
"""Where the mutable part of a header (attempt, running flag, start time) begins."""
DEAD_AT = HEADER_LEN - 2
SEALED = b"QCF2 END\n"
"""Ends a segment its writer will not append to again."""

_IN_RECORDS = "@"
_SEGMENT_RE = re.compile(r"^[0-9a-f]{16}$")
_RECORD_KEY_RE = re.compile(r"^@[0-9a-f]{0,16}$")


def header(length: int, attempt: int, running: bool, started_ns: int,
           dead: bool = False) -> bytes:
    return _HEADER.format(length=length, attempt=attempt, running=int(running),
                          started=started_ns, dead=int(dead)).encode()


def mutable(attempt: int, running: bool, started_ns: int) -> bytes:
    """The part of a header that changes after the push, as written at ``ATTEMPT_AT``."""
    return f"{attempt:010d} {int(running):d} {started_ns:019d}".encode()


@dataclass
class Record:
    attempt: int
    running: bool
    started_ns: int
    meta: dict[str, Any]
    payload: bytes


def parse(data: bytes) -> Record:
    if len(data) < HEADER_LEN or not data.startswith(MAGIC):
        raise ValueError("not a queue-core job record")
    attempt = int(data[ATTEMPT_AT:ATTEMPT_AT + 10])
    running = data[27:28] == b"1"
    started = int(data[29:48])
    end = data.index(b"\n", HEADER_LEN)
    try:
        meta = json.loads(data[HEADER_LEN:end])
    except RecursionError:
        raise ValueError("job metadata is nested too deeply") from None
    if not isinstance(meta, dict):
        raise ValueError("job metadata is not an object")
    return Record(attempt, running, started, meta, data[end + 1:])


def encode(meta: dict[str, Any], payload: bytes, attempt: int = 0, running: bool = False,
           started_ns: int = 0) -> bytes:
    body = json.dumps(meta, separators=(",", ":")).encode() + b"\n" + payload
    return header(HEADER_LEN + len(body), attempt, running, started_ns) + body


def walk(data: bytes) -> Iterator[tuple[int, int, bool]]:
    """(offset, length, dead flag) of each record of a segment's contents, up to its seal
    or the first bytes that are not a record."""
    offset = 0
    while offset + HEADER_LEN <= len(data) and data.startswith(MAGIC, offset):
        if data.startswith(SEALED, offset):
            return
        try:
            length = int(data[offset + 5:offset + 15])
        except ValueError:
            return
        if length < HEADER_LEN:
            return  # a damaged length would never move on to the next record
        yield offset, length, data[offset + DEAD_AT:offset + DEAD_AT + 1] == b"1"
        offset += length


@dataclass(frozen=True)
class Target:
    """Where a marker says the record is, and when a delayed job becomes ready."""

    segment: str
    offset: int = 0
    length: int = 0
    ready_ns: int = 0

    @classmethod
    def parse(cls, text: str) -> Target:
        location, _, ready = text.partition("|")
        ready_ns = int(ready, 16) if ready else 0
        if location.startswith(_IN_RECORDS):
            if not _RECORD_KEY_RE.match(location):
                raise ValueError(f"marker names no record file: {location[:40]!r}")
            return cls(location, ready_ns=ready_ns)
        segment, offset, length = location.split(":")
        if not _SEGMENT_RE.match(segment):
            # Only names the driver made: a marker never leads outside segments/.
            raise ValueError(f"marker names no segment: {segment[:40]!r}")
        return cls(segment, int(offset, 16), int(length, 16), ready_ns)

    @classmethod
    def new_record_file(cls, key: str) -> Target:
        """A record rewritten to records/<id>.<key>."""
        return cls(_IN_RECORDS + key)

    @property
    def in_records(self) -> bool:
        return self.segment.startswith(_IN_RECORDS)

    def record_file(self, job_id: str) -> str:
        """The name in records/ of a rewritten record: ``<id>.<key>`` (a bare ``<id>`` was
        written by an earlier version)."""
        key = self.segment[len(_IN_RECORDS):]
        return f"{job_id}.{key}" if key else job_id

    def text(self, ready_ns: int = 0) -> str:
        location = (self.segment if self.in_records
                    else f"{self.segment}:{self.offset:x}:{self.length:x}")
        return f"{location}|{ready_ns:x}" if ready_ns else location
