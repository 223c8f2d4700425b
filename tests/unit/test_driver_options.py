"""Driver options: one parser and one set of checks (queue_core.options) for every driver's
URL and settings, each option documented in its driver's Parameters block, and driver
commands (``db init``) that the driver declares rather than the core."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from queue_core.drivers.amqp import AmqpDriver, AmqpQuorumDriver
from queue_core.drivers.beanstalk import BeanstalkDriver
from queue_core.drivers.db import DbDriver
from queue_core.drivers.file import FileDriver
from queue_core.drivers.redis import RedisDriver
from queue_core.drivers.sync import SyncDriver

from queue_core import ConfigError
from queue_core import options as opts
from tests.support.procs import ROOT

DRIVERS = [SyncDriver, FileDriver, DbDriver, RedisDriver, BeanstalkDriver, AmqpDriver,
           AmqpQuorumDriver]


def documented_names(cls: type) -> list[str]:
    """The names of the numpy-style Parameters block of the class's docstring."""
    doc = inspect.getdoc(cls) or ""
    match = re.search(r"^Parameters\n-{10,}\n(.*?)(?:\n\n\S|\Z)", doc, re.S | re.M)
    assert match, f"{cls.__name__} has no Parameters block"
    return re.findall(r"^(\w+) : ", match.group(1), re.M)


@pytest.mark.parametrize("cls", DRIVERS, ids=lambda cls: cls.__name__)
def test_every_declared_option_is_documented_and_nothing_else(cls: Any) -> None:
    declared = [option.name for option in cls.options]
    assert declared, f"{cls.__name__} declares no options"
    assert len(set(declared)) == len(declared), "an option is declared twice"
    assert documented_names(cls) == declared
    for option in cls.options:
        assert option.help.strip(), f"{cls.__name__}.{option.name} has no help"


@pytest.mark.parametrize("cls", DRIVERS, ids=lambda cls: cls.__name__)
def test_the_constructor_takes_exactly_the_declared_options(cls: Any) -> None:
    parameters = inspect.signature(cls.__init__).parameters
    named = [name for name, p in parameters.items()
             if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD]
    more = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    declared = {option.name: option for option in cls.options}
    for name in named:
        assert name in declared, f"{cls.__name__}({name}=) is not declared"
        assert declared[name].where != opts.URL, f"{name} is a parameter, not URL-only"
    for option in cls.options:
        if option.where != opts.URL and option.name not in named:
            assert more, f"{cls.__name__} cannot take {option.name}="


# -- the parser --------------------------------------------------------------------------

SPEC = (
    opts.CHANNEL,
    opts.LEASE_GRACE,
    opts.Option("fsync", opts.FLAG, False, "a flag"),
    opts.Option("size", opts.whole(1, 10), 5, "a whole number"),
    opts.Option("ratio", opts.number(0, 1), 0.5, "a number"),
    opts.Option("wait", opts.seconds(0, above=True), 1.0, "seconds above 0"),
    opts.Option("mode", opts.octal_mode(lambda mode: mode & 0o600 == 0o600, "owner rw"),
                0o600, "permissions"),
    opts.Option("name", opts.text(), None, "text", none=True),
    opts.Option("kind", opts.choice("a", "b"), "a", "a choice"),
    opts.Option("hosts", opts.hosts("a non-empty list of hosts"), None, "hosts",
                opts.SETTINGS),
    opts.Option("args", opts.mapping(), None, "a dict", opts.SETTINGS),
    opts.Option("client", opts.text(), None, "the client's", opts.URL, passed_on=True),
    opts.Option("path", opts.text(), None, "the address", opts.ADDRESS),
)


def parse(query: str) -> dict[str, Any]:
    return opts.parse_query("test", SPEC, query)


def check(**values: Any) -> dict[str, Any]:
    return opts.check_options("test", SPEC, values)


def refused(call: Any, *args: Any, **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_an_unknown_option_is_refused_listing_the_known_ones() -> None:
    error = refused(parse, "fsink=1")
    assert error.key == "driver.fsink"
    assert "'fsink' is not known" in str(error)
    assert "fsync" in str(error) and "lease_grace" in str(error) and "client" in str(error)
    assert "hosts" not in str(error)  # not something a URL can give
    error = refused(check, fsink=True)
    assert error.key == "driver.fsink" and "fsync" in str(error) and "hosts" in str(error)
    assert "client" not in str(error)  # only a URL gives it


def test_where_an_option_may_be_given() -> None:
    assert refused(parse, "hosts=a,b").key == "driver.hosts"
    assert refused(parse, "args=x").key == "driver.args"
    assert refused(parse, "path=/x").key == "driver.path"
    assert refused(check, client="x").key == "driver.client"
    assert refused(check, path="/x").key == "driver.path"
    assert parse("client=x") == {"client": "x"}
    error = refused(parse, "size=2&size=3")
    assert error.key == "driver.size" and "twice" in str(error)


@pytest.mark.parametrize("text", ["1", "true", "True", "yes", "on", "ON", " on "])
def test_flag_texts_for_true(text: str) -> None:
    assert parse(f"fsync={text}") == {"fsync": True}


@pytest.mark.parametrize("text", ["0", "false", "no", "off", "OFF"])
def test_flag_texts_for_false(text: str) -> None:
    assert parse(f"fsync={text}") == {"fsync": False}


@pytest.mark.parametrize("text", ["", "maybe", "2", "y", "enabled"])
def test_other_flag_texts_are_refused(text: str) -> None:
    error = refused(parse, f"fsync={text}")
    assert error.key == "driver.fsync" and "true or false" in str(error)


@pytest.mark.parametrize("value", [1, 0, "yes", "true", None])
def test_a_flag_in_settings_is_a_bool(value: Any) -> None:
    assert check(fsync=True) == {"fsync": True}
    error = refused(check, fsync=value)
    assert error.key == "driver.fsync" and f"got {value!r}" in str(error)


def test_numbers() -> None:
    assert parse("ratio=0.25&wait=2&lease_grace=0") == {"ratio": 0.25, "wait": 2.0,
                                                        "lease_grace": 0.0}
    assert check(ratio=1, wait=0.5) == {"ratio": 1.0, "wait": 0.5}
    assert isinstance(check(ratio=1)["ratio"], float)
    assert "is not a number" in str(refused(parse, "ratio=half"))
    for query in ("ratio=1.5", "ratio=-0.1", "wait=0", "wait=-1", "wait=nan", "wait=inf",
                  "lease_grace=-1"):
        error = refused(parse, query)
        assert error.key == f"driver.{query.split('=')[0]}"
        assert " must be " in str(error), str(error)
    for name, value in (("wait", 0), ("wait", True), ("wait", "2"), ("ratio", float("nan")),
                        ("lease_grace", -0.5), ("lease_grace", None)):
        assert refused(check, **{name: value}).key == f"driver.{name}"


def test_whole_numbers() -> None:
    assert parse("size=3") == {"size": 3} and parse("size=3.0") == {"size": 3}
    assert check(size=10) == {"size": 10}
    assert "is not a number" in str(refused(parse, "size=three"))
    for query in ("size=3.5", "size=0", "size=11"):
        assert "size must be a whole number from 1 to 10" in str(refused(parse, query))
    for value in (3.0, True, "3", 0):
        assert refused(check, size=value).key == "driver.size"


def test_octal_mode() -> None:
    assert parse("mode=660") == {"mode": 0o660}
    assert check(mode=0o640) == {"mode": 0o640}
    assert "octal" in str(refused(parse, "mode=rw"))
    assert "owner rw" in str(refused(parse, "mode=400"))
    assert refused(check, mode="660").key == "driver.mode"


def test_text_choice_hosts_and_mappings() -> None:
    assert parse("name=x&kind=b") == {"name": "x", "kind": "b"}
    assert check(name=None) == {"name": None}  # none=True: the library's default
    assert refused(parse, "name=").key == "driver.name"
    assert refused(check, name=5).key == "driver.name"
    assert "'a' or 'b'" in str(refused(parse, "kind=c"))
    assert check(hosts=["a:1", "b"]) == {"hosts": ["a:1", "b"]}
    for value in ("a,b", [], {"a": 1}):
        assert "non-empty list" in str(refused(check, hosts=value))
    assert check(args={"x": 1}) == {"args": {"x": 1}}
    assert refused(check, args=[("x", 1)]).key == "driver.args"


def test_the_channel_is_checked_by_check_channel() -> None:
    assert parse("channel=mail.v2") == {"channel": "mail.v2"}
    assert refused(parse, "channel=bad!").key == "channel"
    assert refused(check, channel="").key == "channel"


def test_redact_url_moved_and_still_importable_from_settings() -> None:
    from queue_core.settings import redact_url
    assert redact_url is opts.redact_url
    assert opts.redact_url("amqp://u:s3cret@h/v") == "amqp://u:***@h/v"


# -- the same option behaves the same in every driver's URL -----------------------------

def _urls(tmp_path: Path) -> dict[str, str]:
    return {"file": f"file://{tmp_path}/f", "db": f"sqlite:///{tmp_path}/q.db",
            "redis": "redis://127.0.0.1:6379/0", "beanstalk": "beanstalk://127.0.0.1:11300",
            "amqp": "amqp://guest:guest@127.0.0.1:5672/%2F"}


def _from_url(url: str, query: str, **given: Any) -> Any:
    from queue_core.settings import driver_class_for_url
    joined = f"{url}{'&' if '?' in url else '?'}{query}"
    return driver_class_for_url(url).from_url(joined, **given)


LEASED = ["file", "db", "redis", "beanstalk", "amqp"]


@pytest.mark.parametrize("driver", LEASED)
def test_lease_grace_is_one_rule_everywhere(driver: str, tmp_path: Path) -> None:
    url = _urls(tmp_path)[driver]
    made = _from_url(url, "lease_grace=0.5")
    try:
        assert made.lease_grace == 0.5
    finally:
        made.close()
    for bad in ("on", "-1", "nan", "soon"):
        assert refused(_from_url, url, f"lease_grace={bad}").key == "driver.lease_grace"
    for value in (-1, "0.5", True, None):
        assert refused(_from_url, url, "", lease_grace=value).key == "driver.lease_grace"


@pytest.mark.parametrize("driver", ["sync", *LEASED])
def test_channel_and_unknown_options_are_one_rule_everywhere(driver: str,
                                                             tmp_path: Path) -> None:
    url = {"sync": "sync://", **_urls(tmp_path)}[driver]
    made = _from_url(url, "channel=mail")
    try:
        assert made.channel == "mail"
    finally:
        made.close()
    assert refused(_from_url, url, "channel=bad!").key == "channel"
    error = refused(_from_url, url, "colour=blue")
    assert error.key == "driver.colour" and "'colour' is not known" in str(error)
    assert "channel" in str(error.args[0]).rpartition("known")[2]
    error = refused(_from_url, url, "", colour="blue")
    assert error.key == "driver.colour" and "channel" in str(error)


@pytest.mark.parametrize(("driver", "flag"), [("file", "fsync"), ("db", "create_table"),
                                              ("redis", "warn_persistence")])
def test_flags_read_the_same_everywhere(driver: str, flag: str, tmp_path: Path) -> None:
    url = _urls(tmp_path)[driver]
    attribute = {"create_table": "_create_table"}.get(flag, flag)
    for text, value in (("on", True), ("yes", True), ("off", False), ("0", False)):
        made = _from_url(url, f"{flag}={text}")
        try:
            assert getattr(made, attribute) is value, (text, value)
        finally:
            made.close()
    assert refused(_from_url, url, f"{flag}=maybe").key == f"driver.{flag}"
    assert refused(_from_url, url, "", **{flag: "yes"}).key == f"driver.{flag}"


def test_beanstalk_takes_its_options_in_the_url() -> None:
    driver = BeanstalkDriver.from_url("beanstalk://h:11301?connect_timeout=2&lease_grace=3")
    assert (driver.connect_timeout, driver.lease_grace) == (2.0, 3.0)
    assert refused(BeanstalkDriver.from_url, "beanstalk://h?connect_timeout=0").key == (
        "driver.connect_timeout")


def test_client_library_options_are_checked_then_passed_on(tmp_path: Path) -> None:
    plain = RedisDriver.from_url("redis://127.0.0.1:6379/0?socket_keepalive=off"
                                 "&socket_timeout=3&db=2")
    kwargs = plain._connector.client.connection_pool.connection_kwargs
    assert (kwargs["socket_keepalive"], kwargs["socket_timeout"], kwargs["db"]) == (
        False, 3.0, 2)
    given = RedisDriver.from_url("redis://127.0.0.1:6379/0?socket_timeout=3",
                                 socket_timeout=4)
    assert given._connector.client.connection_pool.connection_kwargs["socket_timeout"] == 4
    assert refused(RedisDriver.from_url,
                   "redis://127.0.0.1:6379/0?socket_timeout=soon").key == (
        "driver.socket_timeout")
    assert refused(RedisDriver, "redis://127.0.0.1:6379/0", db=-1).key == "driver.db"
    amqp = AmqpDriver.from_url("amqp://h/%2F?heartbeat=7&prefetch=3")
    assert (amqp.heartbeat, amqp.prefetch) == (7, 3)
    assert refused(AmqpDriver.from_url, "amqp://h/%2F?heartbeat=often").key == (
        "driver.heartbeat")
    db = DbDriver.from_url(f"sqlite:///{tmp_path}/q.db?timeout=5&table=jobs")
    assert db.engine.url.query == {"timeout": "5"} and db.table == "jobs"
    error = refused(DbDriver.from_url, f"sqlite:///{tmp_path}/q.db?sslmod=require")
    assert error.key == "driver.sslmod" and "sslmode" in str(error)
    error = refused(DbDriver, f"sqlite:///{tmp_path}/q.db", pool_sise=3)
    assert error.key == "driver.pool_sise" and "pool_size" in str(error)
    assert refused(DbDriver, f"sqlite:///{tmp_path}/q.db", pool_size=-3).key == (
        "driver.pool_size")


# -- driver-owned commands -------------------------------------------------------------

def test_the_cli_knows_no_driver_and_registers_the_db_drivers_commands() -> None:
    import queue_core.cli as cli
    source = Path(cli.__file__).read_text()
    assert "ddl" not in source and "create_table" not in source and '"db"' not in source
    commands = cli.driver_commands()
    assert [(c.group, c.name) for c in commands] == [("db", "init")]
    assert commands[0] in DbDriver.cli_commands
    parser = cli.build_parser()
    args = parser.parse_args(["db", "init", "--sql"])
    assert args.handler is DbDriver.cli_commands[0].run and args.sql is True


def test_a_core_command_does_not_import_the_driver_modules() -> None:
    code = ("import sys\nfrom queue_core.cli import build_parser\n"
            "build_parser(['--app', 'pkg.mod:queue', 'exec', '--report-fd', '3'])\n"
            "print(sorted(m for m in sys.modules if m.startswith('queue_core.drivers.')))\n"
            "build_parser(['--app', 'pkg.mod:queue', 'db', 'init'])\n"
            "print('queue_core.drivers.db' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "True"]
