"""The db driver on a Django database: the SQLAlchemy URL (and client options) built from
``settings.DATABASES[alias]``, so a queue with ``"database": "default"`` needs no URL of
its own and stores its jobs where the app's rows are."""

from __future__ import annotations

from typing import Any

from ...errors import ConfigError

DRIVERNAMES = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}
"""Django's database vendors the db driver serves, and the client it uses for each."""

DJANGO_ONLY_OPTIONS = {
    # Read by Django's backends themselves, not by the database client.
    "postgresql": ("isolation_level", "server_side_binding", "pool", "assume_role"),
    "mysql": ("isolation_level",),
}
"""SQLite's OPTIONS are left out whole: the db driver sets its own timeouts and modes."""


def connection_settings(alias: str) -> tuple[str, dict[str, Any]]:
    """``(vendor, settings_dict)`` of the Django database ``alias``; ConfigError for an
    alias ``DATABASES`` does not have."""
    from django.db import connections
    from django.utils.connection import ConnectionDoesNotExist

    if not isinstance(alias, str):
        raise ConfigError(f"database must be a DATABASES alias (a string), got {alias!r}",
                          key="database")
    try:
        wrapper = connections[alias]
    except ConnectionDoesNotExist:
        from django.conf import settings
        known = ", ".join(sorted(settings.DATABASES)) or "none"
        raise ConfigError(f"database {alias!r} is not in settings.DATABASES (aliases: "
                          f"{known})", key="database") from None
    return str(wrapper.vendor), dict(wrapper.settings_dict)


def driver_settings(alias: str) -> dict[str, Any]:
    """The db driver's settings (``{"url": ..., "connect_args": ...}``) for the Django
    database ``alias``: the same server, database, user and client options."""
    from sqlalchemy.engine import URL

    vendor, db = connection_settings(alias)
    drivername = DRIVERNAMES.get(vendor)
    if drivername is None:
        raise ConfigError(
            f"database {alias!r}: the db driver does not run on {db.get('ENGINE')!r} "
            f"({vendor}); it runs on SQLite, PostgreSQL and MySQL/MariaDB", key="database")
    name = str(db.get("NAME") or "")
    if vendor == "sqlite":
        if not name or name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
            raise ConfigError(f"database {alias!r}: an in-memory SQLite database cannot be "
                              "shared with worker processes; give NAME a file path",
                              key="database")
        return {"url": URL.create(drivername, database=name).render_as_string()}
    port = db.get("PORT")
    url = URL.create(drivername, username=db.get("USER") or None,
                     password=db.get("PASSWORD") or None, host=db.get("HOST") or None,
                     port=int(port) if port else None, database=name or None)
    return {"url": url.render_as_string(hide_password=False), **_connect_args(vendor, db)}


def _connect_args(vendor: str, db: dict[str, Any]) -> dict[str, Any]:
    """Django's ``OPTIONS`` that its backend hands to the client (``sslmode``,
    ``charset``, ...) go to the db driver's client too."""
    options = {key: value for key, value in (db.get("OPTIONS") or {}).items()
               if key not in DJANGO_ONLY_OPTIONS[vendor]}
    return {"connect_args": options} if options else {}
