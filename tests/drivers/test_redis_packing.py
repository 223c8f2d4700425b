"""The Redis driver's own RESP packing and its pipelined script calls, with no server.

``_pack``/``_bulk``/``_Script.call`` are checked byte for byte, against redis-py's packer
and hiredis's reader (independent implementations), with binary payloads. The pipelines
(pushes in chunks, the worker's deferred ack sent with its next fetch, NOSCRIPT) run
over a real redis-py connection whose socket is one end of a socketpair: the test writes
hand-made RESP replies and reads what the driver wrote. The driver does not parse RESP
itself (redis-py does); what it does with each kind of parsed reply is checked here."""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import threading
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest

redis = pytest.importorskip("redis", reason="redis-py is not installed")
hiredis = pytest.importorskip("hiredis", reason="hiredis is not installed")

from queue_core.drivers.redis import RedisDriver, _bulk, _pack, _Script  # noqa: E402
from queue_core.drivers.redis import scripts as lua  # noqa: E402

from queue_core import DriverError  # noqa: E402
from queue_core.consumer import Settlement, Verdict  # noqa: E402
from queue_core.driver import PushRequest  # noqa: E402
from tests.support.local import written  # noqa: E402

NOWHERE = "redis://127.0.0.1:1/0"
"""Only parsed: every connection the tests use is handed to the driver directly."""


def read_command(data: bytes) -> list[Any]:
    """``data`` read back by hiredis (an independent RESP reader): one whole command."""
    reader = hiredis.Reader()
    reader.feed(data)
    command = reader.gets()
    assert command is not False, "incomplete RESP"
    assert reader.gets() is False, "bytes left over after the command"
    return list(command)


def redis_py_pack(*args: Any) -> bytes:
    """The same command as redis-py's own packer writes it."""
    return b"".join(redis.connection.Connection(protocol=2).pack_command(*args))


# -- packing -------------------------------------------------------------------------


def test_simple_commands_byte_for_byte() -> None:
    assert _pack("PING") == b"*1\r\n$4\r\nPING\r\n"
    assert _pack("SET", "k", "v") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
    assert _pack("BLPOP", "qc:{mail}:n", "0.500") == (
        b"*3\r\n$5\r\nBLPOP\r\n$11\r\nqc:{mail}:n\r\n$5\r\n0.500\r\n")
    assert _pack("WAIT", 1, 250) == b"*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$3\r\n250\r\n"
    assert _pack() == b"*0\r\n"


BINARY = [b"", b"\r\n", b"a\r\nb", b"\x00", b"\x00\r\n\x00", bytes(range(256)),
          b"\xff\xfe\xc3(", b"$3\r\nfoo\r\n", b"*2\r\n", "é€𝄞".encode(), b"x" * 70000]


@pytest.mark.parametrize("payload", BINARY, ids=range(len(BINARY)))
def test_binary_payloads_go_as_they_are_with_their_length_in_bytes(payload: bytes) -> None:
    packed = _pack("EVALSHA", "sha", 0, payload)
    assert packed.endswith(b"$%d\r\n" % len(payload) + payload + b"\r\n")
    assert read_command(packed) == [b"EVALSHA", b"sha", b"0", payload]
    assert packed == redis_py_pack("EVALSHA", "sha", 0, payload)


ARGS: list[tuple[Any, bytes]] = [
    (0, b"0"), (-1, b"-1"), (42, b"42"), (2**64, b"18446744073709551616"),
    (1.5, b"1.5"), (60.0, b"60.0"), (1e-07, b"1e-07"), (-0.25, b"-0.25"),
    ("", b""), ("plain", b"plain"), ("é€", "é€".encode()), ("a b", b"a b"),
    (b"", b""), (b"raw", b"raw"),
]


@pytest.mark.parametrize("arg, sent", ARGS, ids=[repr(arg) for arg, _ in ARGS])
def test_ints_floats_strings_and_empty_arguments(arg: Any, sent: bytes) -> None:
    assert _bulk([arg]) == [b"$%d\r\n%s\r\n" % (len(sent), sent)]
    packed = _pack("CMD", arg, "end")
    assert read_command(packed) == [b"CMD", sent, b"end"]
    assert packed == redis_py_pack("CMD", arg, "end")


def test_many_arguments_in_one_command() -> None:
    args = [f"a{index}" if index % 3 else index for index in range(3000)]
    packed = _pack("RPUSH", "list", *args)
    assert packed.startswith(b"*3002\r\n$5\r\nRPUSH\r\n$4\r\nlist\r\n")
    assert read_command(packed) == [b"RPUSH", b"list", *(str(arg).encode() for arg in args)]


def test_a_script_call_is_evalsha_with_its_keys_then_the_arguments() -> None:
    script = _Script("return {KEYS[1], ARGV[1]}", keys=("qc:{c}:w", "qc:{c}:d"))
    script.prepare()
    assert script.sha == hashlib.sha1(b"return {KEYS[1], ARGV[1]}").hexdigest()
    call = script.call(["qc:{c}:", b"\x00payload\r\n", 7, 1.5])
    assert call == _pack("EVALSHA", script.sha, 2, "qc:{c}:w", "qc:{c}:d", "qc:{c}:",
                         b"\x00payload\r\n", 7, 1.5)
    assert read_command(call) == [b"EVALSHA", script.sha.encode(), b"2", b"qc:{c}:w",
                                  b"qc:{c}:d", b"qc:{c}:", b"\x00payload\r\n", b"7", b"1.5"]
    assert read_command(script.call([])) == [b"EVALSHA", script.sha.encode(), b"2",
                                             b"qc:{c}:w", b"qc:{c}:d"]


def test_every_script_of_a_driver_packs_its_keys_under_the_channel_hash_tag() -> None:
    driver = RedisDriver(NOWHERE, channel="mail", warn_persistence=False)
    for name, script in driver._scripts.items():
        command = read_command(script.call(["x"]))
        count = int(command[2])
        assert command[:2] == [b"EVALSHA", script.sha.encode()], name
        assert count == len(script.keys) > 0
        assert all(key.startswith(b"qc:{mail}:") for key in command[3:3 + count]), name
        assert command[3 + count:] == [b"x"]



def test_stored_names_keep_their_spelling_and_the_scripts_use_only_those_named() -> None:
    # Stored data of earlier versions uses these names: renaming one loses those jobs.
    assert (lua.ID_COUNTER, lua.JOB, lua.NOTIFY, lua.SET_KEYS) == (
        "id", "j:", "n", ("w", "d", "r", "done", "f"))
    assert (lua.UNIQUE, lua.UNIQUE_WINDOWS) == ("u", "ut")
    assert lua.FIELDS == ("p", "ttr", "pri", "pushed", "att", "run", "st", "fin", "err",
                          "res", "tok", "uk", "cx", "pg")
    sources = [lua.PUSH, lua.PUSH_UNIQUE, lua.RESERVE, lua.FINISH_START, lua.RELEASE,
               lua.FAIL, lua.REMOVE, lua.RETRY, lua.CLEAR, lua.CANCEL_JOB, lua.SET_PROGRESS,
               lua.OLDEST]
    used = set()
    for source in sources:
        for args in re.findall(r"redis\.p?call\('(?:HSET|HGET|HMGET|HDEL)',([^\n]*)", source):
            used.update(re.findall(r"'([a-z]+)'", args))
        assert "'j:'" in source or "KEYS[" in source
    assert used == set(lua.FIELDS)
    driver = RedisDriver(NOWHERE, channel="mail", warn_persistence=False)
    assert driver._key("000000000001") == "qc:{mail}:j:000000000001"
    assert set(driver._keys.values()) == {f"qc:{{mail}}:{name}" for name in (
        "id", "w", "d", "r", "done", "f", "n", "u", "ut")}


def test_every_lua_file_is_loaded_and_every_script_has_its_own_file() -> None:
    folder = resources.files("queue_core.drivers.redis") / "lua"
    files = {entry.name.removesuffix(".lua") for entry in folder.iterdir()
             if entry.name.endswith(".lua")}
    # No orphan: every file in lua/ is read by scripts.py (and so ships for a reason).
    assert files == set(lua.LOADED)
    driver = RedisDriver(NOWHERE, channel="mail", warn_persistence=False)
    sources = [script.source for script in driver._scripts.values()]
    for name, text in lua.LOADED.items():
        assert any(text in source for source in sources), f"lua/{name}.lua is in no script"
    # No script without a file: each ends with the file of its own name.
    for name, script in driver._scripts.items():
        assert name in files, f"the {name} script has no lua/{name}.lua"
        assert script.source.endswith(lua.LOADED[name]), name


# -- pipelines over a scripted connection --------------------------------------------


class Scripted:
    """A redis-py connection on a socketpair, logging each write and read the driver
    makes; the test writes the server's replies with ``reply`` and reads the client's
    bytes with ``sent``."""

    def __init__(self) -> None:
        self.client, self.server = socket.socketpair()
        client = self.client

        class Paired(redis.connection.Connection):  # type: ignore[misc]
            def _connect(self) -> socket.socket:
                return client

        self.conn = Paired(protocol=2, socket_timeout=5)
        self._handshake()
        self.events: list[str] = []
        real_send, real_read = self.conn.send_packed_command, self.conn.read_response

        def send(commands: list[bytes], check_health: bool = True) -> None:
            self.events.append("send")
            real_send(commands, check_health=check_health)

        def read(*args: Any, **kwargs: Any) -> Any:
            self.events.append("read")
            return real_read(*args, **kwargs)
        self.conn.send_packed_command = send
        self.conn.read_response = read
        self.released: list[Any] = []

    def _handshake(self) -> None:
        """Answer whatever redis-py says on connecting (CLIENT SETINFO) with +OK."""
        def answer() -> None:
            self.server.settimeout(0.3)
            try:
                while True:
                    data = self.server.recv(65536)
                    if not data:
                        return
                    self.server.sendall(b"+OK\r\n" * len(read_all(data)))
            except TimeoutError:
                return
        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        self.conn.connect()
        thread.join(5)
        self.server.settimeout(None)

    def reply(self, data: bytes) -> None:
        self.server.sendall(data)

    def sent(self) -> list[list[Any]]:
        """Every command written since the last call, as hiredis reads them."""
        data = written(self.server)
        return [list(command) for command in read_all(data)]

    def release(self, conn: Any) -> None:  # the pool the worker's connection came from
        self.released.append(conn)

    def close(self) -> None:
        self.conn.disconnect()
        self.server.close()


def read_all(data: bytes) -> list[Any]:
    reader = hiredis.Reader()
    reader.feed(data)
    out = []
    while (item := reader.gets()) is not False:
        out.append(item)
    return out


@pytest.fixture
def scripted() -> Iterator[tuple[Scripted, RedisDriver]]:
    made = Scripted()
    driver = RedisDriver(NOWHERE, channel="mail", warn_persistence=False,
                         lease_grace=1.0, prefetch_lease=10)
    # The producer's connection is the scripted one (and the worker's: see ``consumer``).
    driver._local.conn, driver._local.pool, driver._local.used = made.conn, made, 1e18
    yield made, driver
    made.close()


@pytest.fixture
def consumer(scripted: tuple[Scripted, RedisDriver]) -> Any:
    """A worker's consumer of the scripted driver, on the scripted connection."""
    made, driver = scripted
    opened: Any = driver.open_consumer()
    opened._conn, opened._conn_pool = made.conn, made
    return opened


def _begun(consumer: Any, settle: list[Settlement] | None = None) -> Any:
    """The next job, fetched alone (carrying ``settle``) and begun, as a worker does."""
    (message,) = consumer.fetch(1, 0, settle or [])
    consumer.begin(message)
    return message


def _requests(count: int, ttr: float = 60.0) -> list[PushRequest]:
    return [PushRequest(b"job-%d\r\n\x00" % index, ttr, 0.0, None) for index in range(count)]


def test_pushed_chunks_all_go_out_before_any_reply_is_read(
        scripted: tuple[Scripted, RedisDriver]) -> None:
    peer, driver = scripted
    requests = _requests(2500)
    peer.reply(b":1000\r\n:2000\r\n$4\r\n2500\r\n")  # the last as a bulk string
    ids = driver.push_many(requests)
    assert ids == [f"{number:012d}" for number in range(1, 2501)]
    assert peer.events == ["send"] * 3 + ["read"] * 3
    sent = peer.sent()
    push = driver._scripts["push"]
    assert [command[:2] for command in sent] == [[b"EVALSHA", push.sha.encode()]] * 3
    keys = len(push.keys)
    # One call per chunk of 1,000, each with the shared settings once, then its payloads.
    assert [len(command) - 3 - keys - 5 for command in sent] == [1000, 1000, 500]
    assert sent[2][3 + keys + 5:] == [r.payload for r in requests[2000:]]
    assert sent[0][3 + keys:3 + keys + 5] == [b"qc:{mail}:", b"1", b"60.0", b"1024", b"0"]


def test_a_noscript_reply_in_a_pipeline_is_run_again_with_eval_in_order(
        scripted: tuple[Scripted, RedisDriver], caplog: pytest.LogCaptureFixture) -> None:
    peer, driver = scripted
    peer.reply(b":1000\r\n-NOSCRIPT No matching script. Please use EVAL.\r\n:2500\r\n"
               b":2000\r\n")
    with caplog.at_level(logging.INFO):
        ids = driver.push_many(_requests(2500))
    assert ids == [f"{number:012d}" for number in range(1, 2501)]
    assert peer.events == ["send"] * 3 + ["read"] * 3 + ["send", "read"]
    sent = peer.sent()
    push = driver._scripts["push"]
    assert sent[3][:3] == [b"EVAL", push.source.encode(), str(len(push.keys)).encode()]
    assert sent[3][3:] == sent[1][3:]  # the same keys and arguments as the call refused
    assert "NOSCRIPT" in caplog.text


def test_an_error_reply_fails_the_push_after_reading_every_reply(
        scripted: tuple[Scripted, RedisDriver]) -> None:
    peer, driver = scripted
    peer.reply(b":1000\r\n-ERR user_script:1: Script attempted to access a non local key\r\n"
               b":2500\r\n")
    with pytest.raises(DriverError, match="the push script failed: user_script:1: Script "
                       "attempted"):
        driver.push_many(_requests(2500))
    assert peer.events == ["send"] * 3 + ["read"] * 3
    assert driver._local.conn is None  # dropped, although it was left in step


def test_a_single_push_reads_an_integer_reply(scripted: tuple[Scripted, RedisDriver]) -> None:
    peer, driver = scripted
    peer.reply(b":41\r\n")
    assert driver.push(b"\xff\x00\r\n", ttr=2.5, delay=1.25, priority=7) == "000000000041"
    (command,) = peer.sent()
    push = driver._scripts["push"]
    assert command[3 + len(push.keys):] == [b"qc:{mail}:", b"1", b"2.5", b"7", b"1250",
                                            b"\xff\x00\r\n"]


def _reserve_reply(*jobs: list[bytes], now: int = 1_700_000_000_000, due: bytes = b":-1",
                   damaged: list[bytes] | None = None) -> bytes:
    """RESERVE's reply as Redis writes it: server time, jobs (nested arrays of bulk
    strings), the next due time, damaged records."""
    out = [b"*4\r\n:%d\r\n*%d\r\n" % (now, len(jobs))]
    for job in jobs:
        out.append(b"*%d\r\n" % len(job))
        out += [b"$%d\r\n%s\r\n" % (len(field), field) for field in job]
    out.append(due + b"\r\n")
    damaged = damaged or []
    out.append(b"*%d\r\n" % len(damaged))
    out += [b"$%d\r\n%s\r\n" % (len(field), field) for field in damaged]
    return b"".join(out)


JOB_1 = [b"000000000001", b"{\"x\": 1}\r\n\x00", b"60", b"1024", b"1699999999000", b"0", b"0"]
FINISH_OK = b"*2\r\n:1\r\n:1\r\n"


def test_the_deferred_ack_goes_out_with_the_next_reserve_and_replies_match_in_order(
        scripted: tuple[Scripted, RedisDriver], consumer: Any) -> None:
    peer, driver = scripted
    peer.reply(_reserve_reply(JOB_1))
    message = _begun(consumer)
    assert (message.id, message.payload, message.attempt, message.ttr) == (
        "000000000001", b"{\"x\": 1}\r\n\x00", 1, 60.0)
    # The reserve was a round trip; the start of the job went out without waiting.
    assert peer.events == ["send", "read", "send"]
    reserve, start = peer.sent()
    assert reserve[1] == driver._scripts["reserve"].sha.encode()
    assert start[1] == driver._scripts["finish_start"].sha.encode()
    # ARGV ends with the start id, token and attempts, then the retention of kept done
    # jobs (none set: two empty strings).
    assert start[-5:-3] == [b"000000000001", message.handle.token.encode()]
    assert start[-2:] == [b"", b""]

    owed = [Settlement(Verdict.ACK, message)]
    peer.events.clear()
    peer.reply(FINISH_OK + FINISH_OK + _reserve_reply(due=b"$2\r\n-1"))
    assert consumer.fetch(1, 0, owed) == []
    # The ack and the next reserve are written before any reply is read; the start's
    # reply still owed is read first, then the ack's, then the reserve's.
    assert peer.events == ["send", "send", "read", "read", "read"]
    ack, again = peer.sent()
    assert ack[1] == driver._scripts["finish_start"].sha.encode()
    assert b"000000000001" in ack and again[1] == driver._scripts["reserve"].sha.encode()
    assert not consumer._pending and not consumer._unconfirmed


def test_jobs_begun_together_go_out_in_one_write_each_carrying_one_kept_ack(
        scripted: tuple[Scripted, RedisDriver], consumer: Any) -> None:
    peer, driver = scripted
    jobs = [[b"%012d" % n, *JOB_1[1:]] for n in (1, 2, 3, 4, 5)]
    peer.reply(_reserve_reply(*jobs[:2]))
    done = consumer.fetch(2, 0)
    assert consumer.begin_many(done) == [True, True]
    peer.sent()
    peer.events.clear()
    peer.reply(FINISH_OK * 2 + _reserve_reply(*jobs[2:]))
    fetched = consumer.fetch(3, 0)
    peer.sent()
    peer.events.clear()
    owed = [Settlement(Verdict.ACK, message) for message in done]
    assert consumer.begin_many(fetched, owed) == [True, True, True]
    assert peer.events == ["send"]  # three starts, one write, no reply awaited
    starts = peer.sent()
    finish_start = driver._scripts["finish_start"]
    assert [start[1] for start in starts] == [finish_start.sha.encode()] * 3
    argv = [start[3 + len(finish_start.keys):] for start in starts]
    # ARGV: prefix, grace, ack id, ack token, keep, result, start id, start token, attempts,
    # retention max count, retention max age
    assert [a[2] for a in argv] == [b"000000000001", b"000000000002", b""]
    assert [a[6] for a in argv] == [b"000000000003", b"000000000004", b"000000000005"]
    assert all(a[7] == fetched[0].handle.token.encode() for a in argv)
    assert [a[3] for a in argv[:2]] == [m.handle.token.encode() for m in done]


def test_noscript_on_deferred_calls_loads_the_scripts_and_sends_them_again_in_order(
        scripted: tuple[Scripted, RedisDriver], consumer: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    peer, driver = scripted
    peer.reply(_reserve_reply(JOB_1))
    message = _begun(consumer)
    owed = [Settlement(Verdict.ACK, message)]
    peer.sent()
    noscript = b"-NOSCRIPT No matching script. Please use EVAL.\r\n"
    loaded = b"".join(b"$40\r\n%s\r\n" % script.sha.encode()
                      for script in driver._scripts.values())
    peer.reply(noscript * 3 + loaded + FINISH_OK + FINISH_OK + _reserve_reply())
    with caplog.at_level(logging.WARNING):
        assert consumer.fetch(1, 0, owed) == []
    assert "lost the queue's scripts (NOSCRIPT)" in caplog.text
    sent = peer.sent()
    names = {script.sha.encode(): name for name, script in driver._scripts.items()}
    sources = {script.source.encode(): name for name, script in driver._scripts.items()}
    shown = [names[command[1]] if command[0] == b"EVALSHA" else
             f"load {sources[command[2]]}" for command in sent]
    assert shown == ["finish_start", "reserve", *(f"load {name}" for name in driver._scripts),
                     "finish_start", "finish_start", "reserve"]
    assert sent[-2] == sent[0] and sent[-1] == sent[1]  # the same calls, sent again
    assert consumer._unconfirmed == []


def test_an_error_reply_to_a_deferred_call_is_a_driver_error_naming_the_script(
        scripted: tuple[Scripted, RedisDriver], consumer: Any) -> None:
    peer, driver = scripted
    peer.reply(_reserve_reply(JOB_1))
    message = _begun(consumer)
    peer.reply(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
    with pytest.raises(DriverError, match="the finish_start script failed: WRONGTYPE Operation "
                       "against a key holding the wrong kind"):
        consumer.release(message, delay=0, error=None)
    assert consumer._conn is None and peer.released == [peer.conn]


def test_damaged_records_in_a_reserve_reply_are_logged_and_skipped(
        scripted: tuple[Scripted, RedisDriver], consumer: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    peer, driver = scripted
    peer.reply(_reserve_reply(damaged=[b"000000000009", b"no payload"])
               + _reserve_reply(JOB_1))
    with caplog.at_level(logging.ERROR):
        message = _begun(consumer)
    assert message.id == "000000000001"
    assert "job 000000000009 is damaged in the store: no payload" in caplog.text


def test_null_bulk_fields_of_a_job_are_kept_as_read_for_the_core_to_fail(
        scripted: tuple[Scripted, RedisDriver], consumer: Any) -> None:
    peer, driver = scripted
    reply = _reserve_reply([b"000000000003", b"{}", b"60", b"1", b"1", b"0", b"0"])
    # The ttr and the attempt count of the job as nulls ($-1), as a damaged hash reads.
    reply = reply.replace(b"$2\r\n60\r\n", b"$-1\r\n")
    reply = reply.replace(b"$1\r\n0\r\n", b"$-1\r\n", 1)
    peer.reply(reply)
    message = _begun(consumer)
    assert (message.id, message.payload, message.ttr, message.attempt) == (
        "000000000003", b"{}", None, None)
