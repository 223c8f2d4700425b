"""``create_queue(settings | URL)``: the component configuration, Yii style.

Settings are the ``Queue`` keyword arguments plus ``driver`` (a URL, a dict with
``class`` or ``url`` and its arguments, or a driver object), ``channel``, ``imports`` (job
modules a worker imports at start) and ``events`` (``{"after_error": "pkg.mod:handler"}``).
Every unknown key or bad value raises ConfigError naming the key.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError, QueueError
from .events import EVENT_NAMES
from .options import redact_url
from .queue import Queue
from .store import Store

DEFAULT_DRIVER_URL = "file://./queue-data"
"""The embedded default: a directory next to where the app runs, no server needed."""

SCHEMES: dict[str, str] = {
    "sync": "queue_core.drivers.sync:SyncDriver",
    "file": "queue_core.drivers.file:FileDriver",
    "memory": "queue_core.drivers.memory:MemoryDriver",
    "sqlite": "queue_core.drivers.db:DbDriver",
    "postgresql": "queue_core.drivers.db:DbDriver",
    "postgres": "queue_core.drivers.db:DbDriver",
    "mysql": "queue_core.drivers.db:DbDriver",
    "mariadb": "queue_core.drivers.db:DbDriver",
    "redis": "queue_core.drivers.redis:RedisDriver",
    "rediss": "queue_core.drivers.redis:RedisDriver",
    "redis+sentinel": "queue_core.drivers.redis:RedisDriver",
    "rediss+sentinel": "queue_core.drivers.redis:RedisDriver",
    "redis+cluster": "queue_core.drivers.redis:RedisDriver",
    "rediss+cluster": "queue_core.drivers.redis:RedisDriver",
    "unix": "queue_core.drivers.redis:RedisDriver",
    "beanstalk": "queue_core.drivers.beanstalk:BeanstalkDriver",
    "amqp": "queue_core.drivers.amqp:AmqpDriver",
    "amqps": "queue_core.drivers.amqp:AmqpDriver",
}

QUEUE_KEYS = ("ttr", "attempts", "backoff", "age_limit", "serializer", "keep_completed",
              "keep_failed", "imports", "isolate", "concurrency", "async_concurrency",
              "heartbeat", "tracing", "schedules", "catch_up", "rate", "bucket_size",
              "max_concurrent")
SETTING_KEYS = ("driver", "channel", "events", *QUEUE_KEYS)


def import_object(path: Any, key: str) -> Any:
    """``package.module:attr`` (or ``package.module.attr``) -> the object."""
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{key} must be a 'module:attribute' path, got {path!r}", key=key)
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"{key}: {path!r} is not a 'module:attribute' path", key=key)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"{key}: cannot import module {module_name!r}: "
                          f"{type(exc).__name__}: {exc}", key=key) from exc
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(f"{key}: module {module_name!r} has no attribute {attr!r}",
                              key=key) from None
    return target


def driver_class_for_url(url: str) -> type[Store]:
    if not isinstance(url, str) or "://" not in url and not url.startswith("file:"):
        raise ConfigError(f"driver URL {url!r} has no scheme (like file:///path or "
                          "redis://host)", key="driver")
    scheme = url.split(":", 1)[0].lower().split("+", 1)[0]
    target = SCHEMES.get(scheme)
    if target is None:
        known = ", ".join(sorted(SCHEMES))
        raise ConfigError(f"driver URL {redact_url(url)!r} has unknown scheme {scheme!r}; "
                          f"known schemes: {known}", key="driver")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"the {scheme!r} driver is not available ({exc})",
                          key="driver") from exc
    cls: type[Store] = getattr(module, class_name)
    return cls


def driver_from_url(url: str, **options: Any) -> Store:
    return driver_class_for_url(url).from_url(url, **options)


def _build_driver(value: Any, channel: Any) -> Store:
    options: dict[str, Any] = {} if channel is None else {"channel": channel}
    if value is None:
        value = DEFAULT_DRIVER_URL
    if isinstance(value, Store):
        if channel is not None:
            raise ConfigError("channel cannot be set when driver is a driver object: pass "
                              "channel= to the driver instead", key="channel")
        return value
    if isinstance(value, str):
        return _call_driver(driver_from_url, value, **options)
    if isinstance(value, Mapping):
        spec = dict(value)
        if "class" in spec and "url" in spec:
            raise ConfigError("driver takes 'class' or 'url', not both", key="driver")
        if "url" in spec:
            url = spec.pop("url")
            return _call_driver(driver_from_url, url, **{**options, **spec})
        if "class" in spec:
            cls = spec.pop("class")
            if isinstance(cls, str):
                cls = import_object(cls, "driver.class")
            if not isinstance(cls, type) or not issubclass(cls, Store):
                raise ConfigError(f"driver.class must be a driver class (a Store subclass), "
                                  f"got {cls!r}",
                                  key="driver.class")
            return _call_driver(cls, **{**options, **spec})
        raise ConfigError("driver as a dict needs 'class' or 'url'", key="driver")
    raise ConfigError(f"driver must be a URL, a dict or a driver object, got {value!r}",
                      key="driver")


def _call_driver(factory: Any, *args: Any, **kwargs: Any) -> Store:
    try:
        driver = factory(*args, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"driver: {exc}", key="driver") from exc
    if not isinstance(driver, Store):
        raise ConfigError(f"driver factory returned {driver!r}, not a driver (a Store)",
                          key="driver")
    return driver


def _handlers(value: Any) -> dict[str, list[Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("events must be a dict of event name -> handler(s)", key="events")
    result: dict[str, list[Any]] = {}
    for name, handlers in value.items():
        if name not in EVENT_NAMES:
            raise ConfigError(f"events: unknown event {name!r}; events are "
                              f"{', '.join(EVENT_NAMES)}", key=f"events.{name}")
        listed = handlers if isinstance(handlers, (list, tuple)) else [handlers]
        resolved = []
        for handler in listed:
            if isinstance(handler, str):
                handler = import_object(handler, f"events.{name}")
            if not callable(handler):
                raise ConfigError(f"events.{name}: {handler!r} is not callable",
                                  key=f"events.{name}")
            resolved.append(handler)
        result[name] = resolved
    return result


def create_queue(settings: Mapping[str, Any] | str | None = None, **overrides: Any) -> Queue:
    """Build a Queue from a settings dict or a driver URL; keyword arguments override."""
    if settings is None:
        settings = {}
    if isinstance(settings, str):
        settings = {"driver": settings}
    if not isinstance(settings, Mapping):
        raise ConfigError(f"settings must be a dict or a driver URL, got {settings!r}")
    config = {**settings, **overrides}
    for key in config:
        if key not in SETTING_KEYS:
            raise ConfigError(f"unknown setting {key!r}; settings are "
                              f"{', '.join(SETTING_KEYS)}", key=str(key))
    handlers = _handlers(config.get("events"))
    serializer = config.get("serializer")
    if isinstance(serializer, str) and serializer not in ("json", "pickle"):
        config["serializer"] = import_object(serializer, "serializer")
    imports = config.get("imports", ())
    if isinstance(imports, str):
        imports = [imports]
    if not isinstance(imports, (list, tuple)) or not all(isinstance(m, str) for m in imports):
        raise ConfigError("imports must be a list of module names", key="imports")
    config["imports"] = list(imports)
    driver = _build_driver(config.get("driver"), config.get("channel"))
    queue_args = {key: config[key] for key in QUEUE_KEYS if key in config}
    try:
        queue = Queue(driver, **queue_args)
    except Exception:
        driver.close()
        raise
    for name, listed in handlers.items():
        for handler in listed:
            queue.on(name, handler)
    return queue


def queue_from_target(target: Any, key: str = "--app") -> Queue:
    """What ``--app module:attr`` names: a Queue, a settings dict, a URL, or a factory
    returning one of those."""
    if isinstance(target, str) and "://" in target:
        return create_queue(target)
    value = import_object(target, key) if isinstance(target, str) and ":" in target else target
    if callable(value) and not isinstance(value, (Queue, type)):
        try:
            value = value()
        except QueueError:
            raise
        except Exception as exc:
            raise ConfigError(f"{key} {target!r}: the factory raised {type(exc).__name__}: "
                              f"{exc}", key=key) from exc
    if isinstance(value, Queue):
        return value
    if isinstance(value, (Mapping, str)):
        return create_queue(value)
    raise ConfigError(f"{key} {target!r} is not a Queue, a settings dict, a URL or a factory "
                      f"returning one (got {type(value).__name__})", key=key)
