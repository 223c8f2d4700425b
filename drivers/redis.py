"""The Redis driver: every move one Lua script, priorities and delays in sorted sets,
a blocking wait, and about one cheap message per job in the steady state.

A worker's consumer fetches a few ready jobs at once (as many as the core asks for)
*without starting them*. When it begins a job it sends one script call that acks the job
it just finished and marks the next one started, without waiting for the reply (the
replies are read at the next blocking call). So Redis always knows which job is running:
after a crash that one counts as a lost run; jobs that were fetched but not begun come
back after a short lease, uncharged. See redis_scripts.py for the key layout.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode

from queue_core.consumer import Consumer, Settlement, Verdict
from queue_core.errors import ConfigError, DriverError, JobNotFoundError, JobNotInStateError
from queue_core.model import (
    DEFAULT_PRIORITY,
    Capabilities,
    ErrorInfo,
    JobInfo,
    JobStatus,
    Message,
    PushRequest,
)
from queue_core.options import (
    ADDRESS,
    CHANNEL,
    FLAG,
    LEASE_GRACE,
    Option,
    check_options,
    documented,
    names,
    redact_url,
    seconds,
    split_url,
    text,
    whole,
)
from queue_core.records import as_bytes, as_float, as_int, as_time
from queue_core.store import Store

from . import redis_scripts as lua
from .redis_connect import (
    CLIENT,
    SOCKET_TIMEOUT,
    TOPOLOGY,
    connector,
    not_run,
    unreachable,
)

logger = logging.getLogger(__name__)

_SETS = dict(zip((JobStatus.WAITING, JobStatus.DELAYED, JobStatus.RESERVED, JobStatus.DONE,
                  JobStatus.FAILED), lua.SET_KEYS, strict=True))
"""The sorted set that holds the jobs of each state."""
BLOCK_MAX = 5.0
IDLE_CHECK = 1.0
"""A pooled connection unused for longer (seconds) is checked for a close by the server
before it is used again."""
MAX_BULK = 512 * 1024 * 1024
"""Redis's default proto-max-bulk-len: the largest string it accepts in one command."""


def _bulk(args: Any) -> list[bytes]:
    out = []
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return out


def _pack(*args: Any) -> bytes:
    """A command in RESP, for the calls made once per job (redis-py's general packer
    costs several times more)."""
    return b"".join([b"*%d\r\n" % len(args), *_bulk(args)])


_OWN = (
    CHANNEL,
    LEASE_GRACE,
    Option("prefetch", whole(1), 32,
           "The most jobs a worker fetches at once while jobs are quick."),
    Option("prefetch_lease", seconds(1, above=True), 10.0,
           "Seconds a fetched job that has not started yet stays leased to its worker."),
    Option("warn_persistence", FLAG, True,
           "Warn when a worker starts on a Redis that keeps nothing on disk."),
    Option("wait", whole(0, 64), 0,
           "Replicas each write must reach (WAIT) before it counts as done."),
    Option("wait_timeout", seconds(0.001, 3600), 1.0,
           "Seconds a write waits for those replicas."),
)
OPTIONS = (
    Option("url", text(), "redis://127.0.0.1:6379/0",
           "The server: redis://, rediss:// (TLS), unix://, redis+sentinel://host:port,"
           "host:port/service_name[/db] or redis+cluster://host:port,host:port.", ADDRESS),
    *_OWN,
    *TOPOLOGY,
    *CLIENT,
)


@dataclass
class _Script:
    source: str
    sha: str = ""
    keys: tuple[str, ...] = ()
    head: bytes = b""

    def prepare(self) -> None:
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()
        self.head = b"".join(_bulk(("EVALSHA", self.sha, len(self.keys), *self.keys)))

    def call(self, args: Sequence[Any]) -> bytes:
        """EVALSHA of this script with ``args``, packed."""
        return b"".join([b"*%d\r\n" % (3 + len(self.keys) + len(args)), self.head,
                         *_bulk(args)])


@dataclass
class _Pending:
    """A command sent without waiting; resent after a reconnect until confirmed."""

    script: str
    args: list[Any]
    on_reply: Callable[[Any], None] | None = None
    resend: bool = True
    """False for a read whose reply only its caller can use (a reserve): sent again
    after a reconnect, it would reserve jobs for no one until their lease ends."""


@dataclass
class _Handle:
    """A fetched job's reservation."""

    token: str
    attempts_before: Any
    """As read (a damaged record's may be no number: the core's check fails the job)."""
    fetched: float
    """time.monotonic() of the fetch."""
    clears: int
    """The store's count of ``clear`` calls at the fetch."""


@documented(OPTIONS)
class RedisDriver(Store):
    """Jobs in Redis sorted sets, moved by Lua scripts; one server, a Sentinel-managed
    master or a Redis Cluster."""

    name = "redis"
    options = OPTIONS
    capabilities = Capabilities(
        delay=True, priority=True, priority_range=(0, 2**32 - 1), ttr_lease=True, retry=True,
        attempt_count=True, status=True, failed_store=True, last_error=True,
        keep_completed=True,
        manual_retry=True, remove=True, clear=True, info=True,
        listing=frozenset(JobStatus), reset_attempts=True, bulk_push=True,
        max_payload=MAX_BULK)

    payload_limit_setting = "Redis's proto-max-bulk-len"

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, channel: str = "queue",
                 lease_grace: float = 1.0, prefetch: int = 32, prefetch_lease: float = 10.0,
                 warn_persistence: bool = True, wait: int = 0, wait_timeout: float = 1.0,
                 **client_options: Any) -> None:
        super().__init__(channel=channel)
        try:
            import redis
        except ImportError:
            raise ConfigError("the redis driver needs redis-py: pip install 'queue-core[redis]'",
                              key="driver") from None
        self._redis = redis  # the client library, imported here rather than per job
        checked = check_options(self.name, self.options, {
            "lease_grace": lease_grace, "prefetch": prefetch, "prefetch_lease": prefetch_lease,
            "warn_persistence": warn_persistence, "wait": wait, "wait_timeout": wait_timeout})
        client_options = check_options(self.name, self.options, client_options)
        wait_timeout = checked["wait_timeout"]
        self.url = url
        self.wait = wait
        self.wait_timeout = float(wait_timeout)
        self._wait_args = [wait, max(1, int(round(wait_timeout * 1000)))] if wait else None
        self._short_writes = False
        self.lease_grace = float(lease_grace)
        self.prefetch = prefetch
        self.prefetch_lease = float(prefetch_lease)
        self.warn_persistence = warn_persistence
        self._persistence_checked = False
        client_options.setdefault("socket_timeout", SOCKET_TIMEOUT)
        client_options.setdefault("socket_connect_timeout", 5)
        self.prefix = f"qc:{{{channel}}}:"
        p = self.prefix
        self._connector = connector(url, client_options, p + lua.WAITING)
        # Only Sentinel can name a new master behind a connection that still works.
        self._stale = self._connector.stale if self._connector.kind == "sentinel" else None
        self._keys = {name: p + name for name in (lua.ID_COUNTER, *lua.SET_KEYS, lua.NOTIFY)}
        w, d, r, done, f = (self._keys[name] for name in lua.SET_KEYS)
        ids, n = self._keys[lua.ID_COUNTER], self._keys[lua.NOTIFY]
        self._scripts = {
            "push": _Script(lua.PUSH, keys=(ids, w, d, n)),
            "reserve": _Script(lua.RESERVE, keys=(w, d, r, f)),
            "finish_start": _Script(lua.FINISH_START, keys=(r, done)),
            "release": _Script(lua.RELEASE, keys=(r, w, d, n)),
            "fail": _Script(lua.FAIL, keys=(r, f)),
            "remove": _Script(lua.REMOVE, keys=(w, d, r, done, f)),
            "clear": _Script(lua.CLEAR, keys=(w, d, r, done, f, n)),
            "retry": _Script(lua.RETRY, keys=(w, d, r, done, f, n)),
        }
        for script in self._scripts.values():
            script.prepare()
        self._local = threading.local()
        self._clears = 0
        """How many times ``clear`` ran: consumers do not start what they fetched before."""

    @classmethod
    def from_url(cls, url: str, **given: Any) -> RedisDriver:
        base, found = split_url(cls.name, cls.options, url)
        values = {**found, **check_options(cls.name, cls.options, given)}
        kept = {}
        if "+" not in base.partition("://")[0]:
            # redis-py reads a plain URL's own options from its query, over keyword
            # options: those the URL gave stay there (unless given as keywords too), in
            # the text redis-py reads; the multi-host forms take keywords only.
            kept = {key: values.pop(key) for key in names(CLIENT)
                    if key in found and key not in given}
        query = urlencode({key: str(value).lower() if isinstance(value, bool) else value
                           for key, value in kept.items()})
        return cls(f"{base}?{query}" if query else base, **values)

    def describe(self) -> str:
        return f"{redact_url(self.url)} channel {self.channel}"

    def open_consumer(self) -> Consumer:
        return _RedisConsumer(self)

    # -- push ------------------------------------------------------------------------

    def _push_args(self, requests: Sequence[PushRequest]) -> list[Any]:
        first = requests[0]
        shared = (first.ttr, first.priority, first.delay)
        if all((r.ttr, r.priority, r.delay) == shared for r in requests):
            return [self.prefix, "1", repr(float(first.ttr)),
                    DEFAULT_PRIORITY if first.priority is None else first.priority,
                    int(round(first.delay * 1000)), *(r.payload for r in requests)]
        args: list[Any] = [self.prefix, "0"]
        for r in requests:
            args += [r.payload, repr(float(r.ttr)),
                     DEFAULT_PRIORITY if r.priority is None else r.priority,
                     int(round(r.delay * 1000))]
        return args

    def _run_script(self, name: str, args: list[Any]) -> Any:
        return self._run_scripts(name, [args])[0]

    def _run_scripts(self, name: str, calls: list[list[Any]]) -> list[Any]:
        """Script calls on a pooled connection, all sent before the replies are read (a
        driver may be shared by the threads of a web app, so not the worker's own)."""
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        try:
            for _ in range(2):
                todo = self._pipeline(name, calls, todo, replies)
                if not todo:
                    break
                # None of these ran: the channel is served elsewhere now. Ask again once.
                self._drop_thread_connection()
                self._connector.moved()
            else:
                raise DriverError(f"redis {self.describe()}: the server that serves the "
                                  f"channel refused the {name} script twice (moved, "
                                  "read-only or short of replicas); nothing was written")
            if self._wait_args is not None:
                self._await_replicas(name)
            return replies
        except unreachable() as exc:
            self._drop_thread_connection()
            self._connector.moved()
            raise DriverError(f"redis {self.describe()}: {exc}") from exc

    def _pipeline(self, name: str, calls: list[list[Any]], todo: list[int],
                  replies: list[Any]) -> list[int]:
        """Send the calls at positions ``todo``, then read their replies into ``replies``;
        return the positions the server did not run because it does not serve the channel
        (now)."""
        script = self._scripts[name]
        conn = self._thread_connection()
        for position in todo:
            conn.send_packed_command([script.call(calls[position])], check_health=False)
        missing: list[int] = []
        elsewhere: list[int] = []
        failure: BaseException | None = None
        for position in todo:  # every reply is read, so the connection stays in step
            try:
                replies[position] = conn.read_response()
            except self._redis.exceptions.NoScriptError:
                missing.append(position)
            except self._redis.exceptions.ResponseError as exc:
                if not_run(exc):
                    elsewhere.append(position)
                else:
                    failure = failure or exc
        if missing:
            # The server lost its scripts (SCRIPT FLUSH, a restart, a failover): EVAL
            # runs each call and loads the script for the next EVALSHA.
            # Also the first push to a new server: not worth a warning.
            logger.info("redis %s did not have the queue's scripts (NOSCRIPT); sent them",
                        self.describe())
        for position in missing:
            conn.send_packed_command([_pack("EVAL", script.source, len(script.keys),
                                            *script.keys, *calls[position])])
            try:
                replies[position] = conn.read_response()
            except self._redis.exceptions.ResponseError as exc:
                if not_run(exc):
                    elsewhere.append(position)
                else:
                    failure = failure or exc
        if failure is not None:
            self._drop_thread_connection()
            raise DriverError(f"redis {self.describe()}: the {name} script failed: "
                              f"{failure}") from failure
        return sorted(elsewhere)

    def _await_replicas(self, name: str) -> None:
        """The wait option: WAIT until the writes reach that many replicas, or say that
        they did not."""
        conn = self._thread_connection()
        conn.send_packed_command([_pack("WAIT", *(self._wait_args or []))],
                                 check_health=False)
        reached = conn.read_response()
        if not isinstance(reached, int) or reached < self.wait:
            raise DriverError(
                f"redis {self.describe()}: the {name} was written, but reached {reached} of "
                f"the {self.wait} replicas asked for (wait) within {self.wait_timeout:g}s: a "
                "failover now could undo it (a push retried after this error may run twice)")

    def _thread_connection(self) -> Any:
        """This thread's connection for pushes and admin calls: one per thread, since a
        driver may be shared by the threads of a web app."""
        conn = getattr(self._local, "conn", None)
        now = time.monotonic()
        if conn is not None and (now - self._local.used > IDLE_CHECK and self._closed(conn)
                                 or self._stale is not None and self._stale(conn)):
            # The server closed it while it sat idle (a restart, the master's death before
            # a failover): found now, before a command is sent on it, a push can go to the
            # server that serves the channel now instead of failing.
            self._drop_thread_connection()
            self._connector.moved()
            conn = None
        self._local.used = now
        if conn is None:
            pool = self._connector.node().connection_pool
            try:
                conn = pool.get_connection()
            except TypeError:  # redis-py before 5.3 wants a command name
                conn = pool.get_connection("EVALSHA")
            self._local.conn, self._local.pool = conn, pool
        return conn

    @staticmethod
    def _closed(conn: Any) -> bool:
        """Whether an idle connection has something to read: with no reply owed, only the
        end of the stream (the server closed it)."""
        try:
            return bool(conn.can_read(timeout=0))
        except unreachable():
            return True

    def _drop_thread_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.disconnect()
            self._local.pool.release(conn)

    def push(self, payload: bytes, *, ttr: float, delay: float = 0.0,
             priority: int | None = None) -> str:
        last = self._run_script("push", self._push_args([PushRequest(payload, ttr, delay,
                                                                     priority)]))
        return f"{int(last):012d}"

    def push_many(self, requests: Sequence[PushRequest]) -> list[str]:
        """Chunks of 1,000 jobs, one script call each, all sent before any reply is read:
        Redis runs one chunk while the next is being packed."""
        chunks = [requests[start:start + 1000] for start in range(0, len(requests), 1000)]
        lasts = self._run_scripts("push", [self._push_args(chunk) for chunk in chunks])
        ids: list[str] = []
        for chunk, last in zip(chunks, lasts, strict=True):
            ids += [f"{number:012d}" for number in range(int(last) - len(chunk) + 1,
                                                         int(last) + 1)]
        return ids

    # -- lookups and admin -----------------------------------------------------------

    def _admin(self, call: Callable[[Any], Any]) -> Any:
        import redis
        try:
            self._connector.refresh()
            return call(self._connector.client)
        except unreachable() as exc:
            self._connector.moved()
            raise DriverError(f"redis {self.describe()}: {exc}") from exc
        except redis.exceptions.RedisError as exc:  # a key of the wrong type, ...
            raise DriverError(f"redis {self.describe()}: {exc}") from exc

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}{lua.JOB}{job_id}"

    def _lookup(self, job_id: str, fields: bool) -> tuple[JobStatus | None, dict[bytes, bytes]]:
        """A job's state (the sorted set it is in) and, if asked, its hash: one round trip."""
        def run(r: Any) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for name in _SETS.values():
                pipe.zscore(self._keys[name], job_id)
            if fields:
                pipe.hgetall(self._key(job_id))
            return pipe.execute()  # type: ignore[no-any-return]
        replies = self._admin(run)
        state = next((status for status, score in zip(_SETS, replies, strict=False)
                      if score is not None), None)
        return state, (replies[-1] if fields else {})

    def status(self, job_id: str) -> JobStatus | None:
        return self._lookup(job_id, fields=False)[0]

    def get(self, job_id: str) -> JobInfo | None:
        state, fields = self._lookup(job_id, fields=True)
        return _info(job_id, state, fields) if state is not None and fields else None

    def info(self) -> dict[JobStatus, int]:
        def count(r: Any) -> list[int]:
            pipe = r.pipeline(transaction=False)
            for name in lua.SET_KEYS:
                pipe.zcard(self._keys[name])
            return pipe.execute()  # type: ignore[no-any-return]
        waiting, delayed, reserved, done, failed = self._admin(count)
        return {JobStatus.WAITING: waiting, JobStatus.DELAYED: delayed,
                JobStatus.RESERVED: reserved, JobStatus.DONE: done, JobStatus.FAILED: failed}

    def jobs(self, status: JobStatus, limit: int = 100) -> list[JobInfo]:
        name = _SETS[status]

        def listed(r: Any) -> list[JobInfo]:
            ids = [raw.decode() for raw in r.zrange(self._keys[name], 0, limit - 1)]
            pipe = r.pipeline(transaction=False)
            for job_id in ids:
                pipe.hgetall(self._key(job_id))
            return [_info(job_id, status, fields)
                    for job_id, fields in zip(ids, pipe.execute(), strict=True) if fields]
        return self._admin(listed)  # type: ignore[no-any-return]

    def remove(self, job_id: str) -> bool:
        return bool(self._run_script("remove", [self.prefix, job_id]))

    def clear(self) -> None:
        # Each call deletes up to 1,000 jobs of each state and says how many are left; the
        # calls the jobs there at the start need, and no more: pushes racing the clear
        # must not keep it going forever.
        left = int(self._run_script("clear", [self.prefix]))
        for _ in range(left // 1000 + 2):
            if left <= 0:
                break
            left = int(self._run_script("clear", [self.prefix]))
        self._clears += 1

    def retry(self, job_id: str, *, state: JobStatus, reset_attempts: bool = False) -> None:
        reply = self._run_script("retry", [self.prefix, job_id, state.value,
                                           "1" if reset_attempts else "0"])
        if reply == -1:
            raise JobNotFoundError(f"no job {job_id!r} in {self.describe()}")
        if isinstance(reply, list):
            kind = reply[0].decode(errors="replace") if reply else "?"
            raise DriverError(f"redis {self.describe()}: job {job_id} cannot be retried: its "
                              f"key {self._key(job_id)} holds a {kind}, not a job hash")
        if isinstance(reply, bytes):
            raise JobNotInStateError(f"job {job_id} is {reply.decode()}, not {state}")

    def check_setup(self, ttr: float) -> None:
        if not self.warn_persistence or self._persistence_checked:
            return
        self._persistence_checked = True  # once per driver, not at every run()
        try:
            aof = self._connector.node().info("persistence").get("aof_enabled")
        except Exception as exc:  # a proxy or managed server may refuse INFO
            logger.debug("cannot ask %s whether it keeps an append-only file: %s",
                         self.describe(), exc)
            return
        if str(aof) == "0":
            logger.warning(
                "the Redis server of %s keeps no append-only file (appendonly no): if it "
                "restarts, every change to the queue since its last snapshot (all of them, "
                "without snapshots) is lost, jobs pushed and retried included, so 'no job "
                "lost' does not hold. Set 'appendonly yes' with 'appendfsync "
                "everysec' (a machine crash loses up to one second of writes) or "
                "'appendfsync always' (loses nothing acknowledged; slower writes), or "
                "silence this warning with the driver option warn_persistence=False "
                "(?warn_persistence=0 in the URL).", self.describe())

    def after_fork(self) -> None:
        # The parent owns its connections.
        self._local = threading.local()
        self._connector.after_fork()

    def close(self) -> None:
        self._drop_thread_connection()
        self._connector.close()


class _RedisConsumer(Consumer):
    """One worker's connection: fetches jobs unstarted, starts each with one script call
    that also carries the settlements the core kept back, and reads the replies of such
    calls at its next blocking call."""

    folds_settlements = True

    def __init__(self, store: RedisDriver) -> None:
        # The driver's prefetch option sets it for each store.
        self.prefetch = store.prefetch  # type: ignore[misc]
        self.store = store
        self._redis = store._redis
        self._scripts = store._scripts
        self._connector = store._connector
        self._stale = store._stale
        self._prefix = store.prefix
        self._grace = int(store.lease_grace * 1000)
        self._lease = int(store.prefetch_lease * 1000)
        self._fresh = store.prefetch_lease / 2
        """Seconds a fetched job may wait and still be started without a round trip."""
        self._notify = store._keys[lua.NOTIFY]
        self._conn: Any = None
        self._conn_pool: Any = None
        self._pending: deque[_Pending] = deque()
        self._unconfirmed: list[_Pending] = []
        self._tokens = f"{secrets.token_hex(6)}:{os.getpid()}"
        self._batches = 0
        self._short_writes = False

    def describe(self) -> str:
        return self.store.describe()

    # -- taking jobs -----------------------------------------------------------------

    def fetch(self, max_n: int, timeout: float,
              settle: Sequence[Settlement] = ()) -> list[Message]:
        deadline = time.monotonic() + timeout
        self._check_master()
        while True:
            found: tuple[list[Message], float, bool] = self._io(
                functools.partial(self._fetch, max_n, settle))
            messages, next_due, again = found
            settle = ()  # sent and confirmed by that round trip
            if messages:
                return messages
            if again:
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            wait = min(left, BLOCK_MAX)
            if next_due > 0:
                wait = min(wait, next_due)
            self._io(functools.partial(self._block, wait))

    def _fetch(self, max_n: int,
               settle: Sequence[Settlement]) -> tuple[list[Message], float, bool]:
        """One round trip: the settlements, then up to ``max_n`` jobs. Returns them, the
        seconds until the next delayed job is due (or -1), and whether to fetch again at
        once (damaged records took the place of jobs)."""
        self._send_settlements(settle)
        self._batches += 1
        token = f"{self._tokens}:{self._batches}"
        reply = self._call("reserve", [self._prefix, max_n, token, self._lease], resend=False)
        server_now, jobs, next_due, damaged = (int(reply[0]), reply[1], float(reply[2]),
                                               reply[3])
        fetched, clears = time.monotonic(), self.store._clears
        messages = []
        for job_id, payload, ttr, pri, pushed, att, run in jobs:
            try:
                before: Any = int(att)
                message = Message(job_id.decode(), payload, before + 1, float(ttr),
                                  priority=int(pri), pushed_at=int(pushed) / 1000)
            except (TypeError, ValueError):
                # Not what a push wrote: kept as read, for the core's check to fail it.
                before = as_int(att)
                message = Message(job_id.decode(), as_bytes(payload),
                                  before + 1 if isinstance(before, int) else before,
                                  as_float(ttr), priority=as_int(pri),
                                  pushed_at=_seconds(pushed))
            message.redelivered = run == b"1"
            message.handle = _Handle(token, before, fetched, clears)
            messages.append(message)
        for job_id, reason in zip(damaged[::2], damaged[1::2], strict=True):
            logger.error("job %s is damaged in the store: %s; it is failed without running",
                         job_id.decode(errors="replace"), reason.decode(errors="replace"))
        due = -1.0 if next_due < 0 else (next_due - server_now) / 1000
        return messages, due, bool(damaged) and not jobs

    def _block(self, seconds: float) -> None:
        """Wait for a push (or a delayed job's time) on the notify list."""
        conn = self._connection()
        self._drain()
        conn.send_packed_command([_pack("BLPOP", self._notify, f"{max(0.01, seconds):.3f}")],
                                 check_health=False)
        conn.read_response()

    def begin(self, message: Message, settle: Sequence[Settlement] = ()) -> bool:
        """Mark ``message`` started with one script call that also acks a finished job,
        sent without waiting for the reply."""
        handle = cast(_Handle, message.handle)
        self._check_master()
        try:
            acked = self._send_settlements(settle, fold=True)
            args = [*self._ack_args(acked), message.id, handle.token, handle.attempts_before]
            start = _Pending("finish_start", args)
            try:
                if (time.monotonic() - handle.fetched < self._fresh
                        and handle.clears == self.store._clears):
                    self._submit(start)
                    return True
                # It waited so long that its fetch lease may be over (or the queue was
                # cleared since): start it only if it is still ours, which takes a round
                # trip.
                replies: list[Any] = []
                start.on_reply = replies.append
                self._submit(start)
                self._drain()
            except BaseException:
                # Not handed to the worker: resend the ack only, never the start.
                start.args[6:9] = ["", "", ""]
                raise
        except unreachable() as exc:
            raise self._lost(exc) from exc
        # Not 1: its fetch lease ran out and another worker has it (the core skips it).
        return bool(int(replies[0][1]) == 1)

    # -- settling --------------------------------------------------------------------

    def _ack_args(self, acked: Settlement | None) -> list[Any]:
        """FINISH_START's ack arguments for ``acked`` (if any)."""
        if acked is None:
            return [self._prefix, self._grace, "", "", "0", ""]
        handle = cast(_Handle, acked.message.handle)
        return [self._prefix, self._grace, acked.message.id, handle.token,
                "1" if acked.keep else "0", b"" if acked.result is None else acked.result]

    def _send_settlements(self, settle: Sequence[Settlement],
                          fold: bool = False) -> Settlement | None:
        """Send each settlement without waiting for its reply; with ``fold``, keep one ack
        back and return it, for the caller's start to carry."""
        folded = None
        for s in settle:
            if s.verdict is Verdict.ACK:
                if fold and folded is None:
                    folded = s
                    continue
                self._send("finish_start", [*self._ack_args(s), "", "", ""])
                continue
            handle = cast(_Handle, s.message.handle)
            if s.verdict is Verdict.RELEASE:
                self._send("release", [
                    self._prefix, s.message.id, handle.token, int(round(s.delay * 1000)),
                    "" if s.error is None else json.dumps(s.error.as_dict()), "0"])
            else:
                assert s.error is not None
                self._send("fail", [self._prefix, s.message.id, handle.token,
                                    "1" if s.keep else "0", json.dumps(s.error.as_dict())])
        return folded

    def settle(self, settlements: Sequence[Settlement]) -> None:
        """Carry out ``settlements`` in one round trip."""
        if settlements:
            self._io(functools.partial(self._confirm, settlements))

    def _confirm(self, settlements: Sequence[Settlement] = ()) -> None:
        """Send ``settlements``, then read every reply owed."""
        self._send_settlements(settlements)
        if self._unconfirmed:
            self._connection()
            self._drain()

    def give_back(self, messages: Sequence[Message]) -> None:
        """Back to waiting, uncharged: they were never started."""
        def send() -> None:
            for message in messages:
                handle = cast(_Handle, message.handle)
                self._send("release", [self._prefix, message.id, handle.token, 0, "", "1"])
            self._confirm()
        self._io(send)

    # -- lifetime --------------------------------------------------------------------

    def after_fork(self) -> None:
        # The parent owns the connection and whatever it sent.
        self._conn = None
        self._pending = deque()
        self._unconfirmed = []

    def close(self) -> None:
        try:
            self._io(self._confirm)
        except DriverError as exc:
            logger.warning("could not send what the worker owes to %s: %s; those jobs "
                           "come back when their lease ends", self.describe(), exc)
        finally:
            self._drop_connection()

    # -- the connection --------------------------------------------------------------

    def _check_master(self) -> None:
        if self._stale is not None and self._conn is not None and self._stale(self._conn):
            # The Sentinels name another master: what is owed goes there, on a new
            # connection (commands the old one may have run check tokens and counts).
            logger.warning("redis %s: moving to the new master", self.describe())
            self._drop_connection()

    def _connection(self) -> Any:
        if self._conn is None:
            pool = self._connector.node().connection_pool
            try:
                conn: Any = pool.get_connection()
            except TypeError:  # redis-py before 5.3 wants a command name
                conn = pool.get_connection("EVALSHA")
            self._conn, self._conn_pool = conn, pool
            try:
                self._load_scripts(conn)
                # What was sent without an answer before the connection broke may not
                # have happened: every such command checks tokens and counts, so sending
                # it again is safe.
                self._pending = deque()
                for item in self._unconfirmed:
                    self._write(item)
                    self._pending.append(item)
            except BaseException:
                self._drop_connection()
                raise
        return self._conn

    def _load_scripts(self, conn: Any) -> None:
        for script in self._scripts.values():
            conn.send_command("SCRIPT", "LOAD", script.source)
        for _ in self._scripts:
            conn.read_response()

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        pool, self._conn_pool = self._conn_pool, None
        self._pending = deque()
        self._unconfirmed = [item for item in self._unconfirmed if item.resend]
        if conn is not None:
            try:
                conn.disconnect()
            finally:
                pool.release(conn)

    def _write(self, item: _Pending) -> None:
        self._conn.send_packed_command([self._scripts[item.script].call(item.args)],
                                       check_health=False)

    def _send(self, name: str, args: list[Any], resend: bool = True) -> _Pending:
        """Send without waiting; the reply is read by the next round trip."""
        item = _Pending(name, args, resend=resend)
        self._submit(item)
        return item

    def _submit(self, item: _Pending) -> None:
        self._unconfirmed.append(item)
        if self._conn is None:
            self._connection()  # a new connection sends every unconfirmed item, this one too
        else:
            self._write(item)
            self._pending.append(item)
        if self.store._wait_args is not None and item.resend:
            self._send_wait()

    def _send_wait(self) -> None:
        """WAIT after a write (the wait option): its reply, read with the others, says how
        many replicas have every write of this connection so far."""
        item = _Pending("WAIT", self.store._wait_args or [], on_reply=self._waited,
                        resend=False)
        self._unconfirmed.append(item)
        self._conn.send_packed_command([_pack("WAIT", *item.args)], check_health=False)
        self._pending.append(item)

    def _waited(self, reached: Any) -> None:
        wanted = self.store.wait
        short = not isinstance(reached, int) or reached < wanted
        if short and not self._short_writes:
            logger.warning("redis %s: writes reached %s of the %d replicas asked for (wait) "
                           "within %gs: a failover now can undo the latest acks, and their "
                           "jobs run again", self.describe(), reached, wanted,
                           self.store.wait_timeout)
        elif not short and self._short_writes:
            logger.warning("redis %s: writes reach %d replicas again", self.describe(),
                           wanted)
        self._short_writes = short

    def _read_pending(self) -> list[_Pending]:
        """Read the replies owed; return the commands the server did not run because it
        had lost the scripts (NOSCRIPT), to send again."""
        missing: list[_Pending] = []
        while self._pending:
            item = self._pending.popleft()
            try:
                reply = self._conn.read_response()
            except self._redis.exceptions.NoScriptError:
                missing.append(item)
                continue
            except self._redis.exceptions.ResponseError as exc:
                if not_run(exc):
                    # A demoted master, a slot that moved, a master short of replicas:
                    # nothing ran. The connection goes; a new one (to the server that
                    # serves the channel now) sends it again.
                    self._connector.moved()
                    self._drop_connection()
                    raise DriverError(f"redis {self.describe()}: the server does not take "
                                      f"the channel's writes now ({type(exc).__name__}: "
                                      f"{exc}); trying again") from exc
                # Sending it again would fail the same way; the replies still owed are
                # read by no one, so the connection starts afresh (resending the rest).
                self._unconfirmed.remove(item)
                self._drop_connection()
                raise DriverError(f"redis {self.describe()}: the {item.script} script "
                                  f"failed: {exc}") from exc
            self._unconfirmed.remove(item)
            if item.on_reply is not None:
                item.on_reply(reply)
        return missing

    def _drain(self) -> None:
        missing = self._read_pending()
        if not missing:
            return
        # The server lost its scripts (SCRIPT FLUSH, a restart, a failover to a server
        # that never loaded them): none of these commands ran. Load the scripts and send
        # them again, in order, once.
        logger.warning("redis %s had lost the queue's scripts (NOSCRIPT); loaded them "
                       "again", self.describe())
        self._load_scripts(self._conn)
        for item in missing:
            self._write(item)
            self._pending.append(item)
        if self._read_pending():
            self._drop_connection()  # the unconfirmed commands go again on a new one
            raise DriverError(f"redis {self.describe()}: the scripts vanished again right "
                              "after loading them (NOSCRIPT twice)")

    def _call(self, name: str, args: list[Any], resend: bool = True) -> Any:
        """Send, then read every earlier reply and this one: one round trip."""
        item = self._send(name, args, resend)
        replies: list[Any] = []
        item.on_reply = replies.append
        self._drain()
        return replies[0]

    def _io(self, what: Callable[[], Any]) -> Any:
        """Run ``what``; a lost connection is dropped and becomes DriverError."""
        try:
            return what()
        except unreachable() as exc:
            raise self._lost(exc) from exc

    def _lost(self, exc: BaseException) -> DriverError:
        self._connector.moved()
        self._drop_connection()
        return DriverError(f"redis {self.describe()}: {exc}")


def _seconds(raw: Any) -> Any:
    """A stored time in ms as seconds, or the value as it was (see queue_core.records)."""
    value = as_float(raw)
    return value / 1000 if isinstance(value, float) else value


def _info(job_id: str, status: JobStatus, fields: dict[bytes, bytes]) -> JobInfo:
    """What ``get`` and ``jobs`` show; a field that cannot be read shows as None (0 for
    the attempt count), never an error."""
    def whole(name: str) -> int | None:
        value = as_int(fields.get(name.encode()))
        return value if isinstance(value, int) else None

    def ms(name: str) -> float | None:
        value = as_time(fields.get(name.encode()))
        return None if value is None else value / 1000

    payload = as_bytes(fields.get(lua.PAYLOAD.encode(), b""))
    return JobInfo(
        id=job_id, status=status, attempt=whole(lua.ATTEMPTS) or 0,
        priority=whole(lua.PRIORITY), ttr=as_time(fields.get(lua.TTR.encode())),
        pushed_at=ms(lua.PUSHED), started_at=ms(lua.STARTED), finished_at=ms(lua.FINISHED),
        error=ErrorInfo.from_json(fields.get(lua.ERROR.encode())),
        result=fields.get(lua.RESULT.encode()),
        payload=payload if isinstance(payload, bytes) else b"")
