"""A payload written by another version of a job class: missing fields take the class's
defaults, a missing required field is a SerializationError naming it, a field the class
no longer declares is dropped with a warning. (tests/contract/test_deploy.py does the same
across two real class versions and a real worker process.)"""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass, field
from typing import Any

import pytest

from queue_core import Job, JsonSerializer, PickleSerializer, SerializationError


@dataclass
class Mail(Job):
    to: str
    cc: list[str] = field(default_factory=list)
    subject: str = "hello"

    def execute(self, queue: Any) -> str:
        return f"{self.to} {self.cc} {self.subject}"


@dataclass
class Address:
    street: str
    city: str = "Paris"


@dataclass
class Parcel(Job):
    to: Address
    weight: int = 1

    def execute(self, queue: Any) -> None:
        return None


class Invite(Job):
    to: str

    def __init__(self, to: str, lang: str = "en", seen: list[str] | None = None,
                 extra: dict[str, int] = {}) -> None:  # noqa: B006 - the case under test
        self.to = to
        self.lang = lang
        self.seen = seen
        self.extra = extra

    def execute(self, queue: Any) -> str:
        return f"{self.to} {self.lang}"


class Renamer(Job):
    def __init__(self, to: str) -> None:
        self.recipient = to.lower()

    def execute(self, queue: Any) -> str:
        return self.recipient


class Slotted(Job):
    __slots__ = ("value", "label")

    def __init__(self, value: int, label: str = "none") -> None:
        self.value = value
        self.label = label

    def execute(self, queue: Any) -> str:
        return f"{self.value} {self.label}"


def payload(job: type[Job], **args: Any) -> bytes:
    return json.dumps({"job": job.job_name, "args": args}).encode()


def load(data: bytes) -> Any:
    return JsonSerializer().loads(data)[0]


def test_a_missing_field_takes_its_default_and_its_default_factory() -> None:
    first, second = load(payload(Mail, to="a@x")), load(payload(Mail, to="b@x"))
    assert first == Mail("a@x") and first.execute(None) == "a@x [] hello"
    first.cc.append("boss@x")
    assert second.cc == [], "each job gets its own list from the factory"


def test_a_missing_required_field_is_named() -> None:
    with pytest.raises(SerializationError, match=r"required field 'to' is missing"):
        load(payload(Mail, cc=["x"]))


def test_a_field_the_class_no_longer_declares_is_dropped_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="queue_core.schema"):
        job = load(payload(Mail, to="a@x", priority_flag=True))
        again = load(payload(Mail, to="b@x", priority_flag=True))
    assert not hasattr(job, "priority_flag") and not hasattr(again, "priority_flag")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning per job type and field, not one per job"
    assert Mail.job_name in warnings[0] and "'priority_flag'" in warnings[0]


def test_a_nested_dataclass_takes_its_defaults_and_names_a_missing_field() -> None:
    assert load(payload(Parcel, to={"street": "Rue"})) == Parcel(Address("Rue"))
    with pytest.raises(SerializationError, match=r"'to\.street'"):
        load(payload(Parcel, to={"city": "Lyon"}))


def test_a_plain_class_takes_the_keyword_defaults_of_its_init() -> None:
    first, second = load(payload(Invite, to="a")), load(payload(Invite, to="b"))
    assert (first.lang, first.seen, first.extra) == ("en", None, {})
    first.extra["n"] = 1
    assert second.extra == {} and Invite.__init__.__defaults__[-1] == {}, \
        "a mutable default is copied, never shared"


def test_a_plain_class_annotated_field_taken_by_init_is_required() -> None:
    with pytest.raises(SerializationError, match=r"required field 'to'"):
        load(payload(Invite, lang="fr"))


def test_a_plain_class_whose_attributes_are_not_its_parameters_still_loads() -> None:
    """queue-core cannot know which attribute a parameter became: nothing is required."""
    job = load(JsonSerializer().dumps(Renamer("A@X")))
    assert job.execute(None) == "a@x" and not hasattr(job, "to")


def test_a_slotted_class_takes_defaults_and_drops_what_it_has_no_slot_for() -> None:
    job = load(payload(Slotted, value=3, gone="x"))
    assert job.execute(None) == "3 none"


def test_pickled_jobs_take_new_defaults_too() -> None:
    old = Mail.__new__(Mail)
    object.__setattr__(old, "to", "a@x")  # what an older version (no cc, no subject) pickled
    data = pickle.dumps((Mail.job_name, old, {}))
    job, _ = PickleSerializer().loads(data)
    assert job.execute(None) == "a@x [] hello"


def test_a_current_payload_is_not_changed_by_the_defaults() -> None:
    job = Mail("a@x", ["c@x"], "re")
    assert load(JsonSerializer().dumps(job)) == job
