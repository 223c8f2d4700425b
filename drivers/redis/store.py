"""The Redis driver's store: ``RedisDriver`` pushes jobs, answers lookups and admin calls,
and opens a consumer (consumer.py) for each worker.

It is shared by the threads of a process, each with a pooled connection of its own; its
script calls are pipelined, all sent before any reply is read. See scripts.py for the key
layout and connect.py for how the server that holds the channel is found.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from queue_core import beats, progress
from queue_core.consumer import Consumer
from queue_core.errors import ConfigError, DriverError, JobNotFoundError, JobNotInStateError
from queue_core.limits import Limit, Limiter, Want
from queue_core.model import (
    DEFAULT_PRIORITY,
    Capabilities,
    ErrorInfo,
    JobInfo,
    JobStatus,
    Progress,
    PushRequest,
    WorkerInfo,
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
from queue_core.records import as_bytes, as_int, as_time
from queue_core.store import Store

from . import scripts as lua
from .connect import (
    CLIENT,
    SOCKET_TIMEOUT,
    TOPOLOGY,
    connector,
    not_run,
    unreachable,
)
from .consumer import RedisConsumer
from .scripts import Script, pack

logger = logging.getLogger(__name__)

_SETS = dict(zip((JobStatus.WAITING, JobStatus.DELAYED, JobStatus.RESERVED, JobStatus.DONE,
                  JobStatus.FAILED), lua.SET_KEYS, strict=True))
"""The sorted set that holds the jobs of each state."""
IDLE_CHECK = 1.0
"""A pooled connection unused for longer (seconds) is checked for a close by the server
before it is used again."""
MAX_BULK = 512 * 1024 * 1024
"""Redis's default proto-max-bulk-len: the largest string it accepts in one command."""
WORKERS = "wk"
"""Hash of heartbeat records: worker id -> record (JSON). Under the channel's hash tag."""
WORKER_TIMES = "wkt"
"""Sorted set: worker id -> when its record is to be forgotten (s), so that a beat finds
the records of workers long gone in one range query."""
WORKER_KEYS_TTL = int(beats.forget_after(beats.MAX_PERIOD) * 1000)
"""Both keys expire (ms) when no worker beats any more."""


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


@documented(OPTIONS)
class RedisDriver(Store):
    """Jobs in Redis sorted sets, moved by Lua scripts; one server, a Sentinel-managed
    master or a Redis Cluster."""

    name = "redis"
    options = OPTIONS
    capabilities = Capabilities(
        delay=True, priority=True, priority_range=(0, 2**32 - 1), ttr_lease=True, retry=True,
        attempt_count=True, status=True, failed_store=True, last_error=True,
        keep_completed=True, retention=True,
        manual_retry=True, remove=True, clear=True, info=True,
        listing=frozenset(JobStatus), reset_attempts=True, bulk_push=True,
        max_payload=MAX_BULK, heartbeats=True, waiting_age=True, unique=True, rate_limit=True,
        cancel=True, progress=True)

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
        self._wait_args = (lua.WaitArgs(wait, max(1, int(round(wait_timeout * 1000))))
                           if wait else None)
        self._short_writes = False
        self.lease_grace = float(lease_grace)
        self.prefetch = prefetch
        self.prefetch_lease = float(prefetch_lease)
        self.warn_persistence = warn_persistence
        self._persistence_checked = False
        client_options.setdefault("socket_timeout", SOCKET_TIMEOUT)
        client_options.setdefault("socket_connect_timeout", 5)
        self.prefix = f"qc:{{{channel}}}:"
        prefix = self.prefix
        self._connector = connector(url, client_options, prefix + lua.WAITING)
        # Only Sentinel can name a new master behind a connection that still works.
        self._stale = self._connector.stale if self._connector.kind == "sentinel" else None
        self._keys = {name: prefix + name
                      for name in (lua.ID_COUNTER, *lua.SET_KEYS, lua.NOTIFY, lua.UNIQUE,
                                   lua.UNIQUE_WINDOWS)}

        def script(source: str, key_names: tuple[str, ...]) -> Script:
            return Script(source, keys=tuple(self._keys[name] for name in key_names))

        self._scripts = {
            "push": script(lua.PUSH, lua.PUSH_KEYS),
            "push_unique": script(lua.PUSH_UNIQUE, lua.PUSH_UNIQUE_KEYS),
            "reserve": script(lua.RESERVE, lua.RESERVE_KEYS),
            "finish_start": script(lua.FINISH_START, lua.FINISH_START_KEYS),
            "release": script(lua.RELEASE, lua.RELEASE_KEYS),
            "fail": script(lua.FAIL, lua.FAIL_KEYS),
            "remove": script(lua.REMOVE, lua.REMOVE_KEYS),
            "clear": script(lua.CLEAR, lua.CLEAR_KEYS),
            "retry": script(lua.RETRY, lua.RETRY_KEYS),
            "oldest": script(lua.OLDEST, lua.OLDEST_KEYS),
            "limit": script(lua.LIMIT, lua.LIMIT_KEYS),
            "unlimit": script(lua.UNLIMIT, lua.UNLIMIT_KEYS),
            "cancel": script(lua.CANCEL_JOB, lua.CANCEL_KEYS),
            "progress": script(lua.SET_PROGRESS, lua.PROGRESS_KEYS),
        }
        for prepared in self._scripts.values():
            prepared.prepare()
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
        return RedisConsumer(self)

    def limiter(self) -> Limiter:
        return RedisLimiter(self)

    # -- push ------------------------------------------------------------------------

    def _push_args(self, requests: Sequence[PushRequest]) -> lua.PushArgs:
        first = requests[0]
        shared = (first.ttr, first.priority, first.delay)
        payloads = [r.payload for r in requests]
        if all((r.ttr, r.priority, r.delay) == shared for r in requests):
            return lua.PushArgs(self.prefix, payloads, _settings(first))
        return lua.PushArgs(self.prefix, payloads, None, [_settings(r) for r in requests])

    def _run_script(self, name: str, args: lua.Args) -> Any:
        return self._run_scripts(name, [args])[0]

    def _run_scripts(self, name: str, calls: Sequence[lua.Args]) -> list[Any]:
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

    def _pipeline(self, name: str, calls: Sequence[lua.Args], todo: list[int],
                  replies: list[Any]) -> list[int]:
        """Send the calls at positions ``todo``, then read their replies into ``replies``;
        return the positions the server did not run because it does not serve the channel
        (now)."""
        script = self._scripts[name]
        conn = self._thread_connection()
        for position in todo:
            conn.send_packed_command([script.call(calls[position].to_args())],
                                     check_health=False)
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
            conn.send_packed_command([pack("EVAL", script.source, len(script.keys),
                                           *script.keys, *calls[position].to_args())])
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
        wait = self._wait_args.to_args() if self._wait_args is not None else []
        conn.send_packed_command([pack("WAIT", *wait)], check_health=False)
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
        if any(r.unique_key is not None for r in requests):
            return self._push_unique(chunks)
        lasts = self._run_scripts("push", [self._push_args(chunk) for chunk in chunks])
        ids: list[str] = []
        for chunk, last in zip(chunks, lasts, strict=True):
            ids += [f"{number:012d}" for number in range(int(last) - len(chunk) + 1,
                                                         int(last) + 1)]
        return ids

    def _push_unique(self, chunks: Sequence[Sequence[PushRequest]]) -> list[str]:
        """PUSH_UNIQUE: each key checked and taken in the script that stores the job."""
        calls = [lua.PushUniqueArgs(self.prefix, [
            (r.payload, _settings(r), r.unique_key or "",
             "" if r.unique_for is None else str(max(1, round(r.unique_for * 1000))))
            for r in chunk]) for chunk in chunks]
        ids: list[str] = []
        for reply in self._run_scripts("push_unique", calls):
            ids += [raw.decode() if isinstance(raw, bytes) else str(raw) for raw in reply]
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

    def oldest_waiting(self) -> float | None:
        found = self._run_script("oldest", lua.OldestArgs(self.prefix))
        try:
            return None if found is None else int(found) / 1000
        except (TypeError, ValueError):
            return None

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
        return bool(self._run_script("remove", lua.RemoveArgs(self.prefix, job_id)))

    def clear(self) -> None:
        # Each call deletes up to 1,000 jobs of each state and says how many are left; the
        # calls the jobs there at the start need, and no more: pushes racing the clear
        # must not keep it going forever.
        left = int(self._run_script("clear", lua.ClearArgs(self.prefix)))
        for _ in range(left // 1000 + 2):
            if left <= 0:
                break
            left = int(self._run_script("clear", lua.ClearArgs(self.prefix)))
        self._clears += 1

    def retry(self, job_id: str, *, state: JobStatus, reset_attempts: bool = False) -> None:
        reply = self._run_script("retry", lua.RetryArgs(self.prefix, job_id, state.value,
                                                        reset_attempts))
        if reply == -1:
            raise JobNotFoundError(f"no job {job_id!r} in {self.describe()}")
        if isinstance(reply, list):
            kind = reply[0].decode(errors="replace") if reply else "?"
            raise DriverError(f"redis {self.describe()}: job {job_id} cannot be retried: its "
                              f"key {self._key(job_id)} holds a {kind}, not a job hash")
        if isinstance(reply, bytes):
            raise JobNotInStateError(f"job {job_id} is {reply.decode()}, not {state}")

    def cancel(self, job_id: str, *, error: ErrorInfo, keep: bool = True) -> str | None:
        reply = self._run_script("cancel", lua.CancelArgs(
            self.prefix, job_id, keep, json.dumps(error.as_dict()),
            lua.retention_args(self.retention_failed)))
        return {1: "failed", 2: "marked"}.get(reply)

    def cancel_requested(self, job_ids: Sequence[str]) -> set[str]:
        def marks(r: Any) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hget(self._key(job_id), lua.CANCEL)
            return pipe.execute()  # type: ignore[no-any-return]
        found = self._admin(marks)
        return {job_id for job_id, raw in zip(job_ids, found, strict=True)
                if progress.cancel_mark(raw, job_id)}

    def set_progress(self, job_id: str, value: Progress) -> None:
        self._run_script("progress", lua.ProgressArgs(self.prefix, job_id,
                                                      progress.encode(value)))

    # -- heartbeats: a hash of records and a sorted set of their expiry times -----------

    def beat(self, record: WorkerInfo) -> None:
        now = time.time()
        records, times = self.prefix + WORKERS, self.prefix + WORKER_TIMES
        data = beats.encode(record)
        forget_at = now + beats.forget_after(record.period)

        def write(r: Any) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            pipe.hset(records, record.id, data)
            pipe.zadd(times, {record.id: forget_at})
            pipe.pexpire(records, WORKER_KEYS_TTL)
            pipe.pexpire(times, WORKER_KEYS_TTL)
            pipe.zrangebyscore(times, "-inf", now)
            return pipe.execute()  # type: ignore[no-any-return]
        gone = self._admin(write)[-1]
        if gone:
            # Workers long gone (no clean exit). One that beats again right now loses its
            # record until its next beat: no harm.
            def purge(r: Any) -> None:
                pipe = r.pipeline(transaction=False)
                pipe.hdel(records, *gone)
                pipe.zrem(times, *gone)
                pipe.execute()
            self._admin(purge)

    def workers(self) -> list[WorkerInfo]:
        found = self._admin(lambda r: r.hgetall(self.prefix + WORKERS))
        return beats.read_records(
            ((name.decode(errors="replace") if isinstance(name, bytes) else str(name), raw)
             for name, raw in found.items()), self.describe(), time.time())

    def forget_worker(self, worker_id: str) -> bool:
        def forget(r: Any) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            pipe.hdel(self.prefix + WORKERS, worker_id)
            pipe.zrem(self.prefix + WORKER_TIMES, worker_id)
            return pipe.execute()  # type: ignore[no-any-return]
        return bool(self._admin(forget)[0])

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



def _settings(request: PushRequest) -> lua.JobSettings:
    return lua.JobSettings(
        repr(float(request.ttr)),
        DEFAULT_PRIORITY if request.priority is None else request.priority,
        int(round(request.delay * 1000)))


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
        payload=payload if isinstance(payload, bytes) else b"",
        progress=progress.decode(fields.get(lua.PROGRESS.encode()), job_id))


class RedisLimiter(Limiter):
    """The rate limits' buckets and slots in the channel's keys, each call one script."""

    def __init__(self, store: RedisDriver) -> None:
        self._store = store

    def acquire(self, limits: Sequence[Limit], wants: Sequence[Want]) -> tuple[list[bool], float]:
        grants, wait = self._store._run_script(
            "limit", lua.LimitArgs(self._store.prefix, limits, wants))
        granted = [flag == ord("1") for flag in bytes(grants)]
        if len(granted) != len(wants):
            raise DriverError(f"redis {self._store.describe()}: the limit script answered "
                              f"{len(granted)} grants for {len(wants)} jobs")
        seconds = float(wait) / 1000
        return granted, (0.0 if seconds < 0 else seconds)

    def release(self, slots: Sequence[tuple[str, str]]) -> None:
        self._store._run_script("unlimit", lua.UnlimitArgs(self._store.prefix, slots))
