"""The AMQP driver for RabbitMQ: durable queues, persistent messages, publisher confirms,
and the same retry semantics as every other driver.

Topology, for channel ``C`` (see docs/drivers/amqp.md):

- ``C``: the jobs, durable; a classic queue with ``x-max-priority`` (ours are mapped so
  that lower numbers run first), or a quorum queue (``queue_type="quorum"``).
- ``C.delay.<ms>``: one queue per delay, created on demand: ``x-message-ttl`` is the
  delay, expired messages dead-letter back to ``C``, and the queue expires when unused.
- ``C.failed``: jobs that failed for good, the reason in their headers.
- ``C.delays``: the names of the delay queues, so that ``clear`` and ``info`` find them
  without the management plugin.

A job's attempts so far, its ttr and first push time travel in its headers. A retry
publishes a copy with one more attempt (to a delay queue, or straight back) and acks the
original once the broker confirmed the copy. A run whose worker died comes back from the
broker flagged redelivered (classic) or with ``x-delivery-count`` (quorum); on a classic
queue the driver first publishes a copy that counts that lost run, since the flag alone
cannot count. The broker hands back the jobs a dead worker had only prefetched marked the
same way, so a job's first loss is unproven: counted, but it never ends the job (see
``_Runs.lose``). A job that kills its worker still ends FAILED: after ``attempts`` runs, or
two with ``attempts=1``.

The store (``AmqpDriver``) pushes and answers admin calls on a connection per thread,
waiting for publisher confirms; each worker's consumer (``_AmqpConsumer``) takes jobs on
a connection of its own and publishes its copies through the store.

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
from dataclasses import replace
from itertools import count
from typing import Any, NamedTuple, TypeVar, cast
from urllib.parse import urlencode, urlsplit, urlunsplit

from queue_core.consumer import Consumer, Settlement
from queue_core.errors import (
    ConfigError,
    DriverError,
    InvalidArgumentError,
    JobNotFoundError,
    NotSupportedError,
    QueueError,
)
from queue_core.model import Capabilities, ErrorInfo, JobInfo, JobStatus, Message, PushRequest
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

from .amqp_wire import (
    Delivery,
    ProbeError,
    Wire,
    WireError,
    address,
    encode_properties,
    fit_properties,
    properties_head,
    shortstr,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

LOWEST_PRIORITY = 5
"""Our priorities 0..5 are AMQP priorities 5..0 (``x-max-priority: 5``), so 0 runs first;
a job pushed without one runs as 5, the lowest. RabbitMQ keeps a sub-queue per level and
advises at most 5: on the benchmark machine ``x-max-priority: 10`` cost up to a fifth of
the confirmed push rate and up to a third of the delivery rate against 3."""
DELAY_REFRESH = 60.0
"""Seconds after which a delay queue is declared again before use: a declare renews its
``x-expires``, a publish does not."""
DELAY_EXPIRY_MARGIN = 2 * DELAY_REFRESH
MAX_DELAY = 49 * 86400.0
"""RabbitMQ's TTLs and expiries are unsigned 32-bit milliseconds (49.7 days)."""
PUSH_CHUNK = 1000
TRACEBACK_LIMIT = 32768
"""Bytes of UTF-8 of a traceback kept in the failed store (its end); less when the
connection's frame_max leaves less room (see ``_fit``)."""
ERROR_LIMIT = 8192
"""Bytes of an error message kept in the failed store (its start)."""
ERROR_TYPE_LIMIT = 1000
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
_OUR_HEADERS = ("qc-attempt", "qc-lost", "qc-unproven", "qc-losses", "qc-error-type",
                "qc-error", "qc-traceback", "qc-failed-at")
_SHORTENED = (("qc-traceback", True, TRACEBACK_LIMIT), ("qc-error", False, ERROR_LIMIT),
              ("qc-error-type", False, ERROR_TYPE_LIMIT))
"""The headers that are cut, to these bytes and further when a copy's headers would not
fit in a frame (a traceback keeps its end, where the error is)."""
_COUNTS = frozenset({"qc-ttr", "qc-pushed", "qc-attempt", "qc-lost", "qc-unproven",
                     "qc-losses", "qc-failed-at"})


def _kept_whole(key: str, value: Any) -> bool:
    """Headers never left out of a copy to make it fit: the numbers the driver reads back."""
    return key in _COUNTS and type(value) is int

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


def delay_ms(delay: float) -> int:
    """A delay in milliseconds, rounded up to three significant digits (never earlier
    than asked, at most 1% later), so that jittered backoffs share delay queues."""
    ms = max(1, math.ceil(delay * 1000 - 1e-6))
    if ms < 1000:
        return ms
    step = int(10 ** (len(str(ms)) - 3))
    return -(-ms // step) * step


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return int(value)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _carried(headers: dict[str, Any]) -> dict[str, Any]:
    """The headers a copy keeps: the job's own, without the broker's (``x-``) and without
    what belongs to one attempt."""
    return {key: value for key, value in headers.items()
            if not key.startswith("x-") and key not in _OUR_HEADERS}


_HOST_FORM = "'host' or 'host:port' (an IPv6 address in brackets: '[::1]:5672')"


def _host(entry: Any, what: str, key: str) -> str:
    """One host of a list, checked: ``host`` or ``host:port``."""
    if not isinstance(entry, str):
        raise ConfigError(f"{what} must be a string, {_HOST_FORM}, got {entry!r}", key=key)
    problem = ""
    if not entry:
        problem = "is empty"
    elif any(char in entry for char in "/@?#,") or any(char.isspace() for char in entry):
        problem = "has a character a host cannot have"
    else:
        try:
            parts = urlsplit(f"//{entry}")
            port = parts.port
        except ValueError as exc:
            problem = f"is not valid ({exc})"
        else:
            if not parts.hostname:
                problem = "names no host"
            elif entry.endswith(":"):
                problem = "has no port number after ':'"
            elif port == 0:
                problem = "has port 0 (a port is a number from 1 to 65535)"
    if problem:
        raise ConfigError(f"{what} {entry!r} {problem}: write {_HOST_FORM}", key=key)
    return entry


def _brokers(pika: Any, url: str, hosts: Sequence[str] | None) -> list[Any]:
    """pika's connection parameters for each host of the driver, in order. The hosts are
    the URL's (``amqp://user:pass@h1:5672,h2:5672/vhost``) or ``hosts`` (with a URL that
    names none); the URL's credentials, virtual host and options apply to every one."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"amqp URL {shown!r}: {exc}", key="driver") from None
    userinfo, at, listed = parts.netloc.rpartition("@")
    if hosts is None:
        if "," not in listed:
            try:
                return [pika.URLParameters(url)]
            except (ValueError, SyntaxError) as exc:
                raise ConfigError(f"amqp URL {shown!r}: {exc}", key="driver") from None
        key = "driver"
        entries = [_host(entry, f"amqp URL {shown!r}: host", key)
                   for entry in listed.split(",")]
    else:
        key = "driver.hosts"
        if listed:
            raise ConfigError(f"hosts and a URL that names a host ({shown!r}) do not go "
                              "together: list every host in one of them (a URL for hosts "
                              "leaves the host out: amqp://user:password@/vhost)", key=key)
        if isinstance(hosts, str) or not isinstance(hosts, Sequence) or not hosts:
            raise ConfigError(f"hosts must be a non-empty list of {_HOST_FORM}, got "
                              f"{hosts!r}", key=key)
        entries = [_host(entry, f"hosts[{index}]", key) for index, entry in enumerate(hosts)]
    brokers: list[Any] = []
    seen: set[str] = set()
    for entry in entries:
        netloc = f"{userinfo}{at}{entry}"
        one = urlunsplit(parts._replace(netloc=netloc))
        try:
            params = pika.URLParameters(one)
        except (ValueError, SyntaxError) as exc:
            raise ConfigError(f"amqp URL {shown!r}, host {entry!r}: {exc}", key=key) from None
        where = address(params)
        if where in seen:
            listing = shown if hosts is None else hosts
            raise ConfigError(f"host {where} is listed twice in {listing!r}", key=key)
        seen.add(where)
        brokers.append(params)
    return brokers


class _Runs(NamedTuple):
    """What a message's headers, and the broker's redelivery marks, say of its runs."""

    counted: int
    """Runs counted so far (``qc-attempt``)."""
    lost: bool
    """The last of them was lost with its worker (``qc-lost``)..."""
    unproven: bool
    """... and may only have been prefetched, never started (``qc-unproven``)."""
    losses: int
    """Lost runs in the job's life, retries included (``qc-losses``)."""

    @classmethod
    def stored(cls, headers: dict[str, Any]) -> _Runs:
        return cls(_int(headers.get("qc-attempt")), bool(headers.get("qc-lost")),
                   bool(headers.get("qc-unproven")), _int(headers.get("qc-losses")))

    def lose(self, runs: int) -> _Runs:
        """These runs and ``runs`` more, lost. A consumer that dies hands back the job it
        was running and the ones it had only prefetched, all marked alike, so a job's
        first loss is unproven: counted, but it never ends the job (the core runs it
        again). A job lost before is the likelier culprit, and a job that kills every
        worker must end: later losses count in full."""
        return _Runs(self.counted + runs, True, self.losses == 0 and runs == 1,
                     self.losses + runs)

    def headers(self, delivery: Delivery) -> dict[str, Any]:
        """The headers of a copy of ``delivery`` that carries these runs."""
        found = {"qc-attempt": self.counted, "qc-lost": int(self.lost),
                 "qc-unproven": int(self.unproven), "qc-losses": self.losses}
        return {**_carried(delivery.headers),
                **{key: value for key, value in found.items() if value}}


def _copy_id(delivery: Delivery) -> str:
    return delivery.message_id or f"amqp-{delivery.tag}"


class _Handle:
    __slots__ = ("wire", "delivery", "deadline", "attempt", "losses")

    def __init__(self, wire: Wire, delivery: Delivery, deadline: float, attempt: int,
                 losses: int) -> None:
        self.wire = wire
        self.delivery = delivery
        self.deadline = deadline
        self.attempt = attempt
        self.losses = losses

    def copy_headers(self, attempt: int) -> dict[str, Any]:
        """The headers of a copy of this job that has run ``attempt`` times."""
        headers = _carried(self.delivery.headers)
        headers["qc-attempt"] = attempt
        if self.losses:
            headers["qc-losses"] = self.losses
        return headers


CLASSIC_CAPABILITIES = Capabilities(
    delay=True, priority=True, priority_range=(0, LOWEST_PRIORITY), ttr_lease=True,
    lease_by_connection=True, retry=True, attempt_count=True, status=False,
    failed_store=True, last_error=False, keep_completed=False, manual_retry=True,
    remove=False, clear=True, info=True,
    listing=frozenset({JobStatus.FAILED}), reset_attempts=True, bulk_push=True, max_delay=MAX_DELAY,
    uncounted=frozenset({JobStatus.RESERVED}))
QUORUM_CAPABILITIES = replace(CLASSIC_CAPABILITIES, priority=False, priority_range=(0, 0))


class ClassicQueues:
    """What is particular to classic queues: priorities (``x-max-priority``), and a
    redelivery that the broker only flags."""

    name = "classic"
    driver_name = "amqp"
    capabilities = CLASSIC_CAPABILITIES
    drains_before_cancel = False
    """A quorum queue counts a delivery for what is on its way to a cancelled consumer."""

    def base_arguments(self) -> dict[str, Any]:
        # The classic queue format of RabbitMQ 3.10+ (the only one from 4.0): measured on
        # the benchmark machine, a priority queue in it took confirmed batches and
        # delivered about a quarter faster than in version 1.
        return {"x-queue-version": 2}

    def job_arguments(self) -> dict[str, Any]:
        return {**self.base_arguments(), "x-max-priority": LOWEST_PRIORITY}

    def delay_arguments(self, channel: str, ms: int) -> dict[str, Any]:
        """A delay queue's: its messages dead-letter back to ``channel`` after ``ms``."""
        return {**self.base_arguments(), "x-message-ttl": ms, "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": channel,
                "x-expires": ms + int(DELAY_EXPIRY_MARGIN * 1000)}

    def amqp_priority(self, priority: int | None) -> int | None:
        return None if priority is None or priority == LOWEST_PRIORITY else (
            LOWEST_PRIORITY - priority)

    def our_priority(self, value: int | None) -> int | None:
        return LOWEST_PRIORITY - min(value or 0, LOWEST_PRIORITY)

    def redeliveries(self, headers: dict[str, Any]) -> int | None:
        """Lost runs the broker counted for this copy, or None when it cannot count them
        (a classic queue only flags a redelivery)."""
        return None


class QuorumQueues(ClassicQueues):
    """Quorum queues: replicated, no priorities (RabbitMQ 3.x), ``x-delivery-count``."""

    name = "quorum"
    driver_name = "amqp-quorum"
    capabilities = QUORUM_CAPABILITIES
    drains_before_cancel = True

    def base_arguments(self) -> dict[str, Any]:
        return {"x-queue-type": "quorum"}

    def job_arguments(self) -> dict[str, Any]:
        return self.base_arguments()

    def delay_arguments(self, channel: str, ms: int) -> dict[str, Any]:
        # At-least-once dead-lettering: a message leaves the delay queue only once the
        # main queue has it.
        return {**super().delay_arguments(channel, ms),
                "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}

    def amqp_priority(self, priority: int | None) -> int | None:
        return None

    def our_priority(self, value: int | None) -> int | None:
        return None

    def redeliveries(self, headers: dict[str, Any]) -> int | None:
        # RabbitMQ 4.3 stopped counting a return of a dead consumer's messages (it counts
        # rejects only); a redelivery it did not count is counted by a copy, as on a
        # classic queue.
        return _int(headers.get("x-delivery-count")) or None


QUEUE_TYPES: dict[str, ClassicQueues] = {"classic": ClassicQueues(), "quorum": QuorumQueues()}


@documented(OPTIONS)
class AmqpDriver(Store):
    """Jobs in RabbitMQ queues (see the module docstring for the topology).

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
        self.brokers: list[Any] = _brokers(pika, url, hosts)
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
        self.failed_queue = f"{channel}.failed"
        self.registry_queue = f"{channel}.delays"
        self._plain_arguments = self.kind.base_arguments()
        self._main_arguments = self.kind.job_arguments()
        self._local = threading.local()
        self._producers: list[Wire] = []
        self._producers_lock = threading.Lock()
        self._declared: dict[str, float] = {}
        self._mismatched: set[str] = set()
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

    # -- topology --------------------------------------------------------------------

    def _declare(self, wire: Wire, queue: str, arguments: dict[str, Any]) -> int:
        """Declare a queue; its count of ready messages. A queue that exists with other
        arguments (made by hand, or by another version) is used as it is."""
        try:
            return wire.declare(queue, arguments)[0]
        except ProbeError as exc:
            if exc.code != 406:
                raise
            reason = str(exc)
        count = wire.declare(queue, {}, passive=True)[0]
        if queue not in self._mismatched:
            self._mismatched.add(queue)
            logger.warning("%s: using queue %s as it is: %s", self.describe(), queue, reason)
        return count

    def _ensure(self, wire: Wire, queue: str, arguments: dict[str, Any]) -> None:
        if queue not in self._declared:
            self._declare(wire, queue, arguments)
            self._declared[queue] = time.monotonic()

    def _target(self, wire: Wire, delay: float, fresh: bool = False) -> str:
        """The queue a job waiting ``delay`` seconds goes to, declared (and listed in the
        registry) when this process has not done so lately, or now with ``fresh``."""
        if delay <= 0:
            if fresh:
                self._declare(wire, self.channel, self._main_arguments)
                self._declared[self.channel] = time.monotonic()
            else:
                self._ensure(wire, self.channel, self._main_arguments)
            return self.channel
        ms = delay_ms(delay)
        name = f"{self.channel}.delay.{ms}"
        now = time.monotonic()
        last = self._declared.get(name)
        if fresh or last is None or now - last >= DELAY_REFRESH:
            self._ensure(wire, self.channel, self._main_arguments)
            self._declare(wire, name, self.kind.delay_arguments(self.channel, ms))
            self._declared[name] = now
            # Listed again whenever it may have expired since our last declare, since an
            # expired queue's record is pruned (a record alone never keeps a queue).
            if last is None or now - last >= ms / 1000 + DELAY_EXPIRY_MARGIN:
                self._ensure(wire, self.registry_queue, self._plain_arguments)
                frames = wire.publish_bytes(self.registry_queue, name.encode(),
                                            encode_properties(name, None, {}))
                wire.confirm(wire.publish(frames, 1), self.publish_timeout)
        return name

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
            frames = wire.publish_bytes(self._target(wire, delay), payload, properties)
            self._confirm(wire, wire.publish(frames, 1))
        self._io(send)
        return job_id

    def push_many(self, requests: Sequence[PushRequest]) -> list[str]:
        """Messages go out in chunks as they are encoded, so that the broker stores one
        chunk while the next is being built; the confirms are waited for once, at the end.

        Each target queue is declared right before, and the messages go without the
        mandatory flag, which costs the broker a fifth of its publish rate (measured): a
        queue that exists at the declare takes the batch, unless someone deletes it in the
        meantime, which takes the jobs already in it as well."""
        if not requests:
            return []
        now_ms = int(time.time() * 1000)
        ids = [self._new_id() for _ in requests]

        def send(wire: Wire) -> None:
            targets: dict[float, str] = {}
            heads: dict[tuple[float, int | None], bytes] = {}
            frames: list[bytes] = []
            publish_bytes = wire.publish_bytes
            last = 0
            for job_id, request in zip(ids, requests, strict=True):
                queue = targets.get(request.delay)
                if queue is None:
                    queue = targets[request.delay] = self._target(wire, request.delay,
                                                                  fresh=True)
                head = heads.get((request.ttr, request.priority))
                if head is None:
                    head = heads[(request.ttr, request.priority)] = self._properties(
                        request.ttr, request.priority, now_ms)
                frames.append(publish_bytes(queue, request.payload, head + shortstr(job_id),
                                            False))
                if len(frames) == PUSH_CHUNK:
                    last = wire.publish(b"".join(frames), PUSH_CHUNK)
                    frames = []
            if frames:
                last = wire.publish(b"".join(frames), len(frames))
            self._confirm(wire, last)
        self._io(send)
        return ids

    def _confirm(self, wire: Wire, last: int) -> None:
        """Wait for the broker's confirms up to ``last``; what it returned as unroutable
        (a delay queue that expired meanwhile, a queue someone deleted) is sent once more
        after its queue is declared again."""
        returned = wire.confirm(last, self.publish_timeout)
        if not returned:
            return
        again: list[bytes] = []
        for message in returned:
            queue = message.routing_key
            logger.warning("%s: queue %s was missing; declaring it again", self.describe(),
                           queue)
            self._declared.pop(queue, None)
            self._declared.pop(self.channel, None)
            if queue.startswith(f"{self.channel}.delay."):
                queue = self._target(wire, int(queue.rsplit(".", 1)[1]) / 1000)
            elif queue == self.channel:
                self._ensure(wire, queue, self._main_arguments)
            else:
                self._ensure(wire, queue, self._plain_arguments)
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
        self._io(lambda producer: self._ensure(producer, self.channel, self._main_arguments))
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
                   headers: dict[str, Any], delay: float) -> None:
        """Publish a copy of a job to ``queue`` (the main queue after ``delay``, or the
        failed store) and wait for the broker's confirm."""
        def send(wire: Wire) -> None:
            if queue == self.channel:
                target = self._target(wire, delay)
            else:
                target = queue
                self._ensure(wire, target, self._plain_arguments)
            properties = self._fit(wire, message_id, priority, headers)
            self._confirm(wire, wire.publish(wire.publish_bytes(target, body, properties), 1))
        self._io(send)

    def _fit(self, wire: Wire, message_id: str, priority: int | None,
             headers: dict[str, Any]) -> bytes:
        """The properties of a copy of a job, cut to fit ``wire``'s frame_max: a header
        frame over it makes the broker close the connection, and the job's outcome would
        never be saved. The error text is cut as much as needed; headers of others (read
        back with the job) are left out only when they alone would not fit."""
        fitted = fit_properties(message_id, priority, headers, wire.header_room, _SHORTENED,
                                _kept_whole)
        if fitted.cut:
            logger.info("job %s: %s cut to fit frame_max %d of %s", message_id,
                        ", ".join(fitted.cut), wire.frame_max, wire.address)
        if fitted.dropped:
            logger.warning("job %s: header(s) %s left out of its copy: they could not be "
                           "encoded or would not fit frame_max %d of %s", message_id,
                           ", ".join(repr(key) for key in fitted.dropped), wire.frame_max,
                           wire.address)
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

    def _registry(self, wire: Wire, purge: bool = False) -> dict[str, int]:
        """Ready messages in each delay queue of the registry; records of queues that are
        gone, and duplicates, are dropped. With ``purge``, the queues are emptied."""
        self._ensure(wire, self.registry_queue, self._plain_arguments)
        records: list[Delivery] = []
        while True:
            record = wire.get(self.registry_queue)
            if record is None:
                break
            records.append(record)
        found: dict[str, int] = {}
        gone: set[str] = set()
        drop: set[int] = set()
        for record in records:
            name = _text(record.body)
            if name in found or name in gone or not name.startswith(f"{self.channel}.delay."):
                drop.add(record.tag)
                continue
            try:
                if purge:
                    wire.purge(name, channel=2)
                    found[name] = 0
                else:
                    found[name] = wire.declare(name, {}, passive=True)[0]
            except ProbeError:
                gone.add(name)
                drop.add(record.tag)
        for tag in drop:
            wire.ack(tag)
        kept = [record.tag for record in records if record.tag not in drop]
        if kept:
            # The broker refuses a tag that is already acked, even with ``multiple``.
            wire.requeue(kept[-1], multiple=True)
        return found

    def info(self) -> dict[JobStatus, int]:
        def count(wire: Wire) -> dict[JobStatus, int]:
            waiting = self._declare(wire, self.channel, self._main_arguments)
            failed = self._declare(wire, self.failed_queue, self._plain_arguments)
            delayed = sum(self._registry(wire).values())
            return {JobStatus.WAITING: waiting, JobStatus.DELAYED: delayed,
                    JobStatus.FAILED: failed, JobStatus.DONE: 0}
        return self._io(count)

    def _scan_failed(self, wire: Wire, limit: int | None,
                     wanted: str | None = None) -> tuple[list[Delivery], Delivery | None]:
        """Read the failed store without taking anything from it: the messages are held,
        then handed back. With ``wanted``, stop at that job and return it still held."""
        self._ensure(wire, self.failed_queue, self._plain_arguments)
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
        return self._io(listed)

    def _failed_info(self, delivery: Delivery) -> JobInfo:
        headers = delivery.headers
        pushed = headers.get("qc-pushed")
        finished = headers.get("qc-failed-at")
        return JobInfo(
            id=delivery.message_id or "", status=JobStatus.FAILED,
            attempt=_int(headers.get("qc-attempt")),
            priority=self.kind.our_priority(delivery.priority),
            ttr=_int(headers.get("qc-ttr"), 60000) / 1000,
            pushed_at=pushed / 1000 if isinstance(pushed, int) else None,
            finished_at=finished / 1000 if isinstance(finished, int) else None,
            error=ErrorInfo(_text(headers.get("qc-error-type")), _text(headers.get("qc-error")),
                            _text(headers.get("qc-traceback"))),
            payload=delivery.body)

    def retry(self, job_id: str, *, state: JobStatus, reset_attempts: bool = False) -> None:
        def move(wire: Wire) -> None:
            seen, found = self._scan_failed(wire, None, wanted=job_id)
            try:
                if found is None:
                    raise JobNotFoundError(f"no failed job {job_id!r} in {self.describe()} "
                                           "(only failed jobs can be looked up on AMQP)")
                headers = _carried(found.headers)
                headers["qc-attempt"] = 0 if reset_attempts else _int(
                    found.headers.get("qc-attempt"))
                properties = self._fit(wire, found.message_id or job_id, found.priority,
                                       headers)
                queue = self._target(wire, 0)
                self._confirm(wire, wire.publish(
                    wire.publish_bytes(queue, found.body, properties), 1))
                wire.ack(found.tag)
            finally:
                if seen:
                    wire.requeue(seen[-1].tag, multiple=True)
        self._io(move)

    def clear(self) -> None:
        def empty(wire: Wire) -> None:
            self._declare(wire, self.channel, self._main_arguments)
            wire.purge(self.channel)
            self._declare(wire, self.failed_queue, self._plain_arguments)
            wire.purge(self.failed_queue)
            self._registry(wire, purge=True)
        self._io(empty)

    def delete_queues(self) -> None:
        """Delete every queue of this channel (the jobs, the failed store, the delay
        queues and their registry). Not part of the Store API: for tests and tear-down."""
        def delete(wire: Wire) -> None:
            self._ensure(wire, self.registry_queue, self._plain_arguments)
            for name in self._registry(wire):
                wire.delete(name)
            for name in (self.channel, self.failed_queue, self.registry_queue):
                wire.delete(name)
        self._io(delete)
        self._declared.clear()

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


class _AmqpConsumer(Consumer):
    """One worker's own connection: a consumer whose prefetch follows the core's ``max_n``
    (``basic.get`` for ``run``, which holds nothing ahead), the deliveries it holds, and
    their settlement: a copy published through the store, which waits for the broker's
    confirm, then an ack here."""

    # An ack costs no round trip, and one held back to go out with the next fetch would
    # make a worker killed meanwhile run a finished job again.
    folds_settlements = False

    def __init__(self, store: AmqpDriver) -> None:
        self.store = store
        # The driver's prefetch option caps it for each store.
        self.prefetch = store.prefetch  # type: ignore[misc]
        self._wire: Wire | None = None
        self._consuming = False
        self._qos = 0
        """The prefetch of the consumer: the channel's for consumers started next."""
        self._held: dict[int, _Handle] = {}
        self.lease_end = math.inf
        """No held job's lease ends before this (monotonic seconds): a bound that
        ``_expire_held`` makes exact."""

    # -- connection ------------------------------------------------------------------

    def _connected(self) -> Wire:
        wire = self._wire
        if wire is None:
            wire = self.store._worker_wire()
            self._wire = wire
            self._consuming = False
            self._qos = 0
            self._held.clear()
        return wire

    def _drop(self) -> None:
        wire, self._wire = self._wire, None
        self._consuming = False
        self._held.clear()
        if wire is not None:
            wire.close()

    def _on_wire(self, what: Callable[[Wire], T]) -> T:
        wire = self._connected()
        try:
            return what(wire)
        except WireError as exc:
            raise self._lost(exc) from exc

    def _lost(self, exc: WireError) -> DriverError:
        wire = self._wire
        error = self.store._error(wire, exc)
        if wire is not None:
            self.store._lost(wire)
        self._drop()
        return error

    # -- fetching --------------------------------------------------------------------

    def fetch(self, max_n: int, timeout: float,
              settle: Sequence[Settlement] = ()) -> list[Message]:
        self.settle(settle)
        now = time.monotonic()
        # A worker vanished without a word (or a caller went on without an outcome):
        # what it holds comes back when its lease ends, as on other drivers. Its
        # connection would hand it back only once it closes.
        for consumer in self.store._overdue(now):
            consumer._expire_held(now)
        taken: list[Message] = []
        if not self._consuming and timeout <= 0:
            # ``run``: take one ready job, hold nothing else.
            while not taken:
                delivery = self._on_wire(lambda wire: wire.get(self.store.channel))
                if delivery is None:
                    break
                self._take(delivery, taken)
            return taken
        wire = self._connected()
        deadline = now + timeout
        try:
            self._prefetch(wire, max_n)
            while not taken:
                delivery = wire.next_delivery(max(0.0, deadline - time.monotonic()))
                if delivery is None:
                    break
                self._take(delivery, taken)
            # Then what has come already, up to max_n, stopping at a lost run, which is
            # counted by a copy first (the next fetch does it).
            while (len(taken) < max_n and wire.deliveries
                   and self._counted(wire.deliveries[0]) is not None):
                self._take(wire.deliveries.popleft(), taken)
        except WireError as exc:
            raise self._lost(exc) from exc
        return taken

    def _prefetch(self, wire: Wire, max_n: int) -> None:
        """Consume with a prefetch of ``max_n``, the core's count (up to ``prefetch``).
        A prefetch is set per consumer (RabbitMQ 4.3 refuses a channel-wide one), so a new
        one takes a new consumer, which costs three round trips, and on a quorum queue a
        wait (``_cancel``). It changes only when the count asked for is under half or over
        twice the one in force, not at every small move of the core's running average."""
        want = max(1, min(max_n, self.prefetch))
        current = self._qos
        if self._consuming and (want * 2 < current or want > current * 2):
            self._cancel(wire)
        if not self._consuming:
            if want != current:
                wire.qos(want)
                self._qos = want
            wire.consume(self.store.channel)
            self._consuming = True

    def _cancel(self, wire: Wire) -> None:
        """Stop the consumer; what it was sent stays in the buffer."""
        if self.store.kind.drains_before_cancel:
            # A quorum queue takes back what is on its way to a consumer being cancelled
            # and counts a delivery, which would count as a lost run: first let the broker
            # send all it may (the prefetch is used up, or nothing came for a while).
            while (len(wire.deliveries) + len(self._held) < self._qos
                   and wire.poll(0.05)):
                pass
        wire.cancel()
        self._consuming = False

    def _take(self, delivery: Delivery, taken: list[Message]) -> None:
        message = self._accept(delivery)
        if message is not None:
            taken.append(message)

    def _accept(self, delivery: Delivery) -> Message | None:
        """The Message for a delivery, or None when the delivery was a lost run that had
        to be counted first (classic queues)."""
        runs = self._counted(delivery)
        if runs is None:
            self._charge(delivery, _Runs.stored(delivery.headers).lose(1),
                         "its worker was lost")
            return None
        wire = self._wire
        assert wire is not None
        store = self.store
        headers = delivery.headers
        ttr = _int(headers.get("qc-ttr"), 60000) / 1000
        if ttr > store.consumer_timeout and ttr not in store._warned_ttrs:
            store._warned_ttrs.add(ttr)
            store._warn_ttr(ttr, "a job's")
        pushed = headers.get("qc-pushed")
        attempt = runs.counted + 1
        handle = _Handle(wire, delivery, time.monotonic() + ttr + store.lease_grace, attempt,
                         runs.losses)
        self._held[delivery.tag] = handle
        self.lease_end = min(self.lease_end, handle.deadline)
        return Message(delivery.message_id or f"amqp-{delivery.tag}", delivery.body, attempt,
                       ttr, priority=store.kind.our_priority(delivery.priority),
                       pushed_at=pushed / 1000 if isinstance(pushed, int) else None,
                       redelivered=runs.lost, may_not_have_started=runs.unproven,
                       handle=handle)

    def _counted(self, delivery: Delivery) -> _Runs | None:
        """The runs of a delivery, or None when the broker flagged a redelivery that no
        header counts yet (a classic queue): the caller counts it with a copy."""
        runs = _Runs.stored(delivery.headers)
        if delivery.redelivered:
            redeliveries = self.store.kind.redeliveries(delivery.headers)
            if redeliveries is None:
                return None
            if redeliveries > 0:
                runs = runs.lose(redeliveries)
        return runs

    def _charge(self, delivery: Delivery, runs: _Runs, why: str) -> None:
        """Publish a copy of a held delivery that counts ``runs``, then ack the
        delivery."""
        logger.info("job %s: %s; counting it as attempt %d%s", delivery.message_id, why,
                    runs.counted, " (unproven: it may only have been prefetched)"
                    if runs.unproven else "")
        store = self.store
        try:
            store._republish(store.channel, delivery.body, _copy_id(delivery),
                             delivery.priority, runs.headers(delivery), 0.0)
        except DriverError:
            # Not counted: leave it to the broker, which hands it out again.
            self._on_wire(lambda wire: wire.requeue(delivery.tag))
            raise
        self._on_wire(lambda wire: wire.ack(delivery.tag))

    def _expire_held(self, now: float) -> None:
        """A job handed out and never reported on comes back when its lease ends,
        counted as a lost run. Called by whichever consumer of the process fetches next:
        the one that holds the job may never be called again. (The dict operations on
        ``_held`` are atomic, and an ack is one locked send.)"""
        for tag, handle in list(self._held.items()):
            if handle.deadline > now or self._held.pop(tag, None) is None:
                continue
            if handle.wire is not self._wire:
                continue
            self._charge(handle.delivery, _Runs(handle.attempt, True, False, handle.losses + 1),
                         "it was reserved and not reported on within its lease")
        self.lease_end = min((handle.deadline for handle in list(self._held.values())),
                             default=math.inf)

    def begin(self, message: Message, settle: Sequence[Settlement] = ()) -> bool:
        self.settle(settle)
        handle = cast(_Handle, message.handle)
        if handle.wire is not self._wire or handle.wire.dead is not None:
            # Fetched on a connection since lost: the broker hands it out again.
            return False
        # The lease runs from the start of the run: a job fetched ahead waited first.
        handle.deadline = time.monotonic() + message.ttr + self.store.lease_grace
        return True

    # -- outcomes --------------------------------------------------------------------

    def _holding(self, message: Message) -> _Handle | None:
        """The handle of a job this worker still holds, or None (logged) when the broker
        has already taken it back: its connection was lost."""
        handle = cast(_Handle, message.handle)
        if self._held.pop(handle.delivery.tag, None) is None or handle.wire is not self._wire:
            logger.warning("job %s: the connection that held it was lost; the broker "
                           "hands it out again", message.id)
            return None
        return handle

    def _ack(self, message: Message, handle: _Handle) -> None:
        # At once, one by one: an ack held back to go out with others would make a
        # worker killed meanwhile run finished jobs again.
        try:
            handle.wire.ack(handle.delivery.tag)
        except WireError as exc:
            self.store._lost(handle.wire)
            self._drop()
            logger.warning("job %s: its outcome is saved but the ack was lost (%s); the "
                           "broker hands it out again", message.id, exc)

    def ack(self, message: Message, *, result: bytes | None = None, keep: bool = False) -> None:
        handle = self._holding(message)
        if handle is not None:
            self._ack(message, handle)

    def release(self, message: Message, *, delay: float, error: ErrorInfo | None) -> None:
        handle = self._holding(message)
        if handle is None:
            return
        store = self.store
        try:
            store._republish(store.channel, message.payload, message.id,
                             handle.delivery.priority, handle.copy_headers(message.attempt),
                             delay)
        except DriverError:
            self._held[handle.delivery.tag] = handle  # still ours: the core tries again
            raise
        self._ack(message, handle)

    def fail(self, message: Message, *, error: ErrorInfo, keep: bool = True) -> None:
        handle = self._holding(message)
        if handle is None:
            return
        if keep:
            headers = handle.copy_headers(message.attempt)
            headers.update({
                "qc-error-type": _text(error.type), "qc-error": _text(error.message),
                "qc-traceback": _text(error.traceback),
                "qc-failed-at": int(time.time() * 1000)})
            try:
                self.store._republish(self.store.failed_queue, message.payload, message.id,
                                      handle.delivery.priority, headers, 0.0)
            except DriverError:
                self._held[handle.delivery.tag] = handle
                raise
        self._ack(message, handle)

    # -- giving back and closing -----------------------------------------------------

    def give_back(self, messages: Sequence[Message]) -> None:
        """Jobs fetched and never begun go back uncounted, once the consumer stopped (so
        that the broker sends no more): as copies, since a nack or a reject would flag
        them redelivered, which counts a lost run."""
        wire = self._wire
        if wire is None:
            return
        try:
            self._stop(wire)
            for message in messages:
                handle = self._held.pop(cast(_Handle, message.handle).delivery.tag, None)
                if handle is not None and handle.wire is wire:
                    self._return(wire, handle.delivery)
            self._return_buffered(wire)
        except WireError as exc:
            raise self._lost(exc) from exc

    def _stop(self, wire: Wire) -> None:
        if self._consuming:
            self._cancel(wire)

    def _return_buffered(self, wire: Wire) -> None:
        """Give back what the broker sent and no fetch took."""
        while wire.deliveries:
            self._return(wire, wire.deliveries.popleft())

    def _return(self, wire: Wire, delivery: Delivery) -> None:
        runs = self._counted(delivery)
        if runs is None:
            self._charge(delivery, _Runs.stored(delivery.headers).lose(1),
                         "its worker was lost")
            return
        store = self.store
        store._republish(store.channel, delivery.body, _copy_id(delivery), delivery.priority,
                         runs.headers(delivery), 0.0)
        wire.ack(delivery.tag)

    def after_fork(self) -> None:
        # The parent's socket stays the parent's: forgotten, not closed.
        if self._wire is not None:
            self._wire.abandon()
        self._wire = None
        self._consuming = False
        self._held.clear()

    def close(self) -> None:
        wire = self._wire
        if wire is not None and wire.dead is None:
            try:
                self._stop(wire)
                self._return_buffered(wire)
            except (WireError, DriverError) as exc:
                logger.warning("could not give back prefetched jobs to %s: %s (the broker "
                               "hands them out again)", self.store.describe(), exc)
        if wire is not None and wire.dead is None and not self._held:
            # Nothing held: the connection can serve the next consumer.
            self._wire = None
            with self.store._consumers_lock:
                self.store._idle.append(wire)
        self._drop()
        with self.store._consumers_lock:
            self.store._consumers.discard(self)
