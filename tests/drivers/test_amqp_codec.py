"""The AMQP 0-9-1 codec of the amqp driver's Wire, with no broker: frames out (publish,
content split to frame_max, acks, heartbeats), frames in from a socketpair (deliveries,
returns, confirms, closes, and broken frames), field tables and basic properties against
hand-built bytes with the spec's type letters, short string limits, and the connection
handshake against a scripted peer.

pika is used only to build the peer's bytes and as an independent encoder to compare
with; every assertion is about what the amqp codec and connection themselves write or read."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

pika = pytest.importorskip("pika", reason="pika is not installed (pip install -e '.[amqp]')")

from queue_core.drivers.amqp import connection  # noqa: E402
from queue_core.drivers.amqp.codec import (  # noqa: E402
    CONTENT_HEAD,
    FRAME_OVERHEAD,
    decode_properties,
    decode_table,
    encode_properties,
    encode_table,
    fit_properties,
    properties_head,
    shortstr,
)
from queue_core.drivers.amqp.connection import (  # noqa: E402
    WORK,
    Delivery,
    ProbeError,
    Wire,
    WireError,
)

from tests.support.local import written  # noqa: E402

NOWHERE = "amqp://guest:guest@127.0.0.1:1/%2F"
"""Parameters only: nothing ever connects to this address."""


# -- bytes built by hand, as the spec lays them out -------------------------------------


def frame(kind: int, channel: int, payload: bytes) -> bytes:
    """type octet, channel short, size long, payload, frame-end 0xCE (spec 2.3.5)."""
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def method(channel: int, method_obj: Any) -> bytes:
    return bytes(pika.frame.Method(channel, method_obj).marshal())


def short(text: str) -> bytes:
    data = text.encode()
    return bytes((len(data),)) + data


def deliver(tag: int, routing_key: str = "jobs", redelivered: bool = False,
            channel: int = WORK) -> bytes:
    """basic.deliver (60, 60): consumer-tag, delivery-tag, redelivered, exchange, key."""
    payload = (struct.pack(">HH", 60, 60) + short("ctag") + struct.pack(">Q", tag)
               + bytes((1 if redelivered else 0,)) + short("") + short(routing_key))
    return frame(1, channel, payload)


def header(body_size: int, properties: bytes, channel: int = WORK) -> bytes:
    return frame(2, channel, struct.pack(">HHQ", 60, 0, body_size) + properties)


def body_frames(body: bytes, step: int, channel: int = WORK) -> bytes:
    return b"".join(frame(3, channel, body[at:at + step]) for at in range(0, len(body), step))


def split_frames(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, channel, payload) of each frame in ``data``, checking sizes and end octets."""
    frames = []
    pos = 0
    while pos < len(data):
        kind, channel, size = struct.unpack_from(">BHI", data, pos)
        payload = data[pos + 7:pos + 7 + size]
        assert len(payload) == size, "frame cut short"
        assert data[pos + 7 + size:pos + 8 + size] == b"\xce", "frame-end octet missing"
        frames.append((kind, channel, payload))
        pos += 8 + size
    return frames


def table(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return struct.pack(">I", len(body)) + body


def same_kind(got: Any, expected: Any) -> bool:
    """The same type (pika reads 64-bit integers as its own int subclass); a bool is not
    an int here, nor an int a float."""
    if type(expected) is int:
        return isinstance(got, int) and not isinstance(got, bool)
    return type(got) is type(expected)


def props_bytes(**fields: Any) -> bytes:
    """Basic properties as pika (an independent encoder) writes them."""
    return b"".join(pika.spec.BasicProperties(**fields).encode())


# -- a Wire on a socketpair -----------------------------------------------------------


class Peer:
    """The broker's end of a socketpair; the Wire under test holds the other end."""

    def __init__(self, url: str = NOWHERE, frame_max: int = 131072) -> None:
        self.client, self.server = socket.socketpair()
        self.wire = Wire(pika.URLParameters(url), heartbeat=0, connect_timeout=2,
                         rpc_timeout=2, name="test")
        self.wire.sock = self.client
        self.wire.frame_max = frame_max
        self.wire.header_room = frame_max - FRAME_OVERHEAD - CONTENT_HEAD

    def send(self, data: bytes) -> None:
        self.server.sendall(data)

    def sent(self) -> bytes:
        return written(self.server)

    def close(self) -> None:
        self.wire.abandon()
        self.client.close()
        self.server.close()


@pytest.fixture
def peer() -> Iterator[Peer]:
    made = Peer()
    yield made
    made.close()


def _read_all(peer: Peer) -> None:
    while peer.wire.poll(0.05):
        pass


# -- frames out ----------------------------------------------------------------------


def test_a_publish_is_one_method_header_and_body_frame_each_ending_in_0xce(peer: Peer) -> None:
    properties = encode_properties("job-1", None, {"n": 1})
    data = peer.wire.publish_bytes("jobs", b"payload", properties)
    frames = split_frames(data)
    assert [(kind, channel) for kind, channel, _ in frames] == [(1, 1), (2, 1), (3, 1)]
    # basic.publish as pika marshals it: class 60 method 40, reserved short, exchange "",
    # routing key, mandatory bit.
    assert data.startswith(method(1, pika.spec.Basic.Publish(exchange="", routing_key="jobs",
                                                             mandatory=True)))
    assert frames[0][2] == b"\x00\x3c\x00\x28\x00\x00\x00\x04jobs\x01"
    assert frames[1][2] == struct.pack(">HHQ", 60, 0, 7) + properties
    assert frames[2][2] == b"payload"


def test_a_publish_without_mandatory_clears_the_bit(peer: Peer) -> None:
    data = peer.wire.publish_bytes("jobs", b"x", encode_properties("a", None, {}),
                                   mandatory=False)
    assert split_frames(data)[0][2].endswith(b"\x04jobs\x00")


@pytest.mark.parametrize("size, pieces", [
    (0, []), (1, [1]), (4088, [4088]), (4089, [4088, 1]), (3 * 4088, [4088] * 3),
    (3 * 4088 + 5, [4088, 4088, 4088, 5]),
])
def test_a_body_is_split_into_frames_of_frame_max_less_8_bytes(size: int,
                                                               pieces: list[int]) -> None:
    made = Peer(frame_max=4096)
    try:
        body = bytes(index % 251 for index in range(size))
        frames = split_frames(made.wire.publish_bytes("jobs", body,
                                                      encode_properties("a", None, {})))
        bodies = [payload for kind, _, payload in frames if kind == 3]
        assert [len(piece) for piece in bodies] == pieces
        assert b"".join(bodies) == body
        assert struct.unpack_from(">HHQ", frames[1][2])[2] == size
        assert all(len(payload) + FRAME_OVERHEAD <= 4096 for _, _, payload in frames)
    finally:
        made.close()


def test_properties_over_the_header_room_are_refused_before_sending() -> None:
    made = Peer(frame_max=4096)
    try:
        room = 4096 - FRAME_OVERHEAD - CONTENT_HEAD
        fits = encode_properties("a", None, {"t": "x" * (room - 40)})
        too_big = encode_properties("a", None, {"t": "x" * room})
        assert len(fits) <= room < len(too_big)
        made.wire.publish_bytes("jobs", b"", fits)
        with pytest.raises(WireError, match=f"take {len(too_big)} bytes; frame_max 4096 "
                           f"leaves room for {room}"):
            made.wire.publish_bytes("jobs", b"", too_big)
    finally:
        made.close()


@pytest.mark.parametrize("multiple", [False, True])
def test_ack_and_requeue_are_the_bytes_pika_writes(peer: Peer, multiple: bool) -> None:
    peer.wire.ack(2**40 + 7, multiple)
    assert peer.sent() == method(1, pika.spec.Basic.Ack(delivery_tag=2**40 + 7,
                                                        multiple=multiple))
    peer.wire.requeue(9, multiple)
    assert peer.sent() == method(1, pika.spec.Basic.Nack(delivery_tag=9, multiple=multiple,
                                                         requeue=True))


def test_the_heartbeat_frame() -> None:
    assert connection._HEARTBEAT == bytes(pika.frame.Heartbeat().marshal())
    assert split_frames(connection._HEARTBEAT) == [(8, 0, b"")]


@pytest.mark.parametrize("left_by", [0.0, 0.01])
def test_a_message_bigger_than_the_socket_buffer_goes_out_whole_after_a_timed_read(
        peer: Peer, left_by: float) -> None:
    # A read with a timeout leaves the socket with it (0: non-blocking, as the check of an
    # idle connection reads), and a publish that fills the socket's buffer must wait for
    # the broker to read rather than fail halfway through a frame.
    peer.wire.poll(left_by)
    frames = peer.wire.publish_bytes("jobs", b"x" * 4_000_000,
                                     encode_properties("big", None, {}))
    got = bytearray()

    def slow_broker() -> None:
        time.sleep(0.2)
        while len(got) < len(frames):
            got.extend(peer.server.recv(1 << 20))

    reader = threading.Thread(target=slow_broker)
    reader.start()
    try:
        assert peer.wire.publish(frames, 1) == 1
    finally:
        reader.join(10)
    assert bytes(got) == frames


# -- frames in -----------------------------------------------------------------------


def test_a_delivery_split_over_body_frames_and_single_bytes_reads_whole(peer: Peer) -> None:
    body = b"\x00\xff\r\n" * 3000
    properties = props_bytes(headers={"attempt": 2}, delivery_mode=2, priority=5,
                             message_id="m-1")
    stream = (deliver(41, "jobs", redelivered=True) + header(len(body), properties)
              + body_frames(body, 4088) + frame(8, 0, b"") + deliver(42)
              + header(0, props_bytes(message_id="m-2")))
    for at in range(0, len(stream), 997):  # frames cut anywhere across reads
        peer.send(stream[at:at + 997])
        peer.wire.poll(1)
    first = peer.wire.next_delivery(0)
    second = peer.wire.next_delivery(0)
    assert first is not None and second is not None
    assert (first.tag, first.redelivered, first.routing_key) == (41, True, "jobs")
    assert (first.message_id, first.priority, first.headers) == ("m-1", 5, {"attempt": 2})
    assert first.body == body
    assert (second.tag, second.redelivered, second.message_id, second.body) == (
        42, False, "m-2", b"")
    assert peer.wire.next_delivery(0) is None


def test_a_frame_arriving_a_byte_at_a_time_reads_the_same(peer: Peer) -> None:
    stream = deliver(5) + header(3, props_bytes(message_id="one")) + frame(3, 1, b"abc")
    for index in range(len(stream)):
        peer.send(stream[index:index + 1])
        peer.wire.poll(1)
        assert bool(peer.wire.deliveries) == (index == len(stream) - 1)
    got = peer.wire.next_delivery(0)
    assert got is not None and (got.tag, got.message_id, got.body) == (5, "one", b"abc")


ALL_PROPERTIES: dict[str, Any] = {
    "content_type": "application/json", "content_encoding": "gzip",
    "headers": {"k": "v", "n": -3}, "delivery_mode": 2, "priority": 9,
    "correlation_id": "corr", "reply_to": "back", "expiration": "60000",
    "message_id": "the-id", "timestamp": 1700000000, "type": "kind", "user_id": "guest",
    "app_id": "app", "cluster_id": "c1"}


@pytest.mark.parametrize("absent", [None, *ALL_PROPERTIES])
def test_properties_with_each_flag_present_or_absent(peer: Peer, absent: str | None) -> None:
    fields = {key: value for key, value in ALL_PROPERTIES.items() if key != absent}
    properties = props_bytes(**fields)
    flags = struct.unpack_from(">H", properties)[0]
    bits = dict(zip(ALL_PROPERTIES, [1 << shift for shift in range(15, 1, -1)], strict=True))
    assert flags == sum(bit for key, bit in bits.items() if key != absent)
    peer.send(deliver(1) + header(2, properties) + frame(3, 1, b"ok"))
    _read_all(peer)
    got = peer.wire.next_delivery(0)
    assert got is not None
    assert got.message_id == fields.get("message_id")
    assert got.priority == fields.get("priority")
    assert got.headers == fields.get("headers", {})
    assert got.body == b"ok"


def test_no_properties_at_all(peer: Peer) -> None:
    peer.send(deliver(1) + header(1, b"\x00\x00") + frame(3, 1, b"x"))
    _read_all(peer)
    got = peer.wire.next_delivery(0)
    assert got is not None
    assert (got.message_id, got.priority, got.headers, got.body) == (None, None, {}, b"x")


def test_a_continued_flags_word_is_read_past(peer: Peer) -> None:
    # Bit 0 of a flags word says another one follows (spec 4.2.6.1).
    properties = struct.pack(">HH", 0x0800 | 0x0080 | 1, 0) + b"\x07" + short("cont")
    peer.send(deliver(1) + header(0, properties))
    _read_all(peer)
    got = peer.wire.next_delivery(0)
    assert got is not None and (got.priority, got.message_id) == (7, "cont")


def test_our_properties_are_the_bytes_pika_writes_and_set_the_right_flags() -> None:
    headers = {"a": "text", "b": "é"}
    for priority in (None, 0, 255):
        ours = encode_properties("id-1", priority, headers)
        expected = {"headers": headers, "delivery_mode": 2, "message_id": "id-1"}
        if priority is not None:
            expected["priority"] = priority
        assert ours == props_bytes(**expected)
        flags = struct.unpack_from(">H", ours)[0]
        assert flags == 0x2000 | 0x1000 | 0x0080 | (0 if priority is None else 0x0800)
        assert ours.startswith(properties_head(priority, headers))


def test_an_expiration_is_written_as_pika_writes_it_and_skipped_when_read() -> None:
    headers = {"qc-error": "boom"}
    for priority in (None, 3):
        ours = encode_properties("id-1", priority, headers, "1500")
        expected: dict[str, Any] = {"headers": headers, "delivery_mode": 2,
                                    "message_id": "id-1", "expiration": "1500"}
        if priority is not None:
            expected["priority"] = priority
        assert ours == props_bytes(**expected)
        read = decode_properties(ours, 0)
        assert (read.headers, read.priority, read.message_id) == (headers, priority, "id-1")
    fitted = fit_properties("id-2", None, {"qc-error": "e" * 500}, 200, expiration="99")
    assert len(fitted.properties) <= 200 and fitted.properties.endswith(b"\x0299\x04id-2")


def test_a_get_ok_and_a_get_empty(peer: Peer) -> None:
    get_ok = frame(1, 1, struct.pack(">HHQ", 60, 71, 3) + b"\x00" + short("") + short("jobs")
                   + struct.pack(">I", 0))
    peer.send(get_ok + header(2, props_bytes(message_id="g")) + frame(3, 1, b"hi"))
    got = peer.wire.get("jobs")
    assert got is not None and (got.tag, got.routing_key, got.message_id, got.body) == (
        3, "jobs", "g", b"hi")
    sent = split_frames(peer.sent())
    assert sent == split_frames(method(1, pika.spec.Basic.Get(queue="jobs")))
    peer.send(frame(1, 1, struct.pack(">HH", 60, 72) + short("")))
    assert peer.wire.get("jobs") is None


def test_a_returned_message_says_why(peer: Peer) -> None:
    returned = frame(1, 1, struct.pack(">HHH", 60, 50, 312) + short("NO_ROUTE") + short("")
                     + short("nowhere"))
    peer.send(returned + header(1, props_bytes(message_id="r")) + frame(3, 1, b"x"))
    _read_all(peer)
    assert [(item.reply, item.routing_key, item.message_id, item.body)
            for item in peer.wire.returned] == [("312 NO_ROUTE", "nowhere", "r", b"x")]


def _confirm(tag: int, multiple: bool, nack: bool = False) -> bytes:
    return frame(1, 1, struct.pack(">HHQB", 60, 120 if nack else 80, tag, int(multiple)))


def test_confirms_single_multiple_and_out_of_order_settle_in_sequence(peer: Peer) -> None:
    upto = peer.wire.publish(b"", 5)
    assert upto == 5
    peer.send(_confirm(3, False) + _confirm(2, True) + _confirm(5, False))
    with pytest.raises(WireError, match="no publisher confirm within"):
        peer.wire.confirm(5, 0.2)  # 4 is still owed
    ok = Peer()
    try:
        ok.wire.publish(b"", 5)
        ok.send(_confirm(3, False) + _confirm(2, True) + _confirm(5, False)
                + _confirm(4, False))
        assert ok.wire.confirm(5, 1) == []
    finally:
        ok.close()


def test_a_nack_fails_the_batch_counting_what_was_refused(peer: Peer) -> None:
    peer.wire.publish(b"", 4)
    peer.send(_confirm(1, False) + _confirm(3, True, nack=True) + _confirm(4, False))
    with pytest.raises(WireError, match=r"refused 2 message\(s\) \(basic.nack\)"):
        peer.wire.confirm(4, 1)
    assert peer.wire.sock is None


def test_settle_names_each_refused_message_and_keeps_the_connection(peer: Peer) -> None:
    peer.wire.publish(b"", 6)
    peer.send(_confirm(1, False) + _confirm(4, False) + _confirm(3, True, nack=True)
              + _confirm(6, False, nack=True) + _confirm(5, False))
    assert peer.wire.settle(6, 1) == ([], [2, 3, 6])
    assert peer.wire.sock is not None


def test_a_push_sends_again_exactly_what_the_broker_refused(peer: Peer) -> None:
    from queue_core.drivers.amqp.store import AmqpDriver
    driver = AmqpDriver(NOWHERE)
    messages = [peer.wire.publish_bytes("jobs", f"job {n}".encode(), props_bytes(
        message_id=f"m{n}")) for n in range(1, 5)]
    last = peer.wire.publish(b"".join(messages), 4)
    peer.sent()
    peer.send(_confirm(1, False) + _confirm(3, True, nack=True) + _confirm(4, False))
    outcome: list[BaseException | None] = []

    def confirm() -> None:
        try:
            driver._confirm(peer.wire, last, messages)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)
    thread = threading.Thread(target=confirm)
    thread.start()
    again = b""
    deadline = time.monotonic() + 5
    while len(again) < len(messages[1] + messages[2]) and time.monotonic() < deadline:
        time.sleep(0.01)
        again += peer.sent()
    assert again == messages[1] + messages[2]  # 2 and 3, as messages 5 and 6
    peer.send(_confirm(6, True))
    thread.join(5)
    assert outcome == [None]


def test_a_push_refused_every_time_fails_naming_the_count(peer: Peer) -> None:
    from queue_core.drivers.amqp.store import REFUSAL_RESENDS, AmqpDriver
    driver = AmqpDriver(NOWHERE)
    message = peer.wire.publish_bytes("jobs", b"job", props_bytes(message_id="m"))
    seen = []

    def refuse_each() -> None:
        received = b""
        deadline = time.monotonic() + 5
        while len(seen) <= REFUSAL_RESENDS and time.monotonic() < deadline:
            received += peer.sent()
            if len(received) >= len(message):
                seen.append(received[:len(message)])
                received = received[len(message):]
                peer.send(_confirm(len(seen), False, nack=True))
            time.sleep(0.005)
    broker = threading.Thread(target=refuse_each)
    broker.start()
    with pytest.raises(WireError, match=r"refused 1 message\(s\) \(basic.nack\)"):
        driver._confirm(peer.wire, peer.wire.publish(message, 1), [message])
    broker.join(5)
    assert seen == [message] * (REFUSAL_RESENDS + 1)


def test_a_broker_closing_the_connection_gets_close_ok_and_its_code(peer: Peer) -> None:
    peer.send(method(0, pika.spec.Connection.Close(320, "CONNECTION_FORCED - shutdown", 0, 0)))
    with pytest.raises(WireError, match="closed the connection: 320 CONNECTION_FORCED") as err:
        peer.wire.poll(1)
    assert err.value.code == 320
    assert peer.sent() == method(0, pika.spec.Connection.CloseOk())
    assert peer.wire.sock is None and peer.wire.dead is not None


def test_a_closed_probe_channel_is_a_probe_error_and_the_work_channel_kills_the_wire(
        peer: Peer) -> None:
    peer.wire._probe_open = True
    peer.send(method(2, pika.spec.Channel.Close(404, "NOT_FOUND - no queue 'd'", 50, 10)))
    with pytest.raises(ProbeError, match="404 NOT_FOUND") as err:
        peer.wire.declare("d", {}, passive=True)
    assert err.value.code == 404
    sent = split_frames(peer.sent())
    assert sent[-1] == split_frames(method(2, pika.spec.Channel.CloseOk()))[0]
    assert peer.wire.sock is not None  # the connection lives on
    peer.send(method(1, pika.spec.Channel.Close(406, "PRECONDITION_FAILED", 60, 80)))
    with pytest.raises(WireError, match="closed the channel: 406 PRECONDITION_FAILED"):
        peer.wire.poll(1)
    assert peer.wire.sock is None


def test_blocked_and_unblocked(peer: Peer) -> None:
    peer.send(method(0, pika.spec.Connection.Blocked("low on memory")))
    _read_all(peer)
    assert peer.wire.blocked == "low on memory"
    peer.send(method(0, pika.spec.Connection.Unblocked()))
    _read_all(peer)
    assert peer.wire.blocked is None


@pytest.mark.parametrize("stream, message", [
    (deliver(1)[:-1] + b"\x00", "protocol error: bad frame end"),
    (frame(5, 1, b"abc"), "protocol error: frame type 5"),
    (frame(3, 1, b"body"), "protocol error: content body without a header"),
    (header(1, b"\x00\x00"), "protocol error: content header without a method"),
    (deliver(1)[:9], "connection closed by the broker"),  # then end of stream
])
def test_a_corrupt_or_truncated_frame_is_an_error_naming_the_problem(
        peer: Peer, stream: bytes, message: str) -> None:
    peer.send(stream)
    peer.server.shutdown(socket.SHUT_WR)
    with pytest.raises(WireError, match=message):
        for _ in range(3):
            peer.wire.poll(1)
    assert peer.wire.sock is None and peer.wire.dead == message
    with pytest.raises(WireError, match="connection " + message):
        peer.wire.ack(1)


def test_a_method_frame_cut_short_inside_its_payload_is_a_protocol_error(peer: Peer) -> None:
    cut = frame(1, 1, struct.pack(">HH", 60, 60) + short("ctag") + b"\x00\x00")
    peer.send(cut)
    with pytest.raises(WireError, match="protocol error"):
        peer.wire.poll(1)
    assert peer.wire.sock is None


def test_a_method_frame_cut_short_is_not_read_past_its_end(peer: Peer) -> None:
    cut = frame(1, 1, struct.pack(">HH", 60, 60) + short("ctag") + b"\x00\x00")
    peer.send(cut + frame(8, 0, b"") * 3 + header(0, props_bytes(message_id="x")))
    with pytest.raises(WireError, match="protocol error"):
        peer.wire.poll(1)
    assert not peer.wire.deliveries


def test_a_header_frame_with_a_truncated_table_is_a_protocol_error(peer: Peer) -> None:
    properties = struct.pack(">H", 0x2000) + struct.pack(">I", 40) + b"\x01a"
    peer.send(deliver(1) + header(0, properties))
    with pytest.raises(WireError, match="protocol error"):
        peer.wire.poll(1)
    assert peer.wire.sock is None


# -- field tables --------------------------------------------------------------------


ROUND_TRIP: list[tuple[str, Any]] = [
    ("str", "plain"), ("unicode", "é€𝄞"), ("empty-str", ""), ("long-str", "x" * 70000),
    ("int", 5), ("int-neg", -1), ("int64-max", 2**63 - 1), ("int64-min", -2**63),
    ("true", True), ("false", False), ("decimal", Decimal("3.14")),
    ("decimal-neg", Decimal("-0.001")), ("decimal-whole", Decimal(12)),
    ("timestamp", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
    ("table", {"a": 1, "inner": {"s": "x", "none": None}}), ("empty-table", {}),
    ("array", [1, "a", None, True, [2, {"k": "v"}]]), ("empty-array", []),
    ("void", None), ("bytes", b"\x00\xff\r\n"), ("empty-bytes", b""),
]


@pytest.mark.parametrize("value", [value for _, value in ROUND_TRIP],
                         ids=[name for name, _ in ROUND_TRIP])
def test_every_supported_value_round_trips(value: Any) -> None:
    data = encode_table({"key": value}) + b"rest"
    decoded, end = decode_table(data, 0)
    assert decoded == {"key": value}
    assert same_kind(decoded["key"], value)
    assert data[end:] == b"rest"


def test_the_driver_writes_ints_as_l_and_strings_as_capital_s() -> None:
    assert encode_table({"n": 1, "s": "é"}) == table(
        b"\x01nl" + struct.pack(">q", 1), b"\x01sS" + struct.pack(">I", 2) + "é".encode())
    assert encode_table({}) == b"\x00\x00\x00\x00"


def test_a_whole_table_round_trips_at_an_offset() -> None:
    values = dict(ROUND_TRIP)
    data = b"pre" + encode_table(values)
    assert decode_table(data, 3) == (values, len(data))


SPEC_VALUES: list[tuple[str, bytes, Any]] = [
    # (type letter per AMQP 0-9-1 4.2.1 with RabbitMQ's errata, value bytes, value)
    ("t", b"\x01", True), ("t", b"\x00", False),
    ("b", b"\xfe", -2), ("B", b"\xfe", 254),
    ("s", b"\xff\xfe", -2), ("U", b"\xff\xfe", -2), ("u", b"\xff\xfe", 65534),
    ("I", b"\xff\xff\xff\xfe", -2), ("i", b"\xff\xff\xff\xfe", 2**32 - 2),
    ("l", b"\xff" * 7 + b"\xfe", -2), ("L", b"\xff" * 7 + b"\xfe", -2),
    ("D", b"\x02" + struct.pack(">i", 314), Decimal("3.14")),
    ("S", b"\x00\x00\x00\x02hi", "hi"),
    ("x", b"\x00\x00\x00\x03\x00\x01\xff", b"\x00\x01\xff"),
    ("T", struct.pack(">Q", 1700000000), datetime.fromtimestamp(1700000000, timezone.utc)),
    ("V", b"", None),
    ("F", table(b"\x01aI" + struct.pack(">i", 7), b"\x01bV"), {"a": 7, "b": None}),
    ("A", struct.pack(">I", 5) + b"t\x01" + b"b\x05" + b"V", [True, 5, None]),
]


@pytest.mark.parametrize("letter, raw, expected", SPEC_VALUES,
                         ids=[f"{letter}-{index}" for index, (letter, _, _)
                              in enumerate(SPEC_VALUES)])
def test_hand_built_values_of_each_type_letter_decode(letter: str, raw: bytes,
                                                      expected: Any) -> None:
    entry = b"\x03key" + letter.encode() + raw
    data = table(entry, b"\x04nextl" + struct.pack(">q", 9)) + b"after"
    decoded, end = decode_table(data, 0)
    assert decoded == {"key": expected, "next": 9}
    assert same_kind(decoded["key"], expected)
    assert data[end:] == b"after"


@pytest.mark.parametrize("letter, raw", [("f", struct.pack(">f", 1.5)),
                                         ("d", struct.pack(">d", 1.5))], ids=["f", "d"])
def test_floats_and_doubles_decode_to_their_value(letter: str, raw: bytes) -> None:
    decoded, _ = decode_table(table(b"\x01v" + letter.encode() + raw), 0)
    assert decoded == {"v": 1.5}
    assert type(decoded["v"]) is float


def test_an_unknown_type_letter_keeps_what_came_before_and_skips_the_table(
        caplog: pytest.LogCaptureFixture) -> None:
    data = table(b"\x02okl" + struct.pack(">q", 1), b"\x03bad?xyz", b"\x04lostl" + b"\x00" * 8)
    decoded, end = decode_table(data + b"tail", 0)
    assert decoded == {"ok": 1}
    assert (data + b"tail")[end:] == b"tail"
    assert "could not be read past 'bad'" in caplog.text


@pytest.mark.parametrize("value", [2**64, 1.5, object()], ids=["int-too-big", "float",
                                                                "object"])
def test_a_value_a_table_cannot_carry_is_refused_naming_the_key(value: Any) -> None:
    with pytest.raises((ValueError, TypeError), match="'the_key'"):
        encode_table({"the_key": value})


# -- short strings -------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "a", "a" * 255, "é" * 127 + "a", "𝄞" * 63 + "abc"])
def test_short_strings_up_to_255_bytes(text: str) -> None:
    data = text.encode()
    assert len(data) <= 255
    assert shortstr(text) == bytes((len(data),)) + data


@pytest.mark.parametrize("text", ["a" * 256, "é" * 128, "𝄞" * 64, "x" * 10000])
def test_a_short_string_over_255_bytes_is_refused_clearly(text: str) -> None:
    with pytest.raises(ValueError, match="AMQP short string longer than 255 bytes"):
        shortstr(text)


def test_a_table_key_over_255_bytes_is_refused_and_a_long_string_value_is_not() -> None:
    with pytest.raises(ValueError, match="longer than 255 bytes"):
        encode_table({"k" * 256: 1})
    assert decode_table(encode_table({"k" * 255: "v" * 300}), 0)[0] == {"k" * 255: "v" * 300}


def test_a_routing_key_or_message_id_over_255_bytes_is_refused(peer: Peer) -> None:
    with pytest.raises(ValueError, match="longer than 255 bytes"):
        peer.wire.publish_bytes("q" * 256, b"", encode_properties("a", None, {}))
    with pytest.raises(ValueError, match="longer than 255 bytes"):
        encode_properties("i" * 256, None, {})


# -- connection negotiation against a scripted peer ----------------------------------


class _TcpLike:
    """A socketpair end standing in for a TCP socket: TCP options are taken and ignored."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.options: list[tuple[int, int, int]] = []

    def setsockopt(self, level: int, name: int, value: int) -> None:
        self.options.append((level, name, value))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class Broker:
    """A scripted broker on a socketpair: ``script(read, write)`` runs in a thread."""

    def __init__(self, script: Callable[[Callable[[], Any], Callable[[bytes], None]], None]
                 ) -> None:
        self.client, self.server = socket.socketpair()
        self.received: list[tuple[int, Any]] = []
        self.header = b""
        self.error: BaseException | None = None
        self.script = script
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _read_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.server.recv(size - len(data))
            if not chunk:
                raise EOFError("client hung up")
            data += chunk
        return data

    def read(self) -> Any:
        """The next method the client sent, decoded by pika."""
        kind, channel, size = struct.unpack(">BHI", self._read_exact(7))
        payload = self._read_exact(size)
        assert self._read_exact(1) == b"\xce"
        assert kind == 1, f"expected a method frame, got type {kind}"
        method_obj = pika.spec.methods[struct.unpack_from(">I", payload)[0]]()
        method_obj.decode(payload, 4)
        self.received.append((channel, method_obj))
        return method_obj

    def _run(self) -> None:
        try:
            self.header = self._read_exact(8)
            self.script(self.read, self.server.sendall)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def connect(self, address: tuple[str, int], timeout: float | None = None) -> Any:
        self.thread.start()
        return _TcpLike(self.client)

    def close(self) -> None:
        self.server.close()
        self.client.close()
        if self.thread.ident is not None:  # started
            self.thread.join(5)


SERVER_PROPERTIES = {"product": "RabbitMQ", "capabilities": {"publisher_confirms": True}}


def handshake(tune_frame_max: int, tune_heartbeat: int) -> Callable[..., None]:
    def script(read: Callable[[], Any], write: Callable[[bytes], None]) -> None:
        write(method(0, pika.spec.Connection.Start(server_properties=SERVER_PROPERTIES,
                                                   mechanisms="PLAIN AMQPLAIN",
                                                   locales="en_US")))
        assert isinstance(read(), pika.spec.Connection.StartOk)
        write(method(0, pika.spec.Connection.Tune(channel_max=2047, frame_max=tune_frame_max,
                                                  heartbeat=tune_heartbeat)))
        assert isinstance(read(), pika.spec.Connection.TuneOk)
        assert isinstance(read(), pika.spec.Connection.Open)
        write(method(0, pika.spec.Connection.OpenOk()))
        assert isinstance(read(), pika.spec.Channel.Open)
        write(method(1, pika.spec.Channel.OpenOk()))
        assert isinstance(read(), pika.spec.Confirm.Select)
        write(method(1, pika.spec.Confirm.SelectOk()))
    return script


def _open(monkeypatch: pytest.MonkeyPatch, broker: Broker, url: str,
          heartbeat: int | None) -> Wire:
    # The socket module's own function, for this test only: Wire.open dials through it.
    monkeypatch.setattr(connection.socket, "create_connection", broker.connect)
    return Wire(pika.URLParameters(url), heartbeat=heartbeat, connect_timeout=2,
                rpc_timeout=2, name="negotiated")


@pytest.mark.parametrize("url_frame_max, tune_frame_max, expected", [
    (None, 131072, 131072), (None, 8192, 8192), (4096, 131072, 4096), (8192, 0, 8192),
])
@pytest.mark.parametrize("requested, expected_heartbeat", [(None, 60), (0, 0), (5, 5)])
def test_the_handshake_takes_the_smaller_frame_max_and_the_chosen_heartbeat(
        monkeypatch: pytest.MonkeyPatch, url_frame_max: int | None, tune_frame_max: int,
        expected: int, requested: int | None, expected_heartbeat: int) -> None:
    broker = Broker(handshake(tune_frame_max, 60))
    url = NOWHERE + (f"?frame_max={url_frame_max}" if url_frame_max else "")
    wire = _open(monkeypatch, broker, url, requested)
    try:
        wire.open()
        broker.thread.join(5)
        assert broker.error is None
        assert broker.header == b"AMQP\x00\x00\x09\x01"
        assert (wire.frame_max, wire.header_room, wire.heartbeat) == (
            expected, expected - FRAME_OVERHEAD - CONTENT_HEAD, expected_heartbeat)
        channels = [channel for channel, _ in broker.received]
        start_ok, tune_ok, opened = (item for _, item in broker.received[:3])
        assert channels == [0, 0, 0, 1, 1]
        assert start_ok.mechanism == "PLAIN"
        assert start_ok.response == b"\x00guest\x00guest"
        assert start_ok.client_properties["product"] == "queue-core"
        assert start_ok.client_properties["connection_name"] == "negotiated"
        assert start_ok.client_properties["capabilities"]["publisher_confirms"] is True
        assert (tune_ok.channel_max, tune_ok.frame_max, tune_ok.heartbeat) == (
            2047, expected, expected_heartbeat)
        assert opened.virtual_host == "/"
        # What is published afterwards is cut to the negotiated size.
        body = b"z" * (expected * 2)
        sizes = [len(payload) for kind, _, payload in split_frames(
            wire.publish_bytes("q", body, encode_properties("a", None, {}))) if kind == 3]
        assert max(sizes) == expected - FRAME_OVERHEAD
    finally:
        wire.abandon()
        broker.close()


def test_a_broker_refusing_the_login_is_a_wire_error_with_its_code(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def script(read: Callable[[], Any], write: Callable[[bytes], None]) -> None:
        write(method(0, pika.spec.Connection.Start(server_properties=SERVER_PROPERTIES,
                                                   mechanisms="PLAIN", locales="en_US")))
        read()
        write(method(0, pika.spec.Connection.Close(403, "ACCESS_REFUSED - Login was refused",
                                                   10, 11)))
        assert isinstance(read(), pika.spec.Connection.CloseOk)
    broker = Broker(script)
    wire = _open(monkeypatch, broker, NOWHERE, 0)
    try:
        with pytest.raises(WireError, match="closed the connection: 403 ACCESS_REFUSED") as err:
            wire.open()
        assert err.value.code == 403
        broker.thread.join(5)
        assert broker.error is None
        assert wire.sock is None
    finally:
        broker.close()


def test_a_broker_offering_no_mechanism_we_speak_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def script(read: Callable[[], Any], write: Callable[[bytes], None]) -> None:
        write(method(0, pika.spec.Connection.Start(server_properties=SERVER_PROPERTIES,
                                                   mechanisms="EXTERNAL", locales="en_US")))
    broker = Broker(script)
    wire = _open(monkeypatch, broker, NOWHERE, 0)
    try:
        with pytest.raises(WireError, match="offers none of our login mechanisms") as err:
            wire.open()
        assert err.value.code == 403 and wire.sock is None
    finally:
        broker.close()


def test_a_silent_peer_times_out_naming_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = Broker(lambda read, write: None)
    wire = _open(monkeypatch, broker, NOWHERE, 0)
    wire.connect_timeout = 0.2
    try:
        with pytest.raises(WireError, match="no answer from the broker within 0.2s"):
            wire.open()
        assert wire.sock is None
    finally:
        broker.close()


def test_delivery_defaults() -> None:
    made = Delivery(1, False, "k")
    assert (made.message_id, made.priority, made.headers, made.body, made.reply) == (
        None, None, {}, b"", "")
