"""Reading ``app.config["QUEUE_CORE"]``: named queues, each what ``create_queue`` takes.

Two shapes are accepted. A dict of named queues, ``{"default": {...}, "mail": "redis://..."}``,
like Django's ``QUEUE_CORE``; or, for an app with one queue, a single settings dict or URL,
which is the ``"default"`` queue. A dict is one settings dict when every key is a setting
name and a dict of queues when none is; a dict mixing both is refused, naming the keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from queue_core.errors import ConfigError
from queue_core.settings import SETTING_KEYS

CONFIG_KEY = "QUEUE_CORE"
DEFAULT = "default"


def read_config(config: Mapping[str, Any]) -> dict[str, Mapping[str, Any] | str]:
    """The named queues' settings in a Flask config, checked for shape and setting names
    (values are checked when a queue is built: building one may connect)."""
    if CONFIG_KEY not in config:
        raise ConfigError(f"app.config[{CONFIG_KEY!r}] is not set: give the queue's settings "
                          f"or URL, or a dict of named queues like {{'default': "
                          f"'sqlite:///queue.db'}}", key=CONFIG_KEY)
    value = config[CONFIG_KEY]
    if isinstance(value, str):
        return {DEFAULT: _checked(DEFAULT, value)}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{CONFIG_KEY} must be a dict or a driver URL, got "
                          f"{type(value).__name__}", key=CONFIG_KEY)
    if not value:
        raise ConfigError(f"{CONFIG_KEY} is empty: name at least one queue, like "
                          f"{{'default': 'sqlite:///queue.db'}}", key=CONFIG_KEY)
    settings = [key for key in value if key in SETTING_KEYS]
    if len(settings) == len(value):
        return {DEFAULT: _checked(DEFAULT, value)}
    if settings:
        names = [str(key) for key in value if key not in SETTING_KEYS]
        raise ConfigError(f"{CONFIG_KEY} mixes settings ({', '.join(map(str, settings))}) with "
                          f"queue names ({', '.join(names)}): give either one settings dict "
                          "(the 'default' queue) or a dict of named queues", key=CONFIG_KEY)
    queues: dict[str, Mapping[str, Any] | str] = {}
    for name, settings_value in value.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{CONFIG_KEY}: queue names must be non-empty strings, got "
                              f"{name!r}", key=CONFIG_KEY)
        queues[name] = _checked(name, settings_value)
    return queues


def _checked(name: str, value: Any) -> Mapping[str, Any] | str:
    key = f"{CONFIG_KEY}.{name}"
    if isinstance(value, str):
        if not value:
            raise ConfigError(f"{key} is an empty URL", key=key)
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a settings dict or a driver URL, got "
                          f"{type(value).__name__}", key=key)
    for setting in value:
        if setting not in SETTING_KEYS:
            raise ConfigError(f"{key}: unknown setting {setting!r}; settings are "
                              f"{', '.join(SETTING_KEYS)}", key=f"{key}.{setting}")
    return value


def prefixed(name: str, error: ConfigError) -> ConfigError:
    """``error`` from building queue ``name``, its key given under ``QUEUE_CORE.name``."""
    key = f"{CONFIG_KEY}.{name}" + (f".{error.key}" if error.key else "")
    wrapped = ConfigError(f"{CONFIG_KEY}.{name}: {error}", key=key)
    wrapped.__cause__ = error
    return wrapped
