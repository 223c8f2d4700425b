"""The DB driver's options: its own, ``sqlalchemy.create_engine``'s that it passes on, and
the database clients' own query options, which stay in the URL."""

from __future__ import annotations

import re

from queue_core.options import (
    ADDRESS,
    CHANNEL,
    FLAG,
    LEASE_GRACE,
    SETTINGS,
    URL,
    Kind,
    Option,
    anything,
    mapping,
    number,
    seconds,
    text,
    whole,
)

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,59}$")


DBAPI_URL_OPTIONS = (
    # libpq (psycopg)
    "application_name", "channel_binding", "client_encoding", "connect_timeout",
    "gssencmode", "host", "hostaddr", "keepalives", "keepalives_count", "keepalives_idle",
    "keepalives_interval", "krbsrvname", "load_balance_hosts", "options", "passfile", "port",
    "require_auth", "requirepeer", "service", "ssl_max_protocol_version",
    "ssl_min_protocol_version", "sslcert", "sslcertmode", "sslcompression", "sslcrl",
    "sslcrldir", "sslkey", "sslmode", "sslnegotiation", "sslpassword", "sslrootcert",
    "sslsni", "target_session_attrs", "tcp_user_timeout",
    # PyMySQL, as SQLAlchemy's MySQL dialect reads them
    "autocommit", "binary_prefix", "charset", "client_flag", "init_command", "local_infile",
    "program_name", "read_timeout", "server_public_key", "sql_mode", "ssl_ca", "ssl_capath",
    "ssl_cert", "ssl_check_hostname", "ssl_cipher", "ssl_disabled", "ssl_key",
    "ssl_verify_cert", "ssl_verify_identity", "unix_socket", "write_timeout",
    # sqlite3, as SQLAlchemy's pysqlite dialect reads them
    "cache", "cached_statements", "check_same_thread", "immutable", "mode", "nolock",
    "timeout", "uri", "vfs",
)
"""The database clients' own query options, passed on in the URL: libpq's, PyMySQL's
and sqlite3's."""
_ENGINE_OPTIONS = (
    Option("connect_args", mapping(), None, "Keyword arguments of the DB-API connect call.",
           SETTINGS, passed_on=True, none=True),
    Option("echo", anything("true, false or 'debug'"), False, "Log every statement.",
           SETTINGS, passed_on=True),
    Option("echo_pool", anything("true, false or 'debug'"), False,
           "Log the pool's checkouts.", SETTINGS, passed_on=True),
    Option("execution_options", mapping(), None, "Execution options of every connection.",
           SETTINGS, passed_on=True, none=True),
    Option("hide_parameters", FLAG, False, "Leave statement parameters out of errors.",
           SETTINGS, passed_on=True),
    Option("isolation_level", text(), None, "The isolation level of every connection.",
           SETTINGS, passed_on=True, none=True),
    Option("logging_name", text(), None, "The engine's logger name.", SETTINGS,
           passed_on=True, none=True),
    Option("max_overflow", whole(-1), 10, "Connections beyond pool_size (-1: no limit).",
           SETTINGS, passed_on=True),
    Option("pool_pre_ping", FLAG, False,
           "Test a pooled connection before every use (without it, one unused for over a "
           "second is tested).", SETTINGS, passed_on=True),
    Option("pool_recycle", number(-1), -1,
           "Seconds after which a pooled connection is replaced (-1: never).", SETTINGS,
           passed_on=True),
    Option("pool_reset_on_return", anything("'rollback', 'commit' or None"), "rollback",
           "What a connection does when it goes back to the pool.", SETTINGS,
           passed_on=True, none=True),
    Option("pool_size", whole(0), 5, "Connections the pool keeps open.", SETTINGS,
           passed_on=True),
    Option("pool_timeout", seconds(0), 30.0,
           "Seconds to wait for a free connection of the pool.", SETTINGS, passed_on=True),
    Option("pool_use_lifo", FLAG, False, "Reuse the most recently returned connection.",
           SETTINGS, passed_on=True),
    Option("poolclass", anything("a SQLAlchemy Pool class"), None,
           "The pool class (SQLAlchemy's choice by default).", SETTINGS, passed_on=True,
           none=True),
    Option("query_cache_size", whole(0), 500, "Statements kept compiled.", SETTINGS,
           passed_on=True),
)
"""``sqlalchemy.create_engine``'s keyword options the driver passes on."""
_TABLE = Kind("str", "1 to 60 letters, digits or '_', not starting with a digit",
              lambda raw: raw, lambda value: isinstance(value, str)
              and bool(_TABLE_NAME.match(value)))
OPTIONS = (
    Option("url_or_engine", anything("a database URL or an SQLAlchemy Engine"),
           "sqlite:///queue.db",
           "The database: a URL (sqlite:///path.db, postgresql://user:pass@host/db, "
           "mysql://user:pass@host/db) or an SQLAlchemy Engine.", ADDRESS),
    CHANNEL,
    Option("table", _TABLE, "queue", "The table; several channels share it."),
    Option("create_table", FLAG, True,
           "Create the table and its indexes on first use if they are missing."),
    LEASE_GRACE,
    Option("poll_interval", seconds(0, above=True), 0.05,
           "First wait of an idle worker on SQLite and MySQL; doubles while idle."),
    Option("max_poll_interval", seconds(0, above=True), 1.0,
           "Longest such wait (PostgreSQL workers LISTEN instead of polling)."),
    *_ENGINE_OPTIONS,
    *(Option(name, text(empty=True), None,
             "The database client's own option (libpq, PyMySQL or sqlite3).", URL,
             passed_on=True) for name in DBAPI_URL_OPTIONS),
)
