"""The Lua scripts of the Redis driver: every state change is one script, so no crash
between two commands can lose or duplicate a job. The sources live in ``lua/``; this
module loads them, names the stored keys and fields, and packs each script's arguments.

Keys (``P`` = ``qc:{<channel>}:``, one hash tag per channel, so Redis Cluster keeps them on
one slot; each key and field name is a constant below):

- ``P id``        counter for job ids
- ``P j:<id>``    hash: p payload, ttr, pri, pushed, att (runs started; missing: 0), run
                  (1 while a run is going on; missing: 0), st started, fin finished, err,
                  res, tok token of the reservation, cx cancel mark (ms), pg progress
                  (JSON); a job's state is the set it is in
- ``P w``         sorted set of waiting ids, score = priority; ids are zero-padded, so equal
                  priorities come out in push order
- ``P d``         delayed ids, score = ready time (ms)
- ``P r``         reserved ids, score = lease end (ms)
- ``P done``, ``P f``   kept completed and failed ids, score = finish time (ms)
- ``P n``         a list pushed on every push, so idle workers blocked on it wake up
- ``P wk``, ``P wkt``   workers' heartbeat records (hash: worker id -> JSON) and when to
                  forget each (sorted set); written by store.py, never by a script

Times come from the server (``TIME``), so workers on several hosts agree.

A job's fields are checked wherever a script reads them (tonumber, never a Lua error: an
error aborts a script after its earlier writes, and the same record would make every
later reserve of the queue fail). A record that cannot be used goes to ``P f`` with an
``err`` of type DamagedJobRecord naming the field, instead of vanishing or being handed
to a worker.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from string import Template
from typing import Any, NamedTuple, Protocol

from queue_core.limits import SLOT_POLL, Limit, Want
from queue_core.model import DEFAULT_PRIORITY, KEEP_ALL, UNREADABLE, Retention

# The stored names, short because every job carries them. Stored data of earlier versions
# uses them, so they are never renamed; the Lua files spell them as written here.
ID_COUNTER = "id"  # counter: the number of the last job id given out
WAITING = "w"  # sorted set: ready ids, score = priority
DELAYED = "d"  # sorted set: ids not ready yet, score = ready time (ms)
RESERVED = "r"  # sorted set: fetched or running ids, score = lease end (ms)
DONE = "done"  # sorted set: kept completed ids, score = finish time (ms)
FAILED = "f"  # sorted set: kept failed ids, score = finish time (ms)
NOTIFY = "n"  # list: a token per push, for idle workers blocked on BLPOP
UNIQUE = "u"  # hash: unique key -> id of the job holding it
UNIQUE_WINDOWS = "ut"  # sorted set: unique key -> end of its unique_for window (ms)
JOB = "j:"  # hash key prefix: a job's hash is ``P j:<id>``
SET_KEYS = (WAITING, DELAYED, RESERVED, DONE, FAILED)
"""The sorted sets, one per state, in the order the scripts take them as KEYS."""

PAYLOAD = "p"  # the payload, as pushed
TTR = "ttr"  # seconds a run may take
PRIORITY = "pri"  # the priority, lowest first
PUSHED = "pushed"  # push time (ms)
ATTEMPTS = "att"  # runs started; missing: 0
RUNNING = "run"  # 1 while a run is going on; missing: 0
STARTED = "st"  # start time of the latest run (ms)
FINISHED = "fin"  # finish time of a kept done or failed job (ms)
ERROR = "err"  # the latest error, as ErrorInfo JSON
RESULT = "res"  # the result of a kept done job
TOKEN = "tok"  # the token of the reservation that holds the job
UNIQUE_KEY = "uk"  # the unique key the job holds for its life (not a window's)
CANCEL = "cx"  # when cancel asked the job's worker to stop it (ms); missing: never
PROGRESS = "pg"  # the job's latest progress (queue_core.progress's stored form)
FIELDS = (PAYLOAD, TTR, PRIORITY, PUSHED, ATTEMPTS, RUNNING, STARTED, FINISHED, ERROR, RESULT,
          TOKEN, UNIQUE_KEY, CANCEL, PROGRESS)
"""Every field of a job's hash."""

# -- the Lua sources -----------------------------------------------------------------

TRIM_BATCH = 200
"""The most kept jobs one settle's script drops for retention (trim.lua)."""
OLDEST_CLASSES = 100
"""The most priorities (and due delayed jobs) oldest.lua looks at."""
_VALUES = {"DEFAULT_PRIORITY": str(DEFAULT_PRIORITY), "UNREADABLE": UNREADABLE,
           "TRIM_BATCH": str(TRIM_BATCH), "OLDEST_CLASSES": str(OLDEST_CLASSES),
           "SLOT_POLL_MS": str(int(SLOT_POLL * 1000))}
"""The Python values the Lua files take, written ``$NAME`` there."""
LOADED: dict[str, str] = {}
"""Every file read from ``lua/``, by name without ``.lua``, with its values filled in."""


def _piece(name: str) -> str:
    if name not in LOADED:
        # Through importlib.resources, so the files are found inside a wheel or zip too.
        text = (files(__package__) / "lua" / f"{name}.lua").read_text(encoding="utf-8")
        LOADED[name] = Template(text).substitute(_VALUES)
    return LOADED[name]


def _assemble(*names: str) -> str:
    # Each piece began with a newline when the scripts were Python strings: joined that way
    # the text, and so the SHA1 servers have cached, stays the same.
    return "".join("\n" + _piece(name) for name in names)


PUSH = _assemble("prelude", "push")
PUSH_UNIQUE = _assemble("prelude", "push_unique")
RESERVE = _assemble("prelude", "damage", "reserve")
FINISH_START = _assemble("prelude", "trim", "finish_start")
RELEASE = _assemble("prelude", "release")
FAIL = _assemble("prelude", "trim", "fail")
REMOVE = _assemble("remove")
RETRY = _assemble("prelude", "retry")
CLEAR = _assemble("clear")
OLDEST = _assemble("prelude", "oldest")
LIMIT = _assemble("prelude", "limit")
UNLIMIT = _assemble("unlimit")
CANCEL_JOB = _assemble("prelude", "trim", "cancel")
SET_PROGRESS = _assemble("progress")

# -- each script's keys and arguments ------------------------------------------------


class Args(Protocol):
    """A command's arguments, named; ``to_args`` lists them as the command takes them."""

    def to_args(self) -> list[Any]: ...


def _flag(value: bool) -> str:
    return "1" if value else "0"


class JobSettings(NamedTuple):
    """What PUSH stores with a payload besides it."""

    ttr: str
    """Seconds, as ``repr(float)``."""
    priority: int
    delay_ms: int

    def to_args(self) -> list[Any]:
        return [self.ttr, self.priority, self.delay_ms]


PUSH_KEYS = (ID_COUNTER, WAITING, DELAYED, NOTIFY)


class PushArgs(NamedTuple):
    """ARGV: prefix, then either '1', ttr, priority, delay_ms and one payload per job (a
    batch whose jobs share those), or '0' and (payload, ttr, priority, delay_ms) per job.
    Ids are consecutive: returns the last one."""

    prefix: str
    payloads: Sequence[bytes]
    shared: JobSettings | None
    """The settings of every job, when they all have the same; else None and ``each``."""
    each: Sequence[JobSettings] = ()
    """One per payload, when ``shared`` is None."""

    def to_args(self) -> list[Any]:
        if self.shared is not None:
            return [self.prefix, "1", *self.shared.to_args(), *self.payloads]
        args: list[Any] = [self.prefix, "0"]
        for payload, settings in zip(self.payloads, self.each, strict=True):
            args += [payload, *settings.to_args()]
        return args


PUSH_UNIQUE_KEYS = (ID_COUNTER, WAITING, DELAYED, NOTIFY, FAILED, UNIQUE, UNIQUE_WINDOWS)


class PushUniqueArgs(NamedTuple):
    """ARGV: prefix, then (payload, ttr, priority, delay_ms, unique key or '', unique_for
    in ms or '') per job. Returns one id per job: a held key gives its holder's id."""

    prefix: str
    jobs: Sequence[tuple[bytes, JobSettings, str, str]]

    def to_args(self) -> list[Any]:
        args: list[Any] = [self.prefix]
        for payload, settings, key, window in self.jobs:
            args += [payload, *settings.to_args(), key, window]
        return args


RESERVE_KEYS = (WAITING, DELAYED, RESERVED, FAILED)


class ReserveArgs(NamedTuple):
    """Moves due delayed jobs and expired leases back to waiting (no separate sweeper, no
    lock), then reserves up to ``max_jobs`` jobs WITHOUT starting them: a reserved job only
    counts as a run once START marks it, so jobs a crashed worker had fetched but
    not begun come back uncharged. A damaged record met on the way goes to the failed set,
    and the pop goes on for the jobs it leaves unfilled. Returns {now, jobs, next due time
    or -1, damaged ids and reasons (id, reason, ...)}."""

    prefix: str
    max_jobs: int
    token: str
    lease_ms: int
    """The prefetch lease."""

    def to_args(self) -> list[Any]:
        return [self.prefix, self.max_jobs, self.token, self.lease_ms]


# The token checks of the scripts below use pcall: a job key that is not a hash reads as
# not ours, and RESERVE fails the job when its lease ends.

FINISH_START_KEYS = (RESERVED, DONE, UNIQUE)


class Ack(NamedTuple):
    """The finished job FINISH_START acks."""

    job_id: str
    token: str
    keep: bool
    result: bytes


class Start(NamedTuple):
    """The job FINISH_START marks started."""

    job_id: str
    token: str
    attempts_before: Any
    """As read (a damaged record's may be no number)."""


_NO_ACK = ("", "", "0", "")
_NO_START = ("", "", "")


class FinishStart:
    """FINISH_START, packed for one channel: the ack of the finished job and the start of
    the next one, in one call. Both check the reservation token, and the start the
    attempt count, so a resend is harmless. The call is made once per job, so its head
    (the prefix and grace included) is packed once.
    ARGV: prefix, grace (ms), ack id ('' for none), ack token, keep ('1'/'0'), result,
    start id ('' for none), start token, attempts before this start, and the retention of
    kept done jobs (max count, max age in ms; '' for none), packed once too."""

    def __init__(self, script: Script, prefix: str, grace_ms: int,
                 retention: Retention = KEEP_ALL) -> None:
        self._head = b"".join([b"*%d\r\n" % (3 + len(script.keys) + 11), script.head,
                               *bulk((prefix, grace_ms))])
        self._tail = b"".join(bulk(retention_args(retention)))

    def pack(self, ack: Ack | None, start: Start | None) -> bytes:
        acked = _NO_ACK if ack is None else (ack.job_id, ack.token, "1" if ack.keep else "0",
                                             ack.result)
        return b"".join([self._head, *bulk((*acked, *(start or _NO_START))), self._tail])


RELEASE_KEYS = (RESERVED, WAITING, DELAYED, NOTIFY)


class ReleaseArgs(NamedTuple):
    """ARGV: prefix, id, token, delay (ms), error json ('' keeps), '1' to leave 'run' as it
    is (a job given back before it started)."""

    prefix: str
    job_id: str
    token: str
    delay_ms: int
    error: str
    """The error as JSON; '' keeps the one stored."""
    given_back: bool

    def to_args(self) -> list[Any]:
        return [self.prefix, self.job_id, self.token, self.delay_ms, self.error,
                _flag(self.given_back)]


FAIL_KEYS = (RESERVED, FAILED, UNIQUE)


class FailArgs(NamedTuple):
    """ARGV: prefix, id, token, keep ('1'/'0'), error json, the retention of kept failed
    jobs (max count, max age in ms; '' for none)."""

    prefix: str
    job_id: str
    token: str
    keep: bool
    error: str
    retention: tuple[str, str] = ("", "")

    def to_args(self) -> list[Any]:
        return [self.prefix, self.job_id, self.token, _flag(self.keep), self.error,
                *self.retention]


def retention_args(retention: Retention) -> tuple[str, str]:
    """A Retention as trim.lua takes it: max count and max age in ms, '' for no limit."""
    count = "" if retention.max_count is None else str(retention.max_count)
    age = "" if retention.max_age is None else str(max(1, round(retention.max_age * 1000)))
    return count, age


REMOVE_KEYS = (*SET_KEYS, UNIQUE)


class RemoveArgs(NamedTuple):
    """ARGV: prefix, id."""

    prefix: str
    job_id: str

    def to_args(self) -> list[Any]:
        return [self.prefix, self.job_id]


RETRY_KEYS = (*SET_KEYS, NOTIFY)


class RetryArgs(NamedTuple):
    """ARGV: prefix, id, expected state ('done' or 'failed'), '1' to reset attempts.
    Returns 1, -1 (no such job), the state the job is in, or {type} when the job's key is
    not a hash (nothing is changed)."""

    prefix: str
    job_id: str
    state: str
    reset_attempts: bool

    def to_args(self) -> list[Any]:
        return [self.prefix, self.job_id, self.state, _flag(self.reset_attempts)]


OLDEST_KEYS = (WAITING, DELAYED)


class OldestArgs(NamedTuple):
    """ARGV: prefix. Returns the push time in ms as a string, or nil."""

    prefix: str

    def to_args(self) -> list[Any]:
        return [self.prefix]



CANCEL_KEYS = (WAITING, DELAYED, RESERVED, FAILED, UNIQUE)


class CancelArgs(NamedTuple):
    """ARGV: prefix, id, keep ('1'/'0'), error json, the retention of kept failed jobs.
    Returns 1 (failed before it ran), 2 (running: marked) or 0."""

    prefix: str
    job_id: str
    keep: bool
    error: str
    retention: tuple[str, str] = ("", "")

    def to_args(self) -> list[Any]:
        return [self.prefix, self.job_id, _flag(self.keep), self.error, *self.retention]


PROGRESS_KEYS = (RESERVED,)


class ProgressArgs(NamedTuple):
    """ARGV: prefix, id, the progress as stored. Returns 1, or 0 if the job is not
    reserved (nothing written)."""

    prefix: str
    job_id: str
    progress: str

    def to_args(self) -> list[Any]:
        return [self.prefix, self.job_id, self.progress]



CLEAR_KEYS = (*SET_KEYS, NOTIFY, UNIQUE, UNIQUE_WINDOWS)


class ClearArgs(NamedTuple):
    """ARGV: prefix. Deletes up to 1000 jobs per call; returns how many are left, so the
    caller calls again until 0 (no long-running script)."""

    prefix: str

    def to_args(self) -> list[Any]:
        return [self.prefix]


LIMIT_KEYS = (WAITING,)
"""Only to route the call to the channel's node: the buckets (``P lim:<name>``) and slots
(``P slot:<name>``) share the channel's hash tag."""


class LimitArgs(NamedTuple):
    """Take tokens and slots for each want, all or nothing per want (limit.lua)."""

    prefix: str
    limits: Sequence[Limit]
    wants: Sequence[Want]

    def to_args(self) -> list[Any]:
        args: list[Any] = [self.prefix, len(self.limits)]
        for limit in self.limits:
            args += [limit.name, "" if limit.rate is None else repr(limit.rate),
                     limit.bucket_size,
                     "" if limit.max_concurrent is None else limit.max_concurrent]
        args.append(len(self.wants))
        for want in self.wants:
            args += [want.slot, int(want.lease * 1000), len(want.limits),
                     *[index + 1 for index in want.limits]]
        return args


UNLIMIT_KEYS = LIMIT_KEYS


class UnlimitArgs(NamedTuple):
    """Free max_concurrent slots (unlimit.lua)."""

    prefix: str
    slots: Sequence[tuple[str, str]]

    def to_args(self) -> list[Any]:
        return [self.prefix, *[part for pair in self.slots for part in pair]]


class WaitArgs(NamedTuple):
    """WAIT's arguments (the wait option): not a script, but sent beside them."""

    replicas: int
    timeout_ms: int

    def to_args(self) -> list[Any]:
        return [self.replicas, self.timeout_ms]


# -- packing -------------------------------------------------------------------------


def bulk(args: Any) -> list[bytes]:
    out = []
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return out


def pack(*args: Any) -> bytes:
    """A command in RESP, for the calls made once per job (redis-py's general packer
    costs several times more)."""
    return b"".join([b"*%d\r\n" % len(args), *bulk(args)])


@dataclass
class Script:
    source: str
    sha: str = ""
    keys: tuple[str, ...] = ()
    head: bytes = b""

    def prepare(self) -> None:
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()
        self.head = b"".join(bulk(("EVALSHA", self.sha, len(self.keys), *self.keys)))

    def call(self, args: Sequence[Any]) -> bytes:
        """EVALSHA of this script with ``args``, packed."""
        return b"".join([b"*%d\r\n" % (3 + len(self.keys) + len(args)), self.head,
                         *bulk(args)])
