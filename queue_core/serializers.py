"""Payload encodings. JSON is the default; pickle is an explicit opt-in.

A JSON payload is ``{"job": "<registered name>", "args": {<instance attributes>}}`` plus
an optional ``"meta"`` object with per-push settings (``attempts``, ``backoff``). Values
JSON lacks travel as tagged objects (jsontypes.py). Decoding only ever instantiates a
class found in the job registry, without calling its ``__init__``: the attributes are
restored as they were pushed, completed by the class's defaults (schema.py).
"""

from __future__ import annotations

import json
import logging
import pickle
from abc import ABC, abstractmethod
from typing import Any

from . import jsontypes
from .errors import SerializationError
from .job import Job, lookup
from .schema import complete, object_state, plan_of, restore, short_repr

logger = logging.getLogger(__name__)

Meta = dict[str, Any]


def job_state(job: Job) -> dict[str, Any]:
    """The attributes that make up a job's payload."""
    return object_state(job)


def restore_job(cls: type[Job], state: dict[str, Any]) -> Job:
    """A registered job from its stored fields: the class's defaults fill in what an older
    version did not write (see schema.py)."""
    job: Job = restore(cls, state)
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
            return _ENCODER.encode(value).encode()
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
            return _load(data)
        except (ValueError, TypeError, RecursionError, SerializationError):
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
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                            default=jsontypes.to_json)
_TAGGED = json.JSONDecoder(object_hook=jsontypes.from_json)


def _load(data: bytes | str) -> Any:
    """JSON text as values, tagged objects rebuilt (only payloads that hold one pay for
    the hook)."""
    if isinstance(data, (bytes, bytearray)):
        if b'{"@' not in data:
            return json.loads(data)
        data = bytes(data).decode()
    elif '{"@' not in data:
        return json.loads(data)
    return _TAGGED.decode(data)


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
        untagged = jsontypes.untagged_count()
        try:
            args = _ENCODER.encode(state)
            # The envelope {"job": ..., "args": ..., "meta": ...}, assembled by hand: this
            # runs once per pushed job.
            text = '{"job":' + _name_json(name) + ',"args":' + args
            if meta:
                text += ',"meta":' + _ENCODER.encode(meta)
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(self._explain(name, state, meta, exc)) from None
        if ('{"@' in args or jsontypes.untagged_count() != untagged
                or plan_of(type(job)).converters):
            _check_round_trip(name, type(job), state, args)
        return (text + "}").encode()

    @staticmethod
    def _explain(name: str, state: dict[str, Any], meta: Meta | None,
                 exc: Exception) -> str:
        for key, value in {**state, **(meta or {})}.items():
            try:
                _ENCODER.encode(value)
            except RecursionError:
                return (f"cannot serialize job {name} as JSON: field {key!r} is nested too "
                        "deeply (or refers to itself)")
            except (TypeError, ValueError) as field_exc:
                return (f"cannot serialize job {name} as JSON: field {key!r}: {field_exc} "
                        "(use JSON types or the types docs/jobs.md lists, or opt in to "
                        "PickleSerializer)")
        return f"cannot serialize job {name} as JSON: {exc}"

    def loads(self, data: bytes) -> tuple[Job, Meta]:
        try:
            envelope = _load(data)
        except SerializationError as exc:
            raise SerializationError(f"payload cannot be decoded: {exc}") from None
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


def _check_round_trip(name: str, cls: type[Job], state: dict[str, Any], args: str) -> None:
    """Refuse at push what a worker could not rebuild as it was: an Enum or a dataclass in
    a field whose annotation does not name its type, a value that does not fit its
    annotation, a dict that looks like a type tag."""
    try:
        restored = object_state(restore_job(cls, _load(args)))
    except SerializationError as exc:
        raise SerializationError(f"cannot serialize job {name}: a worker could not read it "
                                 f"back: {exc} (an object whose first key is a type tag "
                                 f"such as '@set' is read as that type)") from None
    for key, value in state.items():
        if key in restored and not _same(value, restored[key]):
            raise SerializationError(
                f"cannot serialize job {name}: field {key!r} would come back as "
                f"{type(restored[key]).__qualname__} {short_repr(restored[key])}, not "
                f"{type(value).__qualname__} {short_repr(value)} (annotate the field with its "
                "type: an Enum, a dataclass or a tuple is rebuilt from its annotation)")


def _same(sent: Any, back: Any) -> bool:
    """Equal, allowing what JSON has always done to an unannotated field: a tuple comes
    back a list, an int dict key a string."""
    if type(sent) is tuple and type(back) is list:
        return len(sent) == len(back) and all(map(_same, sent, back))
    if type(sent) is list and type(back) is list:
        return len(sent) == len(back) and all(map(_same, sent, back))
    if type(sent) is dict and type(back) is dict:
        if len(sent) != len(back):
            return False
        if sent.keys() == back.keys():
            return all(_same(sent[k], back[k]) for k in back)
        keyed = {k if isinstance(k, str) else _ENCODER.encode(k).strip('"'): v
                 for k, v in sent.items()}
        return keyed.keys() == back.keys() and all(_same(keyed[k], back[k]) for k in back)
    if not isinstance(sent, type(back)):  # a subclass (an IntEnum, a datetime's) may widen
        return False
    try:
        return bool(sent == back)
    except Exception:
        return False


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
        complete(job)
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
