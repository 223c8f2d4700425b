"""What a job class's fields are, and how a stored payload becomes an instance of it.

A payload written by an older (or newer) version of a class must still run after a
deploy: a field the payload lacks takes the class's default (a dataclass ``default`` or
``default_factory``, a keyword default of a plain ``__init__``), a required one that is
missing is a SerializationError naming it, and a stored field the class no longer declares
is dropped with a warning. The annotations say what to build from JSON values (an Enum, a
nested dataclass, a tuple, a datetime written as text); the class's ``__init__`` is never
called, so restoring runs no code of the job beyond its default factories.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import enum
import inspect
import logging
import sys
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import SerializationError

logger = logging.getLogger(__name__)

Convert = Callable[[Any, str], Any]
"""Builds a field's value from what JSON gave (value, the field's path for errors)."""

_IMMUTABLE = (type(None), bool, int, float, str, bytes, tuple, frozenset, enum.Enum,
              Decimal, uuid.UUID, dt.date, dt.time, dt.timedelta)


@dataclass(frozen=True)
class Plan:
    """One class's fields, worked out once."""

    name: str
    defaults: dict[str, Callable[[], Any]]
    required: tuple[str, ...]
    expected: tuple[str, ...]
    """The fields a complete payload has: required ones and those with a default."""
    declared: frozenset[str] | None
    """Every field the class has; None when the class does not declare them (a plain
    class keeps whatever attributes were stored)."""
    converters: dict[str, Convert]


_SLOTS: dict[type, tuple[str, ...]] = {}


def _slots(kind: type) -> tuple[str, ...]:
    found = _SLOTS.get(kind)
    if found is None:
        found = tuple(slot for klass in kind.__mro__
                      for slot in getattr(klass, "__slots__", ())
                      if slot not in ("__dict__", "__weakref__"))
        _SLOTS[kind] = found
    return found


def object_state(obj: Any) -> dict[str, Any]:
    """The attributes that make up an object's payload (its ``__dict__`` and slots)."""
    slots = _slots(type(obj))
    state: dict[str, Any] = getattr(obj, "__dict__", {})
    if not slots:
        return state
    state = dict(state)
    for slot in slots:
        if hasattr(obj, slot):
            state[slot] = getattr(obj, slot)
    return state


_PLANS: dict[type, Plan] = {}


def plan_of(cls: type) -> Plan:
    found = _PLANS.get(cls)
    if found is None:
        found = _PLANS[cls] = _make_plan(cls)
    return found


def _copying(value: Any) -> Callable[[], Any]:
    if isinstance(value, _IMMUTABLE):
        return lambda: value
    return lambda: copy.deepcopy(value)


def _make_plan(cls: type) -> Plan:
    name = getattr(cls, "job_name", None) or f"{cls.__module__}.{cls.__qualname__}"
    hints = _hints(cls)
    defaults: dict[str, Callable[[], Any]] = {}
    required: list[str] = []
    declared: set[str] | None = None
    if dataclasses.is_dataclass(cls):
        declared = set()
        for item in dataclasses.fields(cls):
            declared.add(item.name)
            if item.default is not dataclasses.MISSING:
                defaults[item.name] = _copying(item.default)
            elif item.default_factory is not dataclasses.MISSING:
                defaults[item.name] = item.default_factory
            elif item.init:
                required.append(item.name)
    else:
        for param in _init_parameters(cls):
            if param.default is not inspect.Parameter.empty:
                defaults[param.name] = _copying(param.default)
            elif param.name in hints and not hasattr(cls, param.name):
                # Annotated and taken by __init__: surely an attribute the job reads.
                required.append(param.name)
    if _slots(cls):
        declared = (declared or set()) | set(_slots(cls)) | set(hints)
    converters = {field: convert for field, hint in hints.items()
                  if (convert := converter(hint)) is not None}
    return Plan(name, defaults, tuple(required), (*required, *defaults),
                None if declared is None else frozenset(declared), converters)


def _init_parameters(cls: type) -> list[inspect.Parameter]:
    init = cls.__dict__.get("__init__") or next(
        (klass.__dict__["__init__"] for klass in cls.__mro__ if "__init__" in klass.__dict__),
        object.__init__)
    if init is object.__init__:
        return []
    try:
        parameters = list(inspect.signature(init).parameters.values())[1:]
    except (TypeError, ValueError):
        return []
    return [param for param in parameters
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)]


def _hints(cls: type) -> dict[str, Any]:
    """The class's field annotations, resolved; ClassVars and the Job base's own left out.
    An annotation that cannot be resolved is skipped (no conversion for that field)."""
    from .job import Job
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or klass is Job:
            continue
        annotations = klass.__dict__.get("__annotations__", {})
        if not annotations or klass.__module__ == Job.__module__:
            continue
        module = sys.modules.get(klass.__module__)
        namespace = dict(vars(module)) if module is not None else {}
        for field, annotation in annotations.items():
            hint = annotation
            if isinstance(annotation, str):
                try:
                    hint = eval(annotation, namespace, dict(vars(klass)))  # noqa: S307
                except Exception:  # the class's own annotation; it may name TYPE_CHECKING types
                    logger.debug("annotation %r of %s.%s is not resolvable", annotation,
                                 cls.__qualname__, field)
                    found.pop(field, None)
                    continue
            if typing.get_origin(hint) is typing.ClassVar or hint is typing.ClassVar:
                found.pop(field, None)
                continue
            found[field] = hint
    return found


# -- restoring ---------------------------------------------------------------------------

_WARNED: set[tuple[str, str]] = set()


def restore(cls: type[Any], state: dict[str, Any], path: str = "") -> Any:
    """An instance of ``cls`` from stored fields, without calling its ``__init__``."""
    plan = _PLANS.get(cls) or plan_of(cls)
    obj = typing.cast(Any, cls).__new__(cls)
    declared = plan.declared
    converters = plan.converters
    for key, value in state.items():
        if key[:2] == "__":  # JSON object keys are always strings
            # A payload sets fields, never the object's machinery (__class__, __dict__).
            raise SerializationError(f"field name {path}{key!r} is not allowed in a payload")
        if declared is not None and key not in declared:
            _dropped(plan.name, path + key)
            continue
        if converters and key in converters:
            value = converters[key](value, path + key)
        # object.__setattr__ so that frozen dataclasses come back too.
        object.__setattr__(obj, key, value)
    for name in plan.expected:
        if name not in state:
            _complete(obj, plan, state, path)
            break
    return obj


def _complete(obj: Any, plan: Plan, state: dict[str, Any], path: str) -> None:
    for name in plan.required:
        if name not in state:
            raise SerializationError(
                f"required field {path + name!r} is missing from the payload (written by a "
                "version of the class without it? give the field a default to run such "
                "jobs)")
    for name, make in plan.defaults.items():
        if name not in state:
            object.__setattr__(obj, name, make())


def complete(obj: Any) -> None:
    """Fill in what an object restored another way (pickle) lacks: defaults, or an error
    naming a required field."""
    state = getattr(obj, "__dict__", None)
    if state is None:
        state = {slot: True for slot in _slots(type(obj)) if hasattr(obj, slot)}
    plan = plan_of(type(obj))
    _complete(obj, plan, state, "")


def _dropped(job: str, field: str) -> None:
    if (job, field) in _WARNED:
        logger.debug("job %s: stored field %r dropped", job, field)
        return
    _WARNED.add((job, field))
    logger.warning("job %s: the payload has a field %r the class does not declare (written "
                   "by another version of it?); the field is dropped", job, field)


# -- building values from annotations ----------------------------------------------------

def _text_or(kind: type, parse: Callable[[str], Any]) -> Convert:
    def convert(value: Any, path: str) -> Any:
        if isinstance(value, kind):
            return value
        if isinstance(value, str):
            try:
                return parse(value)
            except (ValueError, InvalidOperation) as exc:
                raise SerializationError(f"field {path!r}: {value!r} is not a "
                                         f"{kind.__name__}: {exc}") from None
        raise _wrong(path, kind, value)
    return convert


def _wrong(path: str, kind: Any, value: Any) -> SerializationError:
    name = getattr(kind, "__qualname__", None) or str(kind)
    return SerializationError(f"field {path!r}: expected {name}, got "
                              f"{type(value).__name__} {short_repr(value)}")


def short_repr(value: Any) -> str:
    """A value as an error message shows it: its repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


_SCALARS: dict[type, Convert] = {
    dt.datetime: _text_or(dt.datetime, dt.datetime.fromisoformat),
    dt.time: _text_or(dt.time, dt.time.fromisoformat),
    uuid.UUID: _text_or(uuid.UUID, uuid.UUID),
    Decimal: _text_or(Decimal, Decimal),
}


def _date_only(value: Any, path: str) -> Any:
    if isinstance(value, dt.date):
        return value
    return _text_or(dt.date, _date)(value, path)


def _enum(kind: type[enum.Enum]) -> Convert:
    def convert(value: Any, path: str) -> Any:
        if isinstance(value, kind):
            return value
        try:
            return kind(value)
        except (ValueError, TypeError):
            raise SerializationError(f"field {path!r}: {short_repr(value)} is not a value of "
                                     f"{kind.__qualname__}") from None
    return convert


def _nested(kind: type) -> Convert:
    def convert(value: Any, path: str) -> Any:
        if isinstance(value, kind):
            return value
        if not isinstance(value, dict):
            raise _wrong(path, kind, value)
        return restore(kind, value, path + ".")
    return convert


def _each(item: Convert | None, build: Callable[[Any], Any], kind: type) -> Convert:
    def convert(value: Any, path: str) -> Any:
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise _wrong(path, kind, value)
        if item is None:
            return value if type(value) is kind else build(value)
        return build(item(element, f"{path}[{index}]") for index, element in enumerate(value))
    return convert


def _positions(items: list[Convert | None]) -> Convert:
    def convert(value: Any, path: str) -> Any:
        if not isinstance(value, (list, tuple)) or len(value) != len(items):
            raise SerializationError(f"field {path!r}: expected a tuple of {len(items)} "
                                     f"items, got {short_repr(value)}")
        return tuple(element if each is None else each(element, f"{path}[{index}]")
                     for index, (each, element) in enumerate(zip(items, value, strict=True)))
    return convert


def _mapping(key: Convert | None, item: Convert | None) -> Convert:
    def convert(value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise _wrong(path, dict, value)
        return {(k if key is None else key(k, f"{path} key")):
                (v if item is None else item(v, f"{path}[{k!r}]")) for k, v in value.items()}
    return convert


def _int_key(value: Any, path: str) -> Any:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise SerializationError(f"{path}: {value!r} is not a whole number") from None
    return value


def _optional(inner: Convert) -> Convert:
    def convert(value: Any, path: str) -> Any:
        return None if value is None else inner(value, path)
    return convert


def converter(hint: Any) -> Convert | None:
    """How to build a value of type ``hint`` from JSON; None when JSON gives it as is (or
    the annotation says too little to build anything)."""
    if isinstance(hint, type):
        if hint is dt.datetime or hint in _SCALARS:
            return _SCALARS.get(hint)
        if hint is dt.date:
            return _date_only
        if hint is tuple:
            return _each(None, tuple, tuple)
        if hint in (set, frozenset):
            return _each(None, hint, hint)
        if issubclass(hint, enum.Enum):
            return _enum(hint)
        if dataclasses.is_dataclass(hint):
            return _nested(hint)
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        others = [arg for arg in args if arg is not type(None)]
        if len(others) == 1 and len(args) == 2:
            inner = converter(others[0])
            return None if inner is None else _optional(inner)
        return None  # several types: only tags say which one a value is
    if origin is typing.Annotated:
        return converter(args[0])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _each(converter(args[0]), tuple, tuple)
        if args == ((),):
            return _each(None, tuple, tuple)
        return _positions([converter(arg) for arg in args]) if args else _each(None, tuple,
                                                                               tuple)
    if origin in (set, frozenset):
        return _each(converter(args[0]) if args else None, origin, origin)
    if origin is list:
        item = converter(args[0]) if args else None
        return None if item is None else _each(item, list, list)
    if origin is dict and len(args) == 2:
        key = _int_key if args[0] is int else None
        item = converter(args[1])
        return None if key is None and item is None else _mapping(key, item)
    return None
