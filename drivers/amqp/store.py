"""The amqp Store (``AmqpDriver``, and ``AmqpQuorumDriver`` on quorum queues): its options,
pushes, lookups and admin, and the connections its consumers take jobs on.

The store pushes and answers admin calls on a connection per thread, waiting for publisher
confirms; each worker's consumer (``_AmqpConsumer``) takes jobs on a connection of its own
and publishes its copies through the store.

Copies carry the error text of a failure, cut (by bytes) so that their header frame fits
the connection's frame_max (``_fit``). A driver may list several hosts (the nodes of a
cluster): each connection tries them in turn (``_open``).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from itertools import count
from typing import Any, TypeVar
from urllib.parse import urlencode

from queue_core.consumer import Consumer
from queue_core.errors import (
    ConfigError,
    DriverError,
    InvalidArgumentError,
    JobNotFoundError,
    NotSupportedError,
    QueueError,
)
from queue_core.logfields import job_extra
from queue_core.model import ErrorInfo, JobInfo, JobStatus, PushRequest
from queue_core.options import (
    ADDRESS,
    CHANNEL,
    LEASE_GRACE,
    SETTINGS,
    URL,
    Kind,
    Option,
    check_options,
    choice,
    documented,
    hosts,
    names,
    redact_url,
    seconds,
    text,
    url_and_options,
    whole,
)
from queue_core.store import Store

from .codec import fit_properties, properties_head, shortstr
from .connection import Delivery, ProbeError, Wire, WireError, address
from .consumer import _AmqpConsumer
from .headers import SHORTENED, as_int, as_text, carried, kept_whole
from .hosts import connection_parameters
from .topology import CLASSIC_CAPABILITIES, QUEUE_TYPES, QUORUM_CAPABILITIES, Topology

logger = logging.getLogger(__name__)

T = TypeVar("T")

PUSH_CHUNK = 1000
REFUSAL_RESENDS = 3
"""How often messages the broker refused (basic.nack: it did not take them) are sent
again before the push fails; a quorum queue refuses now and then under load."""
INTERNAL_ERROR = 541
"""The reply code of a broker that closed a connection on its own trouble (a quorum queue
whose process is not running yet: 'noproc')."""
REFUSAL_PAUSE = 0.05
"""Seconds before the first resend of refused messages, doubled for each next one."""
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def _pika_option(name: str, kind: Kind, default: Any, help: str) -> Option:
    return Option(name, kind, default, help, URL, passed_on=True)


_PIKA_OPTIONS = (
    _pika_option("heartbeat", whole(0), None,
                 "Seconds between heartbeats (0: none; the server's choice by default)."),
    _pika_option("frame_max", whole(4096, 2**31 - 1), 131072, "The largest frame in bytes."),
    _pika_option("channel_max", whole(1, 65535), 65535, "The most channels a connection has."),
    _pika_option("connection_attempts", whole(1), 1, "Tries of each host per connect."),
    _pika_option("retry_delay", seconds(0), 2.0, "Seconds between those tries."),
    _pika_option("socket_timeout", seconds(0, above=True), 10.0,
                 "Seconds a socket operation may take."),
    _pika_option("stack_timeout", seconds(0, above=True), 15.0,
                 "Seconds the whole connection set-up may take."),
    _pika_option("blocked_connection_timeout", seconds(0, above=True), None,
                 "Seconds a connection blocked by the broker may stay blocked."),
    _pika_option("locale", text(), "en_US", "The locale asked of the broker."),
    _pika_option("client_properties", text(), None,
                 "Client properties shown by the broker, as pika reads them."),
    _pika_option("ssl_options", text(), None, "TLS options (amqps://), as pika reads them."),
    _pika_option("tcp_options", text(), None, "TCP options, as pika reads them."),
)
"""pika's URL options: checked here, then left in the URL pika reads."""
OPTIONS = (
    Option("url", text(), DEFAULT_URL,
           "amqp://user:password@host:port/vhost or amqps://; several hosts (the nodes of "
           "a cluster) as host1:port,host2:port, or in hosts.", ADDRESS),
    Option("hosts", hosts("a non-empty list of 'host' or 'host:port' strings"), None,
           "The hosts, tried in turn, for a URL that names none "
           "(amqp://user:password@/vhost).", SETTINGS, none=True),
    CHANNEL,
    Option("prefetch", whole(1, 65535), 20, "Unacknowledged jobs a worker holds at most."),
    Option("queue_type", choice("classic", "quorum"), None,
           "'quorum' builds an AmqpQuorumDriver (replicated quorum queues).", none=True),
    Option("consumer_timeout", seconds(0), 1800.0,
           "The broker's consumer_timeout, in seconds: a worker warns when a ttr is "
           "longer."),
    LEASE_GRACE,
    Option("connect_timeout", seconds(0), 5.0, "Seconds to wait for a connection."),
    Option("publish_timeout", seconds(0), 30.0,
           "Seconds a push waits for the broker's confirm."),
    *_PIKA_OPTIONS,
)


_pika_module: Any = None


def _pika() -> Any:
    global _pika_module
    if _pika_module is None:
        try:
            import pika
        except ImportError:
            raise ConfigError("the amqp driver needs pika: pip install 'queue-core[amqp]'",
                              key="driver") from None
        _pika_module = pika
    return _pika_module


@documented(OPTIONS)
class AmqpDriver(Store):
    """Jobs in RabbitMQ queues (see ``topology`` for the queues of a channel).

    ``queue_type="quorum"`` puts them in quorum queues: a URL or settings with it build an
    :class:`AmqpQuorumDriver` (``from_url``); ``AmqpDriver(url, queue_type="quorum")``
    is a driver on quorum queues too, with the quorum driver's name and capabilities."""

    name = "amqp"
    options = OPTIONS
    capabilities = CLASSIC_CAPABILITIES
    queue_type = "classic"

    def __init__(self, url: str | None = None, *, hosts: Sequence[str] | None = None,
                 channel: str = "queue", prefetch: int = 20, queue_type: str | None = None,
                 consumer_timeout: float = 1800.0, lease_grace: float = 1.0,
                 connect_timeout: float = 5.0, publish_timeout: float = 30.0) -> None:
        super().__init__(channel=channel)
        pika = _pika()
        checked = check_options(self.name, self.options, {
            "prefetch": prefetch, "queue_type": queue_type, "consumer_timeout": consumer_timeout,
            "lease_grace": lease_grace, "connect_timeout": connect_timeout,
            "publish_timeout": publish_timeout})
        kind = QUEUE_TYPES[checked["queue_type"] or self.queue_type]
        if kind.name != self.queue_type:
            if type(self) is not AmqpDriver:
                raise ConfigError(f"queue_type {kind.name!r} does not go with "
                                  f"{type(self).__name__}: it is {self.queue_type!r}",
                                  key="driver.queue_type")
            # Settings that name the class (``{"class": ..., "queue_type": "quorum"}``)
            # build it so: this driver is the quorum driver in all but its class.
            self.name = kind.driver_name  # type: ignore[misc]
            self.capabilities = kind.capabilities  # type: ignore[misc]
            self.queue_type = kind.name
        self.kind = kind
        """What is particular to the type of queues."""
        if url is None:
            url = DEFAULT_URL if hosts is None else "amqp://guest:guest@/%2F"
        scheme = url.split(":", 1)[0].lower() if isinstance(url, str) else ""
        if scheme not in ("amqp", "amqps"):
            raise ConfigError(f"amqp driver URL must start with amqp:// or amqps://, got "
                              f"{redact_url(str(url))!r}", key="driver")
        self.brokers: list[Any] = connection_parameters(pika, url, hosts)
        """pika's connection parameters of each host, in the order they are tried."""
        self._active = 0
        """The host the next connection tries first: the last one that took one, or the
        one after it once a connection to it was lost."""
        self._connected: int | None = None
        """The host the last connection went to."""
        self.url = url
        self.prefetch = prefetch
        self.consumer_timeout: float = checked["consumer_timeout"]
        self.lease_grace = checked["lease_grace"]
        self.connect_timeout: float = checked["connect_timeout"]
        self.publish_timeout: float = checked["publish_timeout"]
        heartbeat = self.brokers[0].heartbeat
        self.heartbeat: int | None = heartbeat if isinstance(heartbeat, int) else None
        self.topology = Topology(channel, kind, self.publish_timeout, self.describe)
        """The queues of the channel, and those this process declared lately."""
        self.failed_queue = self.topology.failed_queue
        self.registry_queue = self.topology.registry_queue
        self._local = threading.local()
        self._producers: list[Wire] = []
        self._producers_lock = threading.Lock()
        self._warned_ttrs: set[float] = set()
        self._consumers: set[_AmqpConsumer] = set()
        """The consumers open: one that a caller dropped still holds its jobs, which
        the next fetch of another takes back once their lease ends."""
        self._consumers_lock = threading.Lock()
        self._idle: list[Wire] = []
        """Worker connections that closed consumers left in good order, for the next
        consumers (``run`` opens one each time): under ``_consumers_lock``."""
        self._new_ids()

    @classmethod
    def from_url(cls, url: str, **given: Any) -> AmqpDriver:
        """Our own options may ride in the query string (``?prefetch=50``), and pika's
        (``heartbeat``, ``ssl_options``, ...), which stay in the URL pika reads.
        ``queue_type`` chooses the class: :class:`AmqpQuorumDriver` for quorum queues."""
        base, values = url_and_options(cls.name, cls.options, url, given)
        kept = {key: values.pop(key) for key in names(_PIKA_OPTIONS) if key in values}
        chosen = {"classic": AmqpDriver, "quorum": AmqpQuorumDriver}.get(
            values.get("queue_type") or "", cls)
        return chosen(f"{base}?{urlencode(kept)}" if kept else base, **values)

    @property
    def params(self) -> Any:
        """The connection parameters of the host in use (or tried next)."""
        return self.brokers[self._active % len(self.brokers)]

    def describe(self) -> str:
        """Where this driver's jobs are, every host listed as in a URL, without the
        credentials. It stays the same whichever host is in use: errors name the host
        they come from, and a change of host is logged."""
        params = self.brokers[0]
        scheme = "amqps" if params.ssl_options is not None else "amqp"
        vhost = "%2F" if params.virtual_host == "/" else params.virtual_host
        hosts = ",".join(address(each) for each in self.brokers)
        return f"{scheme}://{hosts}/{vhost} queue {self.channel}"

    def _error(self, wire: Wire | None, exc: Exception) -> DriverError:
        """A DriverError for ``exc``, which happened on ``wire``, naming its host."""
        text = str(exc)
        if wire is not None and len(self.brokers) > 1 and wire.address not in text:
            text = f"{wire.address}: {text}"
        return DriverError(f"{self.describe()}: {text}")

    def _new_ids(self) -> None:
        self._id_prefix = secrets.token_hex(6)
        self._ids = count(1)

    def _new_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids):x}"

    # -- connections -----------------------------------------------------------------

    def _open(self, heartbeat: int | None, role: str) -> Wire:
        """A new connection: each host in turn, from the one in use (or the one after a
        host that was lost); WireError naming every host when none answers. The caller's
        backoff (the worker's) comes between such rounds."""
        brokers = self.brokers
        first = self._active % len(brokers)
        failures: list[str] = []
        for step in range(len(brokers)):
            index = (first + step) % len(brokers)
            wire = Wire(brokers[index], heartbeat=heartbeat,
                        connect_timeout=self.connect_timeout,
                        rpc_timeout=max(self.publish_timeout, 5.0),
                        name=f"queue-core {role} {self.channel} pid {os.getpid()}",
                        host_index=index)
            try:
                wire.open()
            except WireError as exc:
                if len(brokers) == 1:
                    raise
                text = str(exc)
                failures.append(text if wire.address in text else f"{wire.address}: {text}")
                continue
            before = self._connected
            if failures or (before is not None and before != index):
                why = "; ".join(failures) or f"instead of {address(brokers[before or 0])}"
                logger.warning("%s: connected to %s (%s)", self.describe(), wire.address, why)
            self._active = self._connected = index
            return wire
        raise WireError(f"none of the {len(brokers)} hosts took a connection: "
                        + "; ".join(failures))

    def _lost(self, wire: Wire) -> None:
        """A connection to ``wire``'s host was lost: the next one tries the next host
        first."""
        if len(self.brokers) > 1 and self._active == wire.host_index:
            self._active = (wire.host_index + 1) % len(self.brokers)

    def _producer(self) -> Wire:
        """This thread's connection for pushes and admin calls (a driver may be shared by
        the threads of a web app). It sends no heartbeats, so that an idle web process
        keeps it; a connection that died meanwhile is noticed before anything is sent."""
        wire: Wire | None = getattr(self._local, "wire", None)
        if wire is not None:
            if wire.dead is None and wire.usable():
                return wire
            self._lost(wire)
            self._forget(wire)
        wire = self._open(0, "producer")
        self._local.wire = wire
        with self._producers_lock:
            self._producers.append(wire)
        return wire

    def _forget(self, wire: Wire) -> None:
        wire.close()
        if getattr(self._local, "wire", None) is wire:
            self._local.wire = None
        with self._producers_lock:
            if wire in self._producers:
                self._producers.remove(wire)

    def _io(self, what: Callable[[Wire], T]) -> T:
        """Run ``what`` on this thread's producer connection; a failure drops the
        connection and becomes DriverError."""
        try:
            wire = self._producer()
            return what(wire)
        except (WireError, ProbeError) as exc:
            current: Wire | None = getattr(self._local, "wire", None)
            error = self._error(current, exc)
            if current is not None and (isinstance(exc, WireError) or current.dead is not None):
                self._lost(current)
                self._forget(current)
            raise error from exc
        except QueueError:
            raise
        except BaseException:
            # Interrupted half way (a job's ttr alarm in a push from inside the job): what
            # was sent, and what the broker will answer, is unknown; start afresh.
            current = getattr(self._local, "wire", None)
            if current is not None:
                self._forget(current)
            raise

    # -- push ------------------------------------------------------------------------

    def _properties(self, ttr: float, priority: int | None, now_ms: int) -> bytes:
        """The properties of a new job but its id, which the caller appends."""
        if isinstance(ttr, bool) or not isinstance(ttr, (int, float)) or not (
                math.isfinite(ttr) and 0 < ttr * 1000 < 2**63):
            # Checked here too (the core bounds it first): a header that cannot be encoded
            # must be refused before anything is sent.
            raise InvalidArgumentError(f"ttr {ttr!r} is out of range for the amqp driver")
        return properties_head(self.kind.amqp_priority(priority),
                               {"qc-ttr": int(round(ttr * 1000)), "qc-pushed": now_ms})

    def push(self, payload: bytes, *, ttr: float, delay: float = 0.0,
             priority: int | None = None) -> str:
        job_id = self._new_id()
        properties = self._properties(ttr, priority, int(time.time() * 1000)) + shortstr(job_id)

        def send(wire: Wire) -> None:
            frames = wire.publish_bytes(self.topology.target(wire, delay), payload,
                                        properties)
            self._confirm(wire, wire.publish(frames, 1), [frames])
        self._io(send)
        return job_id

    def push_many(self, requests: Sequence[PushRequest]) -> list[str]:
        """Messages go out in chunks as they are encoded, so that the broker stores one
        chunk while the next is being built; the confirms are waited for once, at the end.

        Each target queue is declared right before, and the messages go without the
        mandatory flag, which slows the broker's publishing: a queue that exists at the
        declare takes the batch, unless someone deletes it in the meantime, which takes
        the jobs already in it as well."""
        if not requests:
            return []
        now_ms = int(time.time() * 1000)
        ids = [self._new_id() for _ in requests]

        def send(wire: Wire) -> None:
            targets: dict[float, str] = {}
            heads: dict[tuple[float, int | None], bytes] = {}
            frames: list[bytes] = []
            sent: list[bytes] = []
            publish_bytes = wire.publish_bytes
            last = 0
            for job_id, request in zip(ids, requests, strict=True):
                queue = targets.get(request.delay)
                if queue is None:
                    queue = targets[request.delay] = self.topology.target(
                        wire, request.delay, fresh=True)
                head = heads.get((request.ttr, request.priority))
                if head is None:
                    head = heads[(request.ttr, request.priority)] = self._properties(
                        request.ttr, request.priority, now_ms)
                frames.append(publish_bytes(queue, request.payload, head + shortstr(job_id),
                                            False))
                if len(frames) == PUSH_CHUNK:
                    last = wire.publish(b"".join(frames), PUSH_CHUNK)
                    sent += frames
                    frames = []
            if frames:
                last = wire.publish(b"".join(frames), len(frames))
                sent += frames
            self._confirm(wire, last, sent)
        self._io(send)
        return ids

    def _confirm(self, wire: Wire, last: int, sent: Sequence[bytes]) -> None:
        """Wait for the broker's confirms of ``sent`` (each message's frames, the last
        with sequence number ``last``). What it refused is sent again, a few times; what
        it returned as unroutable (a delay queue that expired meanwhile, a queue someone
        deleted) is sent once more after its queue is declared again."""
        returned: list[Delivery] = []
        for resend in range(REFUSAL_RESENDS + 1):
            came_back, refused = wire.settle(last, self.publish_timeout)
            returned += came_back
            if not refused:
                break
            first = last - len(sent) + 1
            if resend == REFUSAL_RESENDS or not all(first <= seq <= last for seq in refused):
                raise wire.refusal(len(refused))
            logger.warning("%s: the broker refused %d message(s) (basic.nack); sending "
                           "them again", self.describe(), len(refused))
            time.sleep(REFUSAL_PAUSE * 2 ** resend)
            sent = [sent[seq - first] for seq in refused]
            last = wire.publish(b"".join(sent), len(sent))
        if not returned:
            return
        again: list[bytes] = []
        for message in returned:
            queue = message.routing_key
            logger.warning("%s: queue %s was missing; declaring it again", self.describe(),
                           queue)
            queue = self.topology.declare_again(wire, queue)
            properties = self._fit(wire, message.message_id or self._new_id(),
                                   message.priority, message.headers)
            again.append(wire.publish_bytes(queue, message.body, properties))
        if wire.confirm(wire.publish(b"".join(again), len(again)), self.publish_timeout):
            raise WireError(f"the broker could not route {len(again)} message(s) even "
                            "after declaring their queue")

    # -- consumers -------------------------------------------------------------------

    def open_consumer(self) -> Consumer:
        consumer = _AmqpConsumer(self)
        with self._consumers_lock:
            self._consumers.add(consumer)
        return consumer

    def _worker_wire(self) -> Wire:
        """A connection for a consumer: one another consumer left, or a new one."""
        while True:
            with self._consumers_lock:
                wire = self._idle.pop() if self._idle else None
            if wire is None:
                break
            if wire.dead is None and wire.usable():
                return wire
            wire.close()
        self._io(lambda producer: self.topology.ensure(producer, self.channel,
                                                       self.topology.main_arguments))
        try:
            wire = self._open(self.heartbeat, "worker")
        except WireError as exc:
            raise DriverError(f"{self.describe()}: {exc}") from exc
        # A job may run longer than the broker waits for a heartbeat.
        wire.keep_alive()
        return wire

    def _overdue(self, now: float) -> list[_AmqpConsumer]:
        """This process's consumers that may hold a job past its lease."""
        with self._consumers_lock:
            return [consumer for consumer in self._consumers if consumer.lease_end <= now]

    def _republish(self, queue: str, body: bytes, message_id: str, priority: int | None,
                   headers: dict[str, Any], delay: float, *,
                   expiration: str | None = None) -> None:
        """Publish a copy of a job to ``queue`` (the main queue after ``delay``, or the
        failed store, where ``expiration`` is keep_failed's max_age) and wait for the
        broker's confirm."""
        def send(wire: Wire) -> None:
            if queue == self.channel:
                target = self.topology.target(wire, delay)
            else:
                target = queue
                self.topology.ensure(wire, target, self.topology.plain_arguments)
            properties = self._fit(wire, message_id, priority, headers, expiration)
            frames = wire.publish_bytes(target, body, properties)
            self._confirm(wire, wire.publish(frames, 1), [frames])
        self._io(send)

    def _fit(self, wire: Wire, message_id: str, priority: int | None,
             headers: dict[str, Any], expiration: str | None = None) -> bytes:
        """The properties of a copy of a job, cut to fit ``wire``'s frame_max: a header
        frame over it makes the broker close the connection, and the job's outcome would
        never be saved. The error text is cut as much as needed; headers of others (read
        back with the job) are left out only when they alone would not fit."""
        fitted = fit_properties(message_id, priority, headers, wire.header_room, SHORTENED,
                                kept_whole, expiration)
        if fitted.cut:
            logger.info("job %s: %s cut to fit frame_max %d of %s", message_id,
                        ", ".join(fitted.cut), wire.frame_max, wire.address,
                        extra=job_extra(self.channel, message_id))
        if fitted.dropped:
            logger.warning("job %s: header(s) %s left out of its copy: they could not be "
                           "encoded or would not fit frame_max %d of %s", message_id,
                           ", ".join(repr(key) for key in fitted.dropped), wire.frame_max,
                           wire.address, extra=job_extra(self.channel, message_id))
        return fitted.properties

    # -- lookups and admin -----------------------------------------------------------

    def check_setup(self, ttr: float) -> None:
        if ttr > self.consumer_timeout:
            self._warn_ttr(ttr, "the queue's")

    def _warn_ttr(self, ttr: float, whose: str) -> None:
        logger.warning(
            "%s ttr of %gs is longer than the broker's consumer timeout of %gs "
            "(consumer_timeout in rabbitmq.conf; tell the driver with its consumer_timeout "
            "option): RabbitMQ closes the channel of a job still running then and hands it "
            "out again. Raise the broker's consumer_timeout or lower ttr.",
            whose, ttr, self.consumer_timeout)

    def _read(self, what: Callable[[Wire], T]) -> T:
        """``_io`` for a call that only reads: tried once more, on a new connection, when
        the broker closed the first with an internal error."""
        try:
            return self._io(what)
        except DriverError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, WireError) and cause.code == INTERNAL_ERROR):
                raise
            logger.warning("%s; reading once more", exc)
            time.sleep(REFUSAL_PAUSE)
            return self._io(what)

    def info(self) -> dict[JobStatus, int]:
        def count(wire: Wire) -> dict[JobStatus, int]:
            topology = self.topology
            waiting = topology.declare(wire, self.channel, topology.main_arguments)
            failed = topology.declare(wire, self.failed_queue, topology.plain_arguments)
            delayed = sum(topology.registry(wire).values())
            return {JobStatus.WAITING: waiting, JobStatus.DELAYED: delayed,
                    JobStatus.FAILED: failed, JobStatus.DONE: 0}
        return self._read(count)

    def _scan_failed(self, wire: Wire, limit: int | None,
                     wanted: str | None = None) -> tuple[list[Delivery], Delivery | None]:
        """Read the failed store without taking anything from it: the messages are held,
        then handed back. With ``wanted``, stop at that job and return it still held."""
        self.topology.ensure(wire, self.failed_queue, self.topology.plain_arguments)
        seen: list[Delivery] = []
        while limit is None or len(seen) < limit:
            delivery = wire.get(self.failed_queue)
            if delivery is None:
                break
            if wanted is not None and delivery.message_id == wanted:
                return seen, delivery
            seen.append(delivery)
        return seen, None

    def jobs(self, status: JobStatus, limit: int = 100) -> list[JobInfo]:
        if status is not JobStatus.FAILED:
            raise NotSupportedError("the amqp driver can only list failed jobs: RabbitMQ "
                                    "cannot list the messages of a queue without taking them")

        def listed(wire: Wire) -> list[JobInfo]:
            seen, _ = self._scan_failed(wire, limit)
            if seen:
                wire.requeue(seen[-1].tag, multiple=True)
            return [self._failed_info(delivery) for delivery in seen]
        return self._read(listed)

    def _failed_info(self, delivery: Delivery) -> JobInfo:
        headers = delivery.headers
        pushed = headers.get("qc-pushed")
        finished = headers.get("qc-failed-at")
        return JobInfo(
            id=delivery.message_id or "", status=JobStatus.FAILED,
            attempt=as_int(headers.get("qc-attempt")),
            priority=self.kind.our_priority(delivery.priority),
            ttr=as_int(headers.get("qc-ttr"), 60000) / 1000,
            pushed_at=pushed / 1000 if isinstance(pushed, int) else None,
            finished_at=finished / 1000 if isinstance(finished, int) else None,
            error=ErrorInfo(as_text(headers.get("qc-error-type")), as_text(headers.get("qc-error")),
                            as_text(headers.get("qc-traceback"))),
            payload=delivery.body)

    def retry(self, job_id: str, *, state: JobStatus, reset_attempts: bool = False) -> None:
        def move(wire: Wire) -> None:
            seen, found = self._scan_failed(wire, None, wanted=job_id)
            try:
                if found is None:
                    raise JobNotFoundError(f"no failed job {job_id!r} in {self.describe()} "
                                           "(only failed jobs can be looked up on AMQP)")
                headers = carried(found.headers)
                headers["qc-attempt"] = 0 if reset_attempts else as_int(
                    found.headers.get("qc-attempt"))
                properties = self._fit(wire, found.message_id or job_id, found.priority,
                                       headers)
                frames = wire.publish_bytes(self.topology.target(wire, 0), found.body,
                                            properties)
                self._confirm(wire, wire.publish(frames, 1), [frames])
                wire.ack(found.tag)
            finally:
                if seen:
                    wire.requeue(seen[-1].tag, multiple=True)
        self._io(move)

    def clear(self) -> None:
        def empty(wire: Wire) -> None:
            topology = self.topology
            topology.declare(wire, self.channel, topology.main_arguments)
            wire.purge(self.channel)
            topology.declare(wire, self.failed_queue, topology.plain_arguments)
            wire.purge(self.failed_queue)
            topology.registry(wire, purge=True)
        self._io(empty)

    def delete_queues(self) -> None:
        """Delete every queue of this channel (the jobs, the failed store, the delay
        queues and their registry). Not part of the Store API: for tests and tear-down."""
        def delete(wire: Wire) -> None:
            topology = self.topology
            topology.ensure(wire, self.registry_queue, topology.plain_arguments)
            for name in topology.registry(wire):
                wire.delete(name)
            for name in (self.channel, self.failed_queue, self.registry_queue):
                wire.delete(name)
        self._io(delete)
        self.topology.declared.clear()

    def after_fork(self) -> None:
        # The parent's sockets stay the parent's: forgotten, not closed.
        for wire in self._producers:
            wire.abandon()
        self._producers = []
        self._producers_lock = threading.Lock()
        self._local = threading.local()
        for wire in self._idle:
            wire.abandon()
        self._consumers = set()
        self._consumers_lock = threading.Lock()
        self._idle = []
        self._new_ids()

    def close(self) -> None:
        with self._consumers_lock:
            consumers = list(self._consumers)
        for consumer in consumers:
            consumer.close()
        with self._consumers_lock:
            idle, self._idle = self._idle, []
        for wire in idle:
            wire.close()
        with self._producers_lock:
            wires, self._producers = self._producers, []
        for wire in wires:
            wire.close()
        self._local = threading.local()


@documented(OPTIONS)
class AmqpQuorumDriver(AmqpDriver):
    """Quorum queues (replicated; ``x-delivery-count`` counts lost runs, up to RabbitMQ
    4.2). RabbitMQ 3.x quorum queues have no priorities."""

    name = "amqp-quorum"
    capabilities = QUORUM_CAPABILITIES
    queue_type = "quorum"
