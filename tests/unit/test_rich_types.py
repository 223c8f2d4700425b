"""Field types beyond JSON's own: exact round trips (type and value), readable payloads,
and a clear refusal at push of what a worker could not rebuild."""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Optional
from zoneinfo import ZoneInfo

import pytest

from queue_core import Job, JsonSerializer, PickleSerializer, SerializationError


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclass
class Address:
    street: str
    city: str = "Paris"
    since: dt.date | None = None


@dataclass
class Everything(Job):
    aware: dt.datetime
    naive: dt.datetime
    day: dt.date
    clock: dt.time
    span: dt.timedelta
    uid: uuid.UUID
    price: Decimal
    color: Color
    level: Level
    blob: bytes
    pair: tuple[int, str]
    many: tuple[dt.date, ...]
    tags: set[str]
    frozen: frozenset[int]
    home: Address
    homes: list[Address]
    by_id: dict[int, Color]
    maybe: Optional[uuid.UUID] = None  # noqa: UP007, UP045 - the typing spelling must work too
    later: dt.datetime | None = None

    def execute(self, queue: Any) -> None:
        return None


def everything() -> Everything:
    return Everything(
        aware=dt.datetime(2026, 10, 25, 2, 30, 0, 123456, tzinfo=ZoneInfo("Europe/Paris"),
                          fold=1),
        naive=dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
        day=dt.date(2024, 2, 29), clock=dt.time(7, 40, 1, 5, tzinfo=dt.timezone.utc),
        span=dt.timedelta(days=-3, seconds=5, microseconds=7),
        uid=uuid.UUID("12345678-1234-5678-1234-567812345678"), price=Decimal("19.90"),
        color=Color.BLUE, level=Level.HIGH, blob=bytes(range(256)), pair=(7, "seven"),
        many=(dt.date(2020, 1, 1), dt.date(2021, 1, 1)), tags={"a", "b"},
        frozen=frozenset({1, 2}), home=Address("Rue", since=dt.date(2001, 1, 1)),
        homes=[Address("A"), Address("B", "Lyon")], by_id={1: Color.RED, 20: Color.BLUE},
        maybe=uuid.UUID(int=5), later=dt.datetime(2030, 1, 1, tzinfo=dt.timezone(
            dt.timedelta(hours=-3, minutes=-30))))


def _types(job: Any) -> dict[str, Any]:
    return {name: type(value) for name, value in vars(job).items()}


@pytest.mark.parametrize("serializer", [JsonSerializer(), PickleSerializer()],
                         ids=["json", "pickle"])
def test_every_listed_type_round_trips_with_its_type_and_value(serializer: Any) -> None:
    job = everything()
    restored, _ = serializer.loads(serializer.dumps(job))
    assert restored == job
    assert _types(restored) == _types(job)
    assert restored.aware.tzinfo == ZoneInfo("Europe/Paris") and restored.aware.fold == 1
    assert restored.aware.utcoffset() == job.aware.utcoffset()
    assert restored.clock.tzinfo == dt.timezone.utc
    assert type(restored.home.since) is dt.date
    assert all(type(key) is int for key in restored.by_id)
    assert [type(item) for item in restored.many] == [dt.date, dt.date]


def test_the_payload_stays_readable_json() -> None:
    data = json.loads(JsonSerializer().dumps(everything()))
    args = data["args"]
    assert args["aware"] == {"@datetime": "2026-10-25T02:30:00.123456+01:00",
                             "tz": "Europe/Paris", "fold": 1}
    assert args["naive"] == {"@datetime": "1999-12-31T23:59:59.999999"}
    assert args["day"] == {"@date": "2024-02-29"}
    assert args["span"] == {"@timedelta": [-3, 5, 7]}
    assert args["uid"] == {"@uuid": "12345678-1234-5678-1234-567812345678"}
    assert args["price"] == {"@decimal": "19.90"}
    assert args["color"] == "blue" and args["level"] == 2
    assert args["pair"] == [7, "seven"]
    assert args["home"] == {"street": "Rue", "city": "Paris", "since": {"@date": "2001-01-01"}}
    assert sorted(args["tags"]["@set"]) == ["a", "b"]


@dataclass
class Untyped(Job):
    value: Any

    def execute(self, queue: Any) -> None:
        return None


@pytest.mark.parametrize("value", [
    dt.datetime(2026, 12, 2, 7, 40, tzinfo=dt.timezone.utc), dt.datetime(2026, 12, 2),
    dt.date(2026, 12, 2), dt.time(23, 59), dt.timedelta(microseconds=-1),
    uuid.UUID(int=1), Decimal("-0.000"), Decimal("1E+400"), b"", b"\x00\xff",
    {1, "x", (1, 2)}, frozenset({b"k"}),
    [dt.date(2000, 1, 1), {"@not-a-tag": 1}], {"nested": {"when": dt.date(1970, 1, 1)}},
    dt.datetime(2026, 3, 29, 2, 30, tzinfo=ZoneInfo("Europe/Paris")),  # a skipped hour
], ids=lambda value: (f"{type(value).__name__}-{sorted(map(repr, value))}"
                      if isinstance(value, (set, frozenset)) else repr(value)))
def test_tagged_values_round_trip_without_an_annotation(value: Any) -> None:
    serializer = JsonSerializer()
    restored, _ = serializer.loads(serializer.dumps(Untyped(value)))
    assert restored.value == value and type(restored.value) is type(value)
    if isinstance(value, dt.datetime):
        assert restored.value.tzinfo == value.tzinfo and restored.value.fold == value.fold


@pytest.mark.parametrize("value, needle", [
    (Color.RED, "annotate"), (Address("x"), "annotate"),
    ({"@set": 5}, "type tag"), ({"@uuid": str(uuid.UUID(int=3))}, "would come back as UUID"),
])
def test_what_a_worker_could_not_rebuild_is_refused_at_push(value: Any, needle: str) -> None:
    with pytest.raises(SerializationError, match="'value'|type tag") as caught:
        JsonSerializer().dumps(Untyped(value))
    assert needle in str(caught.value)


@dataclass
class Dated(Job):
    day: dt.date
    when: dt.datetime = field(default_factory=lambda: dt.datetime(2000, 1, 1))

    def execute(self, queue: Any) -> None:
        return None


@pytest.mark.parametrize("day, needle", [
    ("2026-13-45", "is not a date"), ("2026-12-02", "would come back as date"),
    (20261202, "expected date")])
def test_a_value_that_does_not_fit_its_annotation_is_refused_at_push(day: Any,
                                                                     needle: str) -> None:
    with pytest.raises(SerializationError, match="'day'") as caught:
        JsonSerializer().dumps(Dated(day=day, when=day))
    assert needle in str(caught.value)


def test_a_subclass_of_the_annotated_type_is_kept() -> None:
    job = Dated(day=dt.datetime(2026, 1, 1, 5))
    restored, _ = JsonSerializer().loads(JsonSerializer().dumps(job))
    assert restored == job and type(restored.day) is dt.datetime


def test_an_annotated_field_written_as_text_is_built_from_it() -> None:
    """A job that used to hand-convert to ISO strings keeps working once annotated."""
    restored, _ = JsonSerializer().loads(json.dumps({
        "job": Dated.job_name, "args": {"day": "2026-12-02", "when": "2026-12-02T07:00:00Z"}
    }).encode())
    assert restored.day == dt.date(2026, 12, 2)
    assert restored.when == dt.datetime(2026, 12, 2, 7, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("args, needle", [
    ({"day": "yesterday"}, "'day'"),
    ({"day": 5}, "'day'"),
    ({"day": {"@date": "2026-13-01"}}, "@date"),
    ({"day": {"@date": 20261201}}, "@date"),
    ({"day": "2026-01-01", "when": {"@datetime": "2026-01-01T00:00", "tz": "../../etc/passwd"}},
     "@datetime"),
    ({"day": "2026-01-01", "when": {"@datetime": "2026-01-01T00:00", "tz": "No/Such_Zone"}},
     "@datetime"),
    ({"day": "2026-01-01", "when": {"@datetime": "2026-01-01T00:00", "fold": 7}}, "fold"),
    ({"day": {"@timedelta": [10**12, 0, 0]}}, "@timedelta"),
    ({"day": {"@bytes": "not base64!"}}, "@bytes"),
    ({"day": {"@set": [[1]]}}, "@set"),
])
def test_a_stored_value_that_cannot_be_built_is_a_serialization_error(
        args: dict[str, Any], needle: str) -> None:
    data = json.dumps({"job": Dated.job_name, "args": args}).encode()
    with pytest.raises(SerializationError, match="cannot|field") as caught:
        JsonSerializer().loads(data)
    assert needle in str(caught.value)


@dataclass
class Painted(Job):
    color: Color
    level: Level = Level.LOW

    def execute(self, queue: Any) -> None:
        return None


def test_an_enum_value_the_class_no_longer_has_is_named() -> None:
    data = json.dumps({"job": Painted.job_name, "args": {"color": "green"}}).encode()
    with pytest.raises(SerializationError, match="'green' is not a value of Color"):
        JsonSerializer().loads(data)


def test_results_keep_rich_types() -> None:
    serializer = JsonSerializer()
    value = {"at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), "id": uuid.UUID(int=9),
             "total": Decimal("3.30")}
    assert serializer.loads_result(serializer.dumps_result(value)) == value
