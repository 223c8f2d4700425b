"""Where the Redis driver's channel lives: one server, the master of a Sentinel set, or
the node of a Redis Cluster that owns the channel's hash slot.

``connector(url, options, slot_key)`` reads the URL forms and options and returns a
Connector: ``client`` serves the redis-py admin calls, ``node()`` is a plain client of the
one server that holds the channel's keys (the worker's raw connection and the pipelined
script calls are taken from its pool), and ``moved()`` makes it ask again after a
failover or a slot that moved.

URL forms: ``redis://``, ``rediss://``, ``unix://`` (one server);
``redis+sentinel://[user:pass@]host:port[,host:port...]/service_name[/db]``;
``redis+cluster://[user:pass@]host:port[,host:port...]`` (``rediss+`` for TLS).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from queue_core.errors import ConfigError
from queue_core.options import (
    FLAG,
    SETTINGS,
    Kind,
    Option,
    anything,
    hosts,
    names,
    redact_url,
    seconds,
    text,
    whole,
)

logger = logging.getLogger(__name__)

SOCKET_TIMEOUT = 15.0
"""Seconds a command waits for its reply unless told otherwise: longer than the worker's
longest blocking wait (consumer.BLOCK_MAX)."""
TOPOLOGY = (
    Option("sentinels", hosts("a non-empty list of [host, port] pairs or 'host:port' "
                              "strings"), None,
           "The Sentinels of a redis:// URL's master set (a redis+sentinel:// URL lists "
           "them itself).", SETTINGS, none=True),
    Option("service_name", text(), None,
           "The name of the master set the Sentinels watch (or the path of a "
           "redis+sentinel:// URL).", none=True),
    Option("sentinel_username", text(empty=True), None, "The user name on the Sentinels.",
           none=True),
    Option("sentinel_password", text(empty=True), None, "The password on the Sentinels.",
           none=True),
    Option("cluster", FLAG, False,
           "A redis:// URL names a node of a Redis Cluster (as redis+cluster:// does)."),
)
"""Driver options read here rather than passed to redis-py."""
TOPOLOGY_OPTIONS = names(TOPOLOGY)


def _client(name: str, kind: Kind, default: Any, help: str, **more: Any) -> Option:
    return Option(name, kind, default, help, passed_on=True, **more)


CLIENT = (
    _client("db", whole(0), 0, "The database number (a redis:// URL's path gives it too)."),
    _client("username", text(empty=True), None, "The user name (ACL).", none=True),
    _client("password", text(empty=True), None, "The password.", none=True),
    _client("client_name", text(), None, "The name CLIENT LIST shows.", none=True),
    _client("socket_timeout", seconds(0, above=True), SOCKET_TIMEOUT,
            "Seconds a command may wait for its reply (None: forever).", none=True),
    _client("socket_connect_timeout", seconds(0, above=True), 5.0,
            "Seconds to wait for a connection.", none=True),
    _client("socket_keepalive", FLAG, False, "TCP keepalive on the connections.", none=True),
    _client("socket_read_size", whole(1), 65536, "Bytes read from the socket at once."),
    _client("health_check_interval", seconds(0), 0,
            "Seconds a connection may be idle before it is checked with a PING."),
    _client("retry_on_timeout", FLAG, False, "Retry a command once after a timeout."),
    _client("retry_on_error", anything("a list of exception classes"), None,
            "Errors after which a command is retried.", none=True),
    _client("max_connections", whole(1), None, "The largest size of the connection pool.",
            none=True),
    _client("protocol", whole(2, 3), 2, "The RESP protocol version."),
    _client("legacy_responses", FLAG, None, "redis-py's legacy_responses switch.", none=True),
    _client("ssl_cert_reqs", anything("'none', 'optional' or 'required'"), "required",
            "Whether the server's certificate is checked (rediss://)."),
    _client("ssl_ca_certs", text(), None, "The CA bundle (rediss://).", none=True),
    _client("ssl_certfile", text(), None, "The client certificate (rediss://).", none=True),
    _client("ssl_keyfile", text(), None, "The client key (rediss://).", none=True),
    _client("ssl_check_hostname", FLAG, True,
            "Whether the server's host name must match its certificate (rediss://)."),
    _client("ssl_include_verify_flags", anything("ssl.VerifyFlags"), None,
            "Verify flags to set (rediss://).", none=True),
    _client("ssl_exclude_verify_flags", anything("ssl.VerifyFlags"), None,
            "Verify flags to clear (rediss://).", none=True),
    _client("ssl_min_version", anything("an ssl.TLSVersion"), None,
            "The oldest TLS version accepted (rediss://).", none=True),
)
"""redis-py's options: checked by the driver, then passed on to redis-py."""
MASTER_CHECK = 1.0
"""Seconds between two checks that a Sentinel-managed connection still goes to the
master the Sentinels name."""
_DEFAULT_PORT = 6379
_SENTINEL_PORT = 26379


class Connector:
    """One server (the plain form); the Sentinel and Cluster forms override ``node``,
    ``moved`` and ``after_fork``."""

    kind = "server"

    def __init__(self, client: Any) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        return self._client

    def node(self) -> Any:
        return self.client

    def moved(self) -> None:
        """A reply said the channel is no longer served here."""

    def refresh(self) -> None:
        """Notice a new master before an admin call (see SentinelConnector)."""

    def stale(self, conn: Any) -> bool:
        """Whether ``conn`` goes to a server that no longer serves the channel although it
        still answers (see SentinelConnector)."""
        return False

    def after_fork(self) -> None:
        self._client.connection_pool.reset()

    def close(self) -> None:
        self._client.close()


class SentinelConnector(Connector):
    """A master found through Sentinel: redis-py's pool asks the sentinels for the current
    master on every new connection, and turns a READONLY reply (a demoted master) into a
    lost connection, so dropping the connection is all a failover takes."""

    kind = "sentinel"

    def __init__(self, client: Any, sentinel: Any, service: str) -> None:
        super().__init__(client)
        self._sentinel = sentinel
        self._service = service
        self._checked = 0.0
        self._master: tuple[Any, ...] | None = None

    def _current(self) -> tuple[Any, ...] | None:
        """The master the Sentinels name, asked at most every MASTER_CHECK seconds. A
        failover that leaves the old master running (SENTINEL FAILOVER, a partition) lets
        it take writes until the Sentinels get round to demoting it, and then it throws
        them away: connections must not wait for an error to move on."""
        now = time.monotonic()
        if now - self._checked >= MASTER_CHECK:
            self._checked = now
            try:
                found = tuple(self._sentinel.discover_master(self._service))
            except Exception as exc:  # no Sentinel answers: keep the master we know
                logger.debug("cannot ask the Sentinels for the master of %s: %s",
                             self._service, exc)
                return self._master
            if self._master is not None and found != self._master:
                logger.warning("the Sentinels name a new master for %s: %s:%s (was %s:%s)",
                               self._service, *found, *self._master)
                self._client.connection_pool.reset()
            self._master = found
        return self._master

    def refresh(self) -> None:
        self._current()

    def stale(self, conn: Any) -> bool:
        master = self._current()
        return master is not None and (getattr(conn, "host", None),
                                       getattr(conn, "port", None)) != master

    def moved(self) -> None:
        # Pooled connections to a demoted master must not be handed out again.
        self._client.connection_pool.reset()


class ClusterConnector(Connector):
    """A Redis Cluster, through redis-py's cluster client, built at first use: a producer
    that creates its queue while the cluster is down must not fail at start."""

    kind = "cluster"

    def __init__(self, build: Callable[[], Any], slot_key: str) -> None:
        super().__init__(None)
        self._build = build
        self._lock = threading.Lock()
        self.slot_key = slot_key

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build()
        return self._client

    def node(self) -> Any:
        cluster = self.client
        return cluster.get_redis_connection(cluster.get_node_from_key(self.slot_key))

    def moved(self) -> None:
        if self._client is None:
            return
        try:
            self._client.nodes_manager.initialize()
        except Exception as exc:  # nothing reachable now: the next call says so
            logger.debug("cannot refresh the cluster's slot map: %s", exc)

    def after_fork(self) -> None:
        if self._client is None:
            return
        for node in self._client.get_nodes():
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.reset()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def not_served_here() -> tuple[type[BaseException], ...]:
    """Replies that mean the command did not run because this server does not serve the
    channel (now): a demoted master, a slot that moved or is moving, a cluster that is
    not ready. Asking the topology again and resending is safe."""
    from redis import exceptions as e
    return (e.ReadOnlyError, e.AskError, e.TryAgainError, e.ClusterDownError)


def not_run(exc: BaseException) -> bool:
    """Whether an error reply means the command did not run and may run elsewhere or
    later: not_served_here, or a master refusing writes for want of replicas
    (``min-replicas-to-write``: NOREPLICAS)."""
    return isinstance(exc, not_served_here()) or str(exc).startswith("NOREPLICAS")


def unreachable() -> tuple[type[BaseException], ...]:
    """Errors that mean the server cannot be reached (now)."""
    from redis import exceptions as e
    return (e.ConnectionError, e.TimeoutError, e.BusyLoadingError, e.RedisClusterException,
            e.ClusterError, OSError)


def _hosts(netloc: str, default_port: int, url: str) -> list[tuple[str, int]]:
    found = []
    for part in netloc.split(","):
        host, colon, port = part.strip().rpartition(":")
        if not colon:
            host, port = port, str(default_port)
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"redis URL {redact_url(url)!r}: {part.strip()!r} is not "
                              "host:port", key="driver")
        found.append((host, int(port)))
    return found


def _split(url: str) -> tuple[str, str, list[tuple[str, int]], str]:
    """(scheme, user:password credentials or '', hosts, path) of a multi-host URL."""
    scheme, _, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    path = path.partition("?")[0]
    credentials, at, hosts = netloc.rpartition("@")
    if not hosts:
        raise ConfigError(f"redis URL {redact_url(url)!r} names no host", key="driver")
    kind = scheme.partition("+")[2]
    return (credentials if at else "", kind,
            _hosts(hosts, _SENTINEL_PORT if kind == "sentinel" else _DEFAULT_PORT, url),
            path)


def _credentials(raw: str) -> dict[str, str]:
    if not raw:
        return {}
    user, colon, password = raw.partition(":")
    found = {}
    if user:
        found["username"] = unquote(user)
    if colon:
        found["password"] = unquote(password)
    return found


def _pairs(value: Any, key: str) -> list[tuple[str, int]]:
    """``[["host", port], ...]`` or ``["host:port", ...]`` from settings."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ConfigError(f"{key} must be a non-empty list of [host, port] pairs or "
                          f"'host:port' strings, got {value!r}", key=f"driver.{key}")
    found = []
    for item in value:
        if isinstance(item, str):
            found += _hosts(item, _SENTINEL_PORT, item)
            continue
        if (isinstance(item, Sequence) and len(item) == 2 and isinstance(item[0], str)
                and item[0] and isinstance(item[1], int) and not isinstance(item[1], bool)
                and 0 < item[1] < 65536):
            found.append((item[0], item[1]))
            continue
        raise ConfigError(f"{key}: {item!r} is not a [host, port] pair", key=f"driver.{key}")
    return found


def connector(url: str, options: dict[str, Any], slot_key: str) -> Connector:
    """The Connector for ``url`` and the driver's ``options`` (redis-py's, plus
    TOPOLOGY_OPTIONS, which are taken out)."""
    import redis

    topology = {key: options.pop(key) for key in TOPOLOGY_OPTIONS if key in options}
    scheme = url.partition("://")[0].lower()
    kind = scheme.partition("+")[2]
    if kind not in ("", "sentinel", "cluster"):
        raise ConfigError(f"redis URL {redact_url(url)!r}: unknown form {scheme!r} (redis://, "
                          "redis+sentinel:// or redis+cluster://)", key="driver")
    cluster = topology.pop("cluster", False)
    if not isinstance(cluster, bool):
        raise ConfigError(f"cluster must be true or false, got {cluster!r}",
                          key="driver.cluster")
    if "sentinels" in topology or "service_name" in topology:
        kind = "sentinel" if kind in ("", "sentinel") else kind
    if cluster and kind == "":
        kind = "cluster"
    if cluster and kind == "sentinel" or kind == "cluster" and topology:
        raise ConfigError("Redis Cluster and Sentinel options cannot be combined: a cluster "
                          "fails over by itself", key="driver.cluster")
    if kind == "sentinel":
        return _sentinel(url, scheme, options, topology)
    if kind == "cluster":
        return _cluster(url, scheme, options, slot_key)
    leftover = sorted(key for key in topology if key != "cluster")
    if leftover:
        raise ConfigError(f"{leftover[0]} applies to Sentinel only (redis+sentinel://)",
                          key=f"driver.{leftover[0]}")
    try:
        return Connector(redis.Redis.from_url(url, **options))
    except ValueError as exc:
        raise ConfigError(f"redis URL {redact_url(url)!r}: {exc}", key="driver") from None


def _db(raw: str, url: str) -> int:
    if not raw.isdigit():
        raise ConfigError(f"redis URL {redact_url(url)!r}: database {raw!r} is not a "
                          "number", key="driver")
    return int(raw)


def _sentinel(url: str, scheme: str, options: dict[str, Any],
              topology: dict[str, Any]) -> Connector:
    from redis import sentinel as module

    make: Any = module.Sentinel  # redis-py's Sentinel has no type hints
    if scheme.endswith("+sentinel"):
        credentials, _, sentinels, path = _split(url)
        options = {**_credentials(credentials), **options}
        name, _, db = path.strip("/").partition("/")
        if "sentinels" in topology:
            raise ConfigError("sentinels are named twice: in the redis+sentinel:// URL and "
                              "in the sentinels option", key="driver.sentinels")
        if db:
            options.setdefault("db", _db(db, url))
        if name:
            if "service_name" in topology and topology["service_name"] != name:
                raise ConfigError(f"the URL names service {name!r} and service_name "
                                  f"{topology['service_name']!r}", key="driver.service_name")
            topology.setdefault("service_name", name)
        ssl = scheme.startswith("rediss")
    else:
        if "sentinels" not in topology:
            raise ConfigError("service_name needs sentinels (a list of [host, port])",
                              key="driver.sentinels")
        sentinels = _pairs(topology["sentinels"], "sentinels")
        if url:
            parts = urlsplit(url)
            options = {**_credentials(parts.netloc.rpartition("@")[0]
                                      if "@" in parts.netloc else ""), **options}
            db = parts.path.strip("/")
            if db:
                options.setdefault("db", _db(db, url))
        ssl = scheme.startswith("rediss")
    service: Any = topology.get("service_name")
    if not isinstance(service, str) or not service:
        raise ConfigError("Sentinel needs the name of the master set: "
                          "redis+sentinel://host:port/<service_name> or service_name=",
                          key="driver.service_name")
    own: dict[str, Any] = {key: options[key] for key in ("socket_timeout", "socket_connect_timeout",
                                          "socket_keepalive") if key in options}
    for key, name in (("sentinel_username", "username"), ("sentinel_password", "password")):
        value = topology.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise ConfigError(f"{key} must be a string", key=f"driver.{key}")
            own[name] = value
    if ssl:
        options["ssl"] = True
    sentinel = _newest_master_sentinel(make)(sentinels, sentinel_kwargs=own, **options)
    return SentinelConnector(sentinel.master_for(service), sentinel, service)


def _newest_master_sentinel(base: Any) -> Any:
    """redis-py's Sentinel, asking every Sentinel and believing the newest answer.

    redis-py takes the first Sentinel that names a master. Right after a failover a
    Sentinel that has not heard of it yet still names the old master, and if that master
    is back (restarted empty, not yet made a replica) it passes every check: the worker
    would move to an empty server and the queue would look drained. The configuration
    epoch grows with every failover, so the highest one is the current master."""

    class NewestMaster(base):  # type: ignore[misc]
        def discover_master(self, service_name: str) -> tuple[str, int]:
            best: tuple[int, str, int] | None = None
            errors = []
            for sentinel in self.sentinels:
                try:
                    state = sentinel.sentinel_masters().get(service_name)
                except Exception as exc:  # one Sentinel down or slow: ask the others
                    errors.append(f"{sentinel}: {exc!r}")
                    continue
                if state and self.check_master_state(state, service_name):
                    epoch = state.get("config-epoch", 0)
                    if best is None or epoch > best[0]:
                        best = (epoch, state["ip"], state["port"])
            if best is None:
                from redis.sentinel import MasterNotFoundError
                raise MasterNotFoundError(f"No master found for {service_name!r}"
                                          + (f": {', '.join(errors)}" if errors else ""))
            return best[1], best[2]

    return NewestMaster


def _cluster(url: str, scheme: str, options: dict[str, Any], slot_key: str) -> Connector:
    from redis import cluster as module

    node: Any = module.ClusterNode  # no type hints

    if "db" in options:
        raise ConfigError("Redis Cluster has no databases (no SELECT): remove the db option",
                          key="driver.db")
    if scheme.endswith("+cluster"):
        credentials, _, nodes, path = _split(url)
        options = {**_credentials(credentials), **options}
    else:
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
        options = {**_credentials(credentials), **options}
        nodes = _hosts(parts.netloc.rpartition("@")[2], _DEFAULT_PORT, url)
        path = parts.path
    if path.strip("/"):
        raise ConfigError(f"redis URL {redact_url(url)!r} names database "
                          f"{path.strip('/')!r}, but Redis Cluster has no databases (no "
                          "SELECT): leave the path empty", key="driver")
    if scheme.startswith("rediss"):
        options["ssl"] = True
    def build() -> Any:
        return module.RedisCluster(startup_nodes=[node(host, port) for host, port in nodes],
                                   **options)
    return ClusterConnector(build, slot_key)
