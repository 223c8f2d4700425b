"""Redis: the shared server on 127.0.0.1:6379, database 15, a fresh channel per test; and
``redis-cluster``, a local 3-master Redis Cluster started once per test session (on the
first test that asks for it) and stopped at exit."""

import atexit
from pathlib import Path
from typing import Any

from tests.support.drivers import LEASE_GRACE, DriverSpec

ORDER = 40
URL = "redis://127.0.0.1:6379/15"


def available() -> str | None:
    try:
        import redis
    except ImportError:
        return "redis-py is not installed (pip install -e '.[redis]')"
    try:
        redis.Redis.from_url(URL, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError as exc:
        return f"no Redis at {URL}: {exc}"
    return None


def settings(tmp: Path, channel: str) -> dict[str, Any]:
    return {"driver": {"url": URL, "lease_grace": LEASE_GRACE, "prefetch_lease": 3},
            "channel": channel}


_cluster: dict[str, Any] = {}


def cluster_url() -> str:
    """The URL of the session's cluster, started at the first call."""
    if "url" not in _cluster:
        from tests.support.redis_servers import Cluster
        cluster = Cluster()
        atexit.register(cluster.stop)
        try:
            cluster.start()
        except BaseException as exc:
            _cluster["error"] = f"cannot start a local Redis Cluster: {exc}"
            raise
        _cluster["url"] = cluster.url
    return str(_cluster["url"])


def cluster_available() -> str | None:
    problem = available()
    if problem and "redis-py" in problem:
        return problem
    from tests.support.redis_servers import missing_binaries
    problem = missing_binaries()
    if problem:
        return problem
    if "error" in _cluster:
        return str(_cluster["error"])
    try:
        cluster_url()
    except Exception:
        return str(_cluster["error"])
    return None


def cluster_settings(tmp: Path, channel: str) -> dict[str, Any]:
    return {"driver": {"url": cluster_url(), "lease_grace": LEASE_GRACE,
                       "prefetch_lease": 3, "warn_persistence": False},
            "channel": channel}


SPECS = [DriverSpec("redis", "queue_core.drivers.redis:RedisDriver", settings, available),
         DriverSpec("redis-cluster", "queue_core.drivers.redis:RedisDriver", cluster_settings,
                    cluster_available)]
