"""Payload encodings. JSON is the default; pickle is an explicit opt-in.

A JSON payload is ``{"job": "<registered name>", "args": {<instance attributes>}}`` plus
an optional ``"meta"`` object with per-push settings (``attempts``, ``backoff``).
Decoding only ever instantiates a class found in the job registry, without calling its
``__init__``: the attributes are restored as they were pushed.
"""

from __future__ import annotations

import json
import logging
import pickle
from abc import ABC, abstractmethod
from typing import Any

from .errors import SerializationError
from .job import Job, lookup

logger = logging.getLogger(__name__)

Meta = dict[str, Any]


_SLOTS: dict[type, tuple[str, ...]] = {}


def _slots(kind: type) -> tuple[str, ...]:
    found = _SLOTS.get(kind)
    if found is None:
        found = tuple(slot for klass in kind.__mro__
                      for slot in getattr(klass, "__slots__", ())
                      if slot not in ("__dict__", "__weakref__"))
        _SLOTS[kind] = found
    return found


def job_state(job: Job) -> dict[str, Any]:
    """The attributes that make up a job's payload."""
    slots = _slots(type(job))
    state: dict[str, Any] = getattr(job, "__dict__", {})
    if not slots:
        return state
    state = dict(state)
    for slot in slots:
        if hasattr(job, slot):
            state[slot] = getattr(job, slot)
    return state


def restore_job(cls: type[Job], state: dict[str, Any]) -> Job:
    job = cls.__new__(cls)
    for key, value in state.items():
        if key.startswith("__"):  # JSON object keys are always strings
            # A payload sets fields, never the object's machinery (__class__, __dict__).
            raise SerializationError(f"field name {key!r} is not allowed in a payload")
        # object.__setattr__ so that frozen dataclasses come back too.
        object.__setattr__(job, key, value)
    return job


class Serializer(ABC):
    name: str = "serializer"

    @abstractmethod
    def dumps(self, job: Job, meta: Meta | None = None) -> bytes:
        """Encode a job; raise SerializationError naming the problem."""

    @abstractmethod
    def loads(self, data: bytes) -> tuple[Job, Meta]:
        """Decode a payload into a registered job; raise SerializationError otherwise."""

    @abstractmethod
    def peek_name(self, data: bytes) -> str | None:
        """The job type a payload names, without building the job (None if unreadable)."""

    def dumps_result(self, value: Any) -> bytes:
        try:
            return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError, RecursionError):
            logger.debug("result %r is not JSON; keeping its repr", type(value))
            try:
                return json.dumps(repr(value)).encode()
            except RecursionError:
                return json.dumps(f"<{type(value).__qualname__} nested too deeply>").encode()

    def loads_result(self, data: bytes | None) -> Any:
        if data is None:
            return None
        try:
            return json.loads(data)
        except (ValueError, TypeError, RecursionError):
            if isinstance(data, (bytes, bytearray)):
                return bytes(data).decode("utf-8", "replace")
            return repr(data)


_NAMES: dict[type, str] = {}


def _registered_name(job: Job) -> str:
    kind = type(job)
    name = _NAMES.get(kind)
    if name is not None and lookup(name) is kind:
        return name
    if not isinstance(job, Job):
        raise SerializationError(
            f"{type(job).__qualname__} is not a Job: subclass queue_core.Job or RetryableJob")
    name = type(job).job_name if not type(job)._abstract_job else None
    if name is None or lookup(name) is not type(job):
        raise SerializationError(
            f"{type(job).__qualname__} is not a registered job type (it is declared abstract "
            "or another class took its job_name)")
    _NAMES[kind] = name
    return name


# One encoder for every call: json.dumps with options builds a new one each time.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_NAME_JSON: dict[str, str] = {}


def _name_json(name: str) -> str:
    found = _NAME_JSON.get(name)
    if found is None:
        found = _NAME_JSON[name] = _ENCODER.encode(name)
    return found


class JsonSerializer(Serializer):
    name = "json"

    def dumps(self, job: Job, meta: Meta | None = None) -> bytes:
        name = _registered_name(job)
        state = job_state(job)
        try:
            # The envelope {"job": ..., "args": ..., "meta": ...}, assembled by hand: this
            # runs once per pushed job.
            text = '{"job":' + _name_json(name) + ',"args":' + _ENCODER.encode(state)
            if meta:
                text += ',"meta":' + _ENCODER.encode(meta)
            return (text + "}").encode()
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(self._explain(name, state, meta, exc)) from None

    @staticmethod
    def _explain(name: str, state: dict[str, Any], meta: Meta | None,
                 exc: Exception) -> str:
        for key, value in {**state, **(meta or {})}.items():
            try:
                json.dumps(value, allow_nan=False)
            except RecursionError:
                return (f"cannot serialize job {name} as JSON: field {key!r} is nested too "
                        "deeply (or refers to itself)")
            except (TypeError, ValueError) as field_exc:
                return (f"cannot serialize job {name} as JSON: field {key!r}: {field_exc} "
                        "(use JSON types, or opt in to PickleSerializer)")
        return f"cannot serialize job {name} as JSON: {exc}"

    def loads(self, data: bytes) -> tuple[Job, Meta]:
        try:
            envelope = json.loads(data)
        except (ValueError, TypeError) as exc:
            raise SerializationError(f"payload is not valid JSON: {exc}") from None
        except RecursionError:
            raise SerializationError("payload is nested too deeply to decode") from None
        if (not isinstance(envelope, dict) or not isinstance(envelope.get("job"), str)
                or not isinstance(envelope.get("args"), dict)):
            raise SerializationError(
                "payload is not a queue-core job: expected an object with 'job' and 'args'")
        name = envelope["job"]
        cls = lookup(name)
        if cls is None:
            raise SerializationError(
                f"unknown job type {name!r}: no registered Job class has this name "
                "(is its module listed in the queue's 'imports'?)")
        meta = envelope.get("meta", {})
        if not isinstance(meta, dict):
            raise SerializationError("payload 'meta' is not an object")
        try:
            return restore_job(cls, envelope["args"]), meta
        except Exception as exc:
            raise SerializationError(f"cannot restore job {name}: {exc}") from None

    def peek_name(self, data: bytes) -> str | None:
        try:
            envelope = json.loads(data)
        except (ValueError, TypeError, RecursionError):
            return None
        name = envelope.get("job") if isinstance(envelope, dict) else None
        return name if isinstance(name, str) else None


class PickleSerializer(Serializer):
    """Opt-in: any picklable job. Decoding a pickle can run arbitrary code, so use it
    only when every producer of the queue is trusted."""

    name = "pickle"

    def dumps(self, job: Job, meta: Meta | None = None) -> bytes:
        name = _registered_name(job)
        try:
            return pickle.dumps((name, job, meta or {}), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise SerializationError(f"cannot pickle job {name}: {exc}") from exc

    def loads(self, data: bytes) -> tuple[Job, Meta]:
        try:
            name, job, meta = pickle.loads(data)
        except Exception as exc:
            raise SerializationError(f"payload is not a pickled queue-core job: {exc}") from None
        if not isinstance(job, Job) or lookup(name) is not type(job):
            raise SerializationError(f"pickled payload holds {type(job).__qualname__}, "
                                     "not a registered job type")
        return job, meta

    def peek_name(self, data: bytes) -> str | None:
        # Reading the name means unpickling; only the trusted-producer opt-in gets here.
        try:
            name = pickle.loads(data)[0]
        except Exception:
            return None
        return name if isinstance(name, str) else None

    def dumps_result(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            return pickle.dumps(f"<{type(value).__qualname__} that cannot be pickled>")

    def loads_result(self, data: bytes | None) -> Any:
        if data is None:
            return None
        try:
            return pickle.loads(data)
        except Exception:
            return None
