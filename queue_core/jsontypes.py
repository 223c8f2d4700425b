"""Rich values in JSON payloads and results.

``datetime``, ``date``, ``time``, ``timedelta``, ``UUID``, ``Decimal``, ``bytes``,
``set`` and ``frozenset`` travel as small tagged objects such as
``{"@datetime": "2026-12-02T07:40:00+00:00"}``, so a payload stays readable JSON and a
worker rebuilds the exact type without any annotation. A tag names one of these built-in
types, never a class: an ``Enum`` member travels as its value and a nested dataclass as an
object of its fields, and only a job class's annotations say what to build from them
(see schema.py).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import enum
import threading
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import SerializationError

_untagged = threading.local()


def untagged_count() -> int:
    """How many Enum members and dataclasses this thread has encoded so far: they come
    back only where an annotation names their type, so the caller checks the round trip."""
    count: int = getattr(_untagged, "count", 0)
    return count


def _zone_key(value: dt.datetime) -> str | None:
    key = getattr(value.tzinfo, "key", None)  # zoneinfo.ZoneInfo: the zone, not the offset
    return key if isinstance(key, str) else None


def _timedelta(value: dt.timedelta) -> dict[str, Any]:
    return {"@timedelta": [value.days, value.seconds, value.microseconds]}


def _set_items(values: Any) -> list[Any]:
    # A tuple inside a set must come back hashable: JSON alone would make it a list.
    return [{"@tuple": list(item)} if type(item) is tuple else item for item in values]


def to_json(value: Any) -> Any:
    """The ``default`` hook of the JSON encoder: called only for values JSON lacks."""
    kind = type(value)
    if kind is dt.datetime or isinstance(value, dt.datetime):
        tagged: dict[str, Any] = {"@datetime": value.isoformat()}
        zone = _zone_key(value)
        if zone is not None:
            tagged["tz"] = zone
        if value.fold:  # the second of two equal wall times (a clock set back)
            tagged["fold"] = 1
        return tagged
    if isinstance(value, dt.date):
        return {"@date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"@time": value.isoformat(), "fold": 1} if value.fold else {
            "@time": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return _timedelta(value)
    if isinstance(value, uuid.UUID):
        return {"@uuid": str(value)}
    if isinstance(value, Decimal):
        return {"@decimal": str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"@bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, frozenset):
        return {"@frozenset": _set_items(value)}
    if isinstance(value, set):
        return {"@set": _set_items(value)}
    if isinstance(value, enum.Enum):
        _untagged.count = untagged_count() + 1
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        _untagged.count = untagged_count() + 1
        from .schema import object_state
        return object_state(value)
    raise TypeError(f"Object of type {kind.__qualname__} is not JSON serializable")


def _text(tag: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise SerializationError(f"a {tag} value must be a string, got {type(raw).__name__}")
    return raw


def _fold(obj: dict[str, Any]) -> int:
    fold = obj.get("fold", 0)
    if fold not in (0, 1) or type(fold) is not int:
        raise SerializationError(f"fold must be 0 or 1, got {fold!r}")
    return fold


def _datetime(obj: dict[str, Any]) -> dt.datetime:
    value = dt.datetime.fromisoformat(_text("@datetime", obj["@datetime"]))
    zone = obj.get("tz")
    if zone is not None:
        from zoneinfo import ZoneInfo
        # The wall time in its zone, as it was written (even one a clock change skipped).
        value = value.replace(tzinfo=ZoneInfo(_text("tz", zone)))
    return value.replace(fold=_fold(obj))


def _time(obj: dict[str, Any]) -> dt.time:
    return dt.time.fromisoformat(_text("@time", obj["@time"])).replace(fold=_fold(obj))


def _timedelta_from(obj: dict[str, Any]) -> dt.timedelta:
    parts = obj["@timedelta"]
    if (not isinstance(parts, list) or len(parts) != 3
            or not all(type(part) is int for part in parts)):
        raise SerializationError("a @timedelta is [days, seconds, microseconds]")
    return dt.timedelta(days=parts[0], seconds=parts[1], microseconds=parts[2])


def _items(tag: str, raw: Any) -> list[Any]:
    if not isinstance(raw, list):
        raise SerializationError(f"a {tag} value must be a list, got {type(raw).__name__}")
    return raw


def _bytes(obj: dict[str, Any]) -> bytes:
    return base64.b64decode(_text("@bytes", obj["@bytes"]), validate=True)


_DECODERS: dict[str, tuple[frozenset[str], Callable[[dict[str, Any]], Any]]] = {
    "@datetime": (frozenset({"@datetime", "tz", "fold"}), _datetime),
    "@date": (frozenset({"@date"}),
              lambda obj: dt.date.fromisoformat(_text("@date", obj["@date"]))),
    "@time": (frozenset({"@time", "fold"}), _time),
    "@timedelta": (frozenset({"@timedelta"}), _timedelta_from),
    "@uuid": (frozenset({"@uuid"}), lambda obj: uuid.UUID(_text("@uuid", obj["@uuid"]))),
    "@decimal": (frozenset({"@decimal"}),
                 lambda obj: Decimal(_text("@decimal", obj["@decimal"]))),
    "@bytes": (frozenset({"@bytes"}), _bytes),
    "@set": (frozenset({"@set"}), lambda obj: set(_items("@set", obj["@set"]))),
    "@frozenset": (frozenset({"@frozenset"}),
                   lambda obj: frozenset(_items("@frozenset", obj["@frozenset"]))),
    "@tuple": (frozenset({"@tuple"}), lambda obj: tuple(_items("@tuple", obj["@tuple"]))),
}
TAGS = frozenset(_DECODERS)


def from_json(obj: dict[str, Any]) -> Any:
    """The ``object_hook`` of the JSON decoder: a tagged object becomes its value; any
    other object is left as it is."""
    if not obj:
        return obj
    key = next(iter(obj))
    found = _DECODERS.get(key) if key[:1] == "@" else None
    if found is None:
        return obj
    keys, build = found
    if not obj.keys() <= keys:
        return obj
    try:
        return build(obj)
    except SerializationError as exc:
        raise SerializationError(f"a {key} value cannot be read: {exc}") from None
    except (ValueError, TypeError, OverflowError, InvalidOperation, binascii.Error,
            LookupError) as exc:
        raise SerializationError(f"a {key} value cannot be read: {exc}") from None
