"""create_queue: settings dicts and URLs, and the errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest
from queue_core.drivers.file import FileDriver
from queue_core.drivers.sync import SyncDriver

from queue_core import (
    Backoff,
    ConfigError,
    JsonSerializer,
    PickleSerializer,
    Queue,
    create_queue,
)
from queue_core.settings import queue_from_target, redact_url

CALLS: list[str] = []


def handler(event) -> None:
    CALLS.append(type(event).__name__)


def test_a_url_alone_is_a_valid_setting(tmp_path: Path) -> None:
    queue = create_queue(f"file://{tmp_path}/q")
    assert isinstance(queue.driver, FileDriver)
    assert queue.driver.root == tmp_path / "q" / "queue"
    assert queue.ttr == 300 and queue.attempts == 1


def test_a_full_settings_dict(tmp_path: Path) -> None:
    queue = create_queue({
        "driver": {"url": f"file://{tmp_path}/q", "poll_interval": 0.5},
        "channel": "mail", "ttr": 60, "attempts": 5, "age_limit": 3600,
        "backoff": {"type": "exponential", "delay": 2}, "serializer": "pickle",
        "keep_completed": True, "keep_failed": False, "imports": ["tests.support.jobs"],
        "events": {"after_error": "tests.unit.test_settings:handler",
                   "before_push": [handler, "tests.unit.test_settings.handler"]},
    })
    assert queue.driver.channel == "mail" and queue.driver.poll_interval == 0.5
    assert (queue.ttr, queue.attempts, queue.age_limit) == (60, 5, 3600)
    assert queue.backoff == Backoff.exponential(2)
    assert isinstance(queue.serializer, PickleSerializer)
    assert queue.keep_completed and not queue.keep_failed
    assert queue.imports == ["tests.support.jobs"]
    assert queue.has_handlers("after_error") and queue.has_handlers("before_push")


def test_driver_as_a_class_path_or_an_instance() -> None:
    queue = create_queue({"driver": {"class": "queue_core.drivers.sync.SyncDriver"},
                          "channel": "c"})
    assert isinstance(queue.driver, SyncDriver) and queue.driver.channel == "c"
    driver = SyncDriver()
    assert create_queue({"driver": driver}).driver is driver


def test_the_default_is_the_embedded_file_driver(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    queue = create_queue({})
    assert isinstance(queue.driver, FileDriver)
    assert queue.driver.root.resolve() == (tmp_path / "queue-data" / "queue").resolve()


@pytest.mark.parametrize("settings, key", [
    ({"driver": "sync://", "tttr": 5}, "tttr"),
    ({"driver": "sync://", "ttr": -1}, "ttr"),
    ({"driver": "sync://", "ttr": 0}, "ttr"),
    ({"driver": "sync://", "ttr": "300"}, "ttr"),
    ({"driver": "sync://", "attempts": 0}, "attempts"),
    ({"driver": "sync://", "attempts": 2.5}, "attempts"),
    ({"driver": "sync://", "age_limit": -5}, "age_limit"),
    ({"driver": "nosuch://host"}, "driver"),
    ({"driver": "no-scheme-here"}, "driver"),
    ({"driver": 42}, "driver"),
    ({"driver": {"path": "/tmp"}}, "driver"),
    ({"driver": {"class": "os.path"}}, "driver.class"),
    ({"driver": {"class": "nosuchmodule.Driver"}}, "driver.class"),
    ({"driver": "sync://", "channel": "bad channel!"}, "channel"),
    ({"driver": "sync://", "serializer": "yaml"}, "serializer"),
    ({"driver": "sync://", "keep_completed": "yes"}, "keep_completed"),
    ({"driver": "sync://", "events": {"after_eror": handler}}, "events.after_eror"),
    ({"driver": "sync://", "events": {"after_error": "tests.unit.test_settings:nope"}},
     "events.after_error"),
    ({"driver": "sync://", "events": {"after_error": 5}}, "events.after_error"),
    ({"driver": "sync://", "imports": [1]}, "imports"),
    ({"driver": "sync://", "backoff": {"type": "nope"}}, "backoff.type"),
    ({"driver": "file:///tmp/x?fsink=1"}, "driver.fsink"),
])
def test_bad_settings_raise_config_error_naming_the_key(settings, key) -> None:
    with pytest.raises(ConfigError) as caught:
        create_queue(settings)
    assert caught.value.key == key, caught.value
    assert key.split(".")[-1] in str(caught.value)


def test_settings_must_be_a_dict_or_a_url() -> None:
    with pytest.raises(ConfigError, match="settings must be a dict"):
        create_queue(42)  # type: ignore[arg-type]


def test_imports_that_fail_are_reported_when_the_worker_starts() -> None:
    queue = create_queue({"driver": "sync://", "imports": ["no_such_module_xyz"]})
    with pytest.raises(ConfigError, match="no_such_module_xyz") as caught:
        queue.run()
    assert caught.value.key == "imports"


def test_passwords_never_appear_in_messages() -> None:
    with pytest.raises(ConfigError) as caught:
        create_queue("nosuch://user:s3cret@host/0")
    assert "s3cret" not in str(caught.value)
    assert redact_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"


def test_app_targets(tmp_path: Path) -> None:
    assert isinstance(queue_from_target("tests.unit.test_settings:SYNC_URL"), Queue)
    assert isinstance(queue_from_target("tests.unit.test_settings:SETTINGS"), Queue)
    assert isinstance(queue_from_target("tests.unit.test_settings:factory"), Queue)
    with pytest.raises(ConfigError, match="is not a Queue"):
        queue_from_target("tests.unit.test_settings:CALLS")
    with pytest.raises(ConfigError, match="has no attribute"):
        queue_from_target("tests.unit.test_settings:missing")


SYNC_URL = "sync://"
SETTINGS = {"driver": "sync://", "ttr": 10}


def factory() -> Queue:
    return Queue(SyncDriver(), serializer=JsonSerializer())
