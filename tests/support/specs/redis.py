"""Redis: the shared server on 127.0.0.1:6379, database 15, a fresh channel per test."""

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


SPECS = [DriverSpec("redis", "drivers.redis:RedisDriver", settings, available)]
