"""The DB driver on SQLite (a file per test), PostgreSQL and MariaDB (the shared servers,
database ``test``, a fresh channel per test)."""

from pathlib import Path
from typing import Any

from tests.support.drivers import LEASE_GRACE, DriverSpec

ORDER = 30
POSTGRESQL_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/test"


def _reachable(url: str) -> str | None:
    try:
        import sqlalchemy
    except ImportError:
        return "SQLAlchemy is not installed (pip install -e '.[db]')"
    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means: not usable here
        return f"no database at {url}: {str(exc).splitlines()[0]}"
    return None


def _sqlite_available() -> str | None:
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        return "SQLAlchemy is not installed (pip install -e '.[db]')"
    return None


def _settings(url: str) -> Any:
    def settings(tmp: Path, channel: str) -> dict[str, Any]:
        return {"driver": {"url": url.format(tmp=tmp),
                           "lease_grace": LEASE_GRACE, "poll_interval": 0.02,
                           "max_poll_interval": 0.2},
                "channel": channel}
    return settings


SPECS = [
    DriverSpec("sqlite", "queue_core.drivers.db:DbDriver", _settings("sqlite:///{tmp}/queue.db"),
               _sqlite_available),
    DriverSpec("postgresql", "queue_core.drivers.db:DbDriver", _settings(POSTGRESQL_URL),
               lambda: _reachable(POSTGRESQL_URL)),
    DriverSpec("mysql", "queue_core.drivers.db:DbDriver", _settings(MYSQL_URL),
               lambda: _reachable(MYSQL_URL)),
]
