"""Jobs as JSON: the registered name plus the fields; pickle only by opting in."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from queue_core import (
    ConfigError,
    Job,
    JsonSerializer,
    PickleSerializer,
    Queue,
    RetryableJob,
    SerializationError,
)
from queue_core.job import lookup, register, registered_names
from tests.support.recording import RecordingDriver


@dataclass
class Point(Job):
    x: int
    y: int
    tags: list[str] = field(default_factory=list)

    def execute(self, queue: Any) -> int:
        return self.x + self.y


class Plain(Job):
    def __init__(self, name: str) -> None:
        self.name = name
        self.greeting = f"hello {name}"

    def execute(self, queue: Any) -> str:
        return self.greeting


class Slotted(Job):
    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value

    def execute(self, queue: Any) -> int:
        return self.value


@dataclass(frozen=True)
class Frozen(Job):
    value: int

    def execute(self, queue: Any) -> int:
        return self.value


class Renamed(Job):
    job_name = "legacy.SendMail"

    def execute(self, queue: Any) -> None:
        return None


class Base(Job, abstract=True):
    def execute(self, queue: Any) -> None:
        return None


def test_subclassing_registers_under_module_and_qualname() -> None:
    assert lookup("tests.unit.test_serializers.Point") is Point
    assert lookup("legacy.SendMail") is Renamed
    assert "tests.unit.test_serializers.Base" not in registered_names()
    assert lookup("queue_core.job.RetryableJob") is None


@pytest.mark.parametrize("job", [Point(1, 2, ["a"]), Plain("ann"), Slotted(5), Frozen(9)])
def test_round_trip(job: Job) -> None:
    serializer = JsonSerializer()
    data = serializer.dumps(job)
    restored, meta = serializer.loads(data)
    assert type(restored) is type(job) and meta == {}
    assert restored.execute(None) == job.execute(None)


def test_the_json_is_the_name_plus_the_fields() -> None:
    data = json.loads(JsonSerializer().dumps(Point(1, 2), {"attempts": 3}))
    assert data == {"job": "tests.unit.test_serializers.Point",
                    "args": {"x": 1, "y": 2, "tags": []}, "meta": {"attempts": 3}}


def test_decoding_does_not_call_init() -> None:
    restored, _ = JsonSerializer().loads(
        b'{"job": "tests.unit.test_serializers.Plain", "args": {"name": "x", "greeting": "hi"}}')
    assert restored.execute(None) == "hi"


@pytest.mark.parametrize("value, needle", [
    (object(), "'tags'"), (1 + 2j, "'tags'"), (float("nan"), "'tags'"), (len, "'tags'")])
def test_an_unserialisable_field_is_named(value: Any, needle: str) -> None:
    with pytest.raises(SerializationError, match=needle) as caught:
        JsonSerializer().dumps(Point(1, 2, value))
    assert "PickleSerializer" in str(caught.value)


def test_nothing_is_written_when_a_job_cannot_be_encoded() -> None:
    driver = RecordingDriver()
    queue = Queue(driver)
    with pytest.raises(SerializationError):
        queue.push(Point(1, 2, [object()]))
    with pytest.raises(SerializationError):
        queue.push_many([Point(1, 2), Point(3, 4, [object()])])
    assert driver.pushed == []


def test_only_jobs_can_be_pushed() -> None:
    from queue_core import InvalidArgumentError
    with pytest.raises(InvalidArgumentError, match="Job instance"):
        Queue(RecordingDriver()).push(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="abstract"):
        JsonSerializer().dumps(Base())


@pytest.mark.parametrize("payload, message", [
    (b"\xff\x00", "not valid JSON"),
    (b"[]", "expected an object with 'job' and 'args'"),
    (b'{"job": 5, "args": {}}', "expected an object"),
    (b'{"job": "subprocess.Popen", "args": {"args": "rm -rf /"}}', "unknown job type"),
    (b'{"job": "tests.unit.test_serializers.Point", "args": {}, "meta": []}', "meta"),
])
def test_bad_payloads_raise_serialization_error(payload: bytes, message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        JsonSerializer().loads(payload)


def test_a_payload_cannot_make_the_worker_import_anything() -> None:
    import sys
    assert "xml.dom.minidom" not in sys.modules
    with pytest.raises(SerializationError):
        JsonSerializer().loads(b'{"job": "xml.dom.minidom.parseString", "args": {}}')
    assert "xml.dom.minidom" not in sys.modules


def test_peek_name() -> None:
    serializer = JsonSerializer()
    name = serializer.peek_name(serializer.dumps(Point(1, 2)))
    assert name == "tests.unit.test_serializers.Point"
    assert serializer.peek_name(b"junk") is None


def test_pickle_is_opt_in_and_still_checks_the_registry() -> None:
    serializer = PickleSerializer()
    job = Point(1, 2, [b"bytes are fine here"])  # type: ignore[list-item]
    restored, meta = serializer.loads(serializer.dumps(job, {"attempts": 2}))
    assert restored == job and meta == {"attempts": 2}
    import pickle
    with pytest.raises(SerializationError, match="not a registered job type"):
        serializer.loads(pickle.dumps(("x", {"not": "a job"}, {})))
    assert isinstance(Queue(RecordingDriver()).serializer, JsonSerializer)


def test_results_are_kept_as_json_or_their_repr() -> None:
    serializer = JsonSerializer()
    assert serializer.loads_result(serializer.dumps_result({"a": [1]})) == {"a": [1]}
    assert serializer.loads_result(serializer.dumps_result(object())).startswith("<object")


def test_registering_a_non_job_is_refused() -> None:
    from queue_core import ConfigError
    with pytest.raises(ConfigError):
        register(dict)  # type: ignore[arg-type]


def test_retryable_job_defaults_keep_the_queue_settings() -> None:
    @dataclass
    class Defaults(RetryableJob):
        def execute(self, queue: Any) -> None:
            return None
    assert Defaults().get_ttr() is None
    assert Defaults().can_retry(1, RuntimeError()) is None


def test_a_second_class_cannot_take_a_registered_job_name() -> None:
    with pytest.raises(ConfigError) as caught:
        class Impostor(Job):
            job_name = "legacy.SendMail"

            def execute(self, queue: Any) -> None:
                return None
    message = str(caught.value)
    assert "tests.unit.test_serializers.Renamed" in message
    assert "Impostor" in message
    assert lookup("legacy.SendMail") is Renamed


def test_the_same_class_defined_again_replaces_itself() -> None:
    """A module imported twice (a reload, a test runner) defines its classes again."""
    def define() -> type[Job]:
        class Again(Job):
            def execute(self, queue: Any) -> None:
                return None
        return Again
    first, second = define(), define()
    assert first is not second
    assert lookup(second.job_name) is second


def test_results_nested_too_deeply_are_kept_as_a_note() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert b"nested too deeply" in JsonSerializer().dumps_result(deep)
    assert JsonSerializer().loads_result(b"[" * 100_000 + b"]" * 100_000) is not None
