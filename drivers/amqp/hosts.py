"""The hosts of an amqp driver: a URL's (``amqp://user:pass@h1:5672,h2:5672/vhost``) or a
list of them, checked and turned into pika's connection parameters, one per host."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from queue_core.errors import ConfigError
from queue_core.options import redact_url

from .connection import address

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


def connection_parameters(pika: Any, url: str, hosts: Sequence[str] | None) -> list[Any]:
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
