"""A lean AMQP 0-9-1 connection for the amqp driver, on pika's protocol codec.

pika parses the URL (credentials, virtual host, TLS options) and encodes and decodes the
protocol's methods; this module owns the socket and the field tables, and reads each
frame only within its own bounds (a damaged one drops the connection: WireError). pika's
connection classes hand every frame of a message to the socket on its own and, in confirm
mode, wait for the broker after each publish: on the benchmark machine its
BlockingConnection confirmed about 1,400 publishes/s, batch or not, and consumed 10,500
to 12,300 messages/s with an ack each at prefetch 10 to 100, before any work. Here a
message's frames, or a whole batch of messages, go out in one write, confirms are counted
by sequence number and waited for once per batch, and deliveries are parsed from each
frame's own bytes.

A Wire is one connection. Channel 1 carries the work; channel 2 runs probes that may fail
(a passive declare of a delay queue that has expired), because the broker closes a channel
on such an error and, on channel 1, that would hand back every message the worker holds.
Any error on channel 1 or on the connection makes the Wire unusable: the driver drops it
and opens a new one.
"""

from __future__ import annotations

import calendar
import logging
import math
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

logger = logging.getLogger(__name__)

WORK = 1
PROBE = 2

_HEAD = struct.Struct(">BHI")
_ID = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_Q = struct.Struct(">q")
_CONTENT = struct.Struct(">HHQ")
_ACK = struct.Struct(">BHIHHQB")
FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
_END = bytes([FRAME_END])
_BASIC = 60
"""The basic class: its methods below, and its content header's class id."""
_BASIC_PUBLISH = 40
_BASIC_ACK = 80
_BASIC_NACK = 120
_ACK_SIZE = 13
"""The payload of basic.ack and basic.nack: class, method, delivery tag, flag bits."""
_MULTIPLE = 1
_REQUEUE = 2
_HEARTBEAT = b"\x08\x00\x00\x00\x00\x00\x00\xce"
_PROTOCOL = b"AMQP\x00\x00\x09\x01"

_DELIVER = 0x003C003C
_GET_OK = 0x003C0047
_GET_EMPTY = 0x003C0048
_RETURN = 0x003C0032
_CONFIRM_ACK = 0x003C0050
_CONFIRM_NACK = 0x003C0078
_CANCEL = 0x003C001E
_CONNECTION_CLOSE = 0x000A0032
_CONNECTION_CLOSE_OK = 0x000A0033
_BLOCKED = 0x000A003C
_UNBLOCKED = 0x000A003D
_CHANNEL_CLOSE = 0x00140028
_METHOD_NAMES = {_DELIVER: "basic.deliver", _GET_OK: "basic.get-ok", _RETURN: "basic.return",
                 _CONFIRM_ACK: "basic.ack", _CONFIRM_NACK: "basic.nack"}
_FRAME_NAMES = {FRAME_METHOD: "method", FRAME_HEADER: "content header",
                FRAME_BODY: "content body"}

_EMPTY = object()
"""The reply to a basic.get that found nothing."""

RECEIVE_SIZE = 262144
FRAME_OVERHEAD = 8
"""Bytes of a frame around its payload: type, channel, size, and the end octet. The broker
refuses a frame whose payload is longer than frame_max less these."""
CONTENT_HEAD = 12
"""Bytes of a content header before the properties: class, weight, body size."""
SHORTSTR_MAX = 255


def _pika() -> Any:
    import pika
    return pika


def address(params: Any) -> str:
    """``host:port`` of a connection's parameters (an IPv6 address in brackets)."""
    host = str(params.host)
    return f"[{host}]:{params.port}" if ":" in host else f"{host}:{params.port}"


class WireError(Exception):
    """The connection is gone or unusable: closed by the broker, lost, refused, or timed
    out. ``code`` is the broker's reply code when it said why (403, 404, 406, 320...)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class ProbeError(Exception):
    """The broker closed the probe channel (a passive declare of a missing queue, 404)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class FrameError(ValueError):
    """Bytes from the broker that do not parse: a frame, or a field in one, cut short or
    inconsistent. The Wire drops the connection on it (a WireError)."""


class Delivery:
    """A message the broker handed over: by basic.deliver, basic.get-ok or basic.return."""

    __slots__ = ("tag", "redelivered", "routing_key", "message_id", "priority", "headers",
                 "body", "reply")

    def __init__(self, tag: int, redelivered: bool, routing_key: str) -> None:
        self.tag = tag
        self.redelivered = redelivered
        self.routing_key = routing_key
        self.message_id: str | None = None
        self.priority: int | None = None
        self.headers: dict[str, Any] = {}
        self.body = b""
        self.reply = ""
        """For a returned message: why the broker could not route it."""


def shortstr(value: str) -> bytes:
    data = utf8(value)
    if len(data) > SHORTSTR_MAX:
        raise ValueError(f"AMQP short string longer than 255 bytes: {value[:40]!r}...")
    return bytes((len(data),)) + data


def utf8(text: str) -> bytes:
    """``text`` in UTF-8; a lone surrogate (an undecodable file name in an error message)
    becomes ``?`` rather than an error in the middle of saving a job's outcome."""
    return text.encode("utf-8", "replace")


def cut_utf8(text: str, limit: int, *, keep_end: bool = False, mark: bool = True) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character: its
    start is kept (its end with ``keep_end``, as for a traceback). With ``mark``, a cut
    says so, in the text, when there is room for the note."""
    data = utf8(text)
    if len(data) <= limit:
        return text if len(data) == len(text) else data.decode()
    note = f"[cut from {len(data)} bytes]".encode()
    note = (b" " + note if not keep_end else note + b" ") if mark else b""
    if len(note) > limit // 2:
        note = b""
    keep = max(0, limit - len(note))
    if keep_end:
        start = len(data) - keep
        while start < len(data) and data[start] & 0xC0 == 0x80:  # inside a character
            start += 1
        return (note + data[start:]).decode()
    end = keep
    while end > 0 and data[end] & 0xC0 == 0x80:
        end -= 1
    return (data[:end] + note).decode()


_I64_MIN = -2**63
_I64_MAX = 2**63 - 1
_LONGSTR_MAX = 2**32 - 1


class _Unencodable(Exception):
    """A value a field table cannot carry: why, the error to raise, and where it sits
    inside the header's value (``['inner'][2]``), filled in on the way out."""

    def __init__(self, why: str, error: type[Exception]) -> None:
        super().__init__(why)
        self.why = why
        self.error = error
        self.path = ""


def _long_string(letter: bytes, data: bytes) -> bytes:
    if len(data) > _LONGSTR_MAX:
        raise _Unencodable(f"{len(data)} bytes are more than a long string holds", ValueError)
    return letter + _ID.pack(len(data)) + data


def _encode_value(value: Any) -> bytes:
    kind = type(value)
    if kind is int and _I64_MIN <= value <= _I64_MAX:
        return b"l" + _Q.pack(value)
    if kind is str:
        return _long_string(b"S", utf8(value))
    return _encode_other(value)


def _encode_other(value: Any) -> bytes:
    """The types the driver does not write itself (a foreign header, copied with the job),
    with the letters pika writes, except that every integer is a signed 64-bit ``l``."""
    if value is None:
        return b"V"
    if isinstance(value, bool):
        return b"t\x01" if value else b"t\x00"
    if isinstance(value, int):
        if not _I64_MIN <= value <= _I64_MAX:
            raise _Unencodable(f"the integer {value} is out of the signed 64-bit range of a "
                               "table", ValueError)
        return b"l" + _Q.pack(value)
    if isinstance(value, str):
        return _long_string(b"S", utf8(value))
    if isinstance(value, (bytes, bytearray)):
        return _long_string(b"x", bytes(value))
    if isinstance(value, float):
        # RabbitMQ and the table format carry doubles, but pika (1.4), which other
        # consumers of the queue may use, reads them back as integers.
        raise _Unencodable(f"the float {value!r} is refused: readers using pika would get "
                           "it back cut to an integer", TypeError)
    if isinstance(value, Decimal):
        return _encode_decimal(value)
    if isinstance(value, datetime):
        seconds = calendar.timegm(value.utctimetuple())
        if seconds < 0:
            raise _Unencodable(f"the time {value.isoformat()} is before 1970, which an AMQP "
                               "timestamp cannot hold", ValueError)
        return b"T" + _U64.pack(seconds)
    if isinstance(value, dict):
        parts: list[bytes] = []
        for key, item in value.items():
            try:
                parts.append(_table_key(key))
                parts.append(_encode_value(item))
            except _Unencodable as exc:
                exc.path = f"[{repr(key)[:60]}]{exc.path}"
                raise
        body = b"".join(parts)
        return b"F" + _ID.pack(len(body)) + body
    if isinstance(value, (list, tuple)):
        items: list[bytes] = []
        for index, item in enumerate(value):
            try:
                items.append(_encode_value(item))
            except _Unencodable as exc:
                exc.path = f"[{index}]{exc.path}"
                raise
        return _long_string(b"A", b"".join(items))
    raise _Unencodable(f"a value of type {type(value).__name__} cannot be carried in an AMQP "
                       "table (it takes str, int, bool, None, bytes, Decimal, datetime, dict "
                       "and list)", TypeError)


def _encode_decimal(value: Decimal) -> bytes:
    """A decimal as pika writes it: a scale octet and a signed 32-bit integer."""
    if not value.is_finite():
        raise _Unencodable(f"the decimal {value} is not a finite number", ValueError)
    value = value.normalize()
    exponent = int(value.as_tuple().exponent)
    scale = max(0, -exponent)
    raw = int(value * (Decimal(10) ** scale))
    if scale > 255 or not -2**31 <= raw < 2**31:
        raise _Unencodable(f"the decimal {value} does not fit an AMQP decimal (a scale of at "
                           "most 255, a signed 32-bit number of units)", ValueError)
    return b"D" + bytes((scale,)) + _I32.pack(raw)


def _table_key(key: Any) -> bytes:
    if not isinstance(key, str):
        raise _Unencodable(f"the key {key!r} is not a string", TypeError)
    try:
        return shortstr(key)
    except ValueError as exc:
        raise _Unencodable(str(exc), ValueError) from None


def _encode_header(key: str, value: Any) -> bytes:
    """The bytes of one table value; TypeError or ValueError naming the header (and where
    inside it) and why, for a value a table cannot carry."""
    try:
        return _encode_value(value)
    except _Unencodable as exc:
        raise exc.error(f"header {key!r}{exc.path}: {exc.why}") from None


def encode_table(table: dict[str, Any]) -> bytes:
    """An AMQP field table. Raises TypeError or ValueError naming the header, and why,
    for a key or value a table cannot carry."""
    parts: list[bytes] = []
    for key, value in table.items():
        if not isinstance(key, str):
            raise TypeError(f"header key {key!r} is not a string")
        parts.append(shortstr(key))
        parts.append(_encode_header(key, value))
    body = b"".join(parts)
    return _ID.pack(len(body)) + body


def properties_head(priority: int | None, headers: dict[str, Any]) -> bytes:
    """Basic properties up to the message id, which comes last: headers, persistent
    delivery mode, priority. Jobs pushed together share it."""
    flags = 0x2000 | 0x1000 | 0x0080 | (0x0800 if priority is not None else 0)
    parts = [_U16.pack(flags), encode_table(headers), b"\x02"]
    if priority is not None:
        parts.append(bytes((priority,)))
    return b"".join(parts)


def encode_properties(message_id: str, priority: int | None, headers: dict[str, Any]) -> bytes:
    return properties_head(priority, headers) + shortstr(message_id)


def _shares(lengths: dict[str, int], budget: int) -> dict[str, int]:
    """Most bytes each text may keep so that together they keep at most ``budget``: equal
    shares, where a text shorter than its share keeps all of it and leaves the rest to the
    others (a long message does not crowd out its traceback, nor the other way round)."""
    caps: dict[str, int] = {}
    left = budget
    ordered = sorted(lengths, key=lambda key: lengths[key])
    for done, key in enumerate(ordered):
        caps[key] = min(lengths[key], left // (len(ordered) - done))
        left -= caps[key]
    return caps


class Fitted:
    """Properties made to fit a frame (see :func:`fit_properties`), and what it took."""

    __slots__ = ("properties", "cut", "dropped")

    def __init__(self, properties: bytes, cut: list[str], dropped: list[str]) -> None:
        self.properties = properties
        self.cut = cut
        """Headers shortened to fit (beyond the most bytes they may have)."""
        self.dropped = dropped
        """Headers left out: they could not be encoded, or did not fit even after every
        shortening."""


def fit_properties(message_id: str, priority: int | None, headers: dict[str, Any], room: int,
                   shorten: Sequence[tuple[str, bool, int]] = (),
                   protect: Callable[[str, Any], bool] = lambda key, value: False) -> Fitted:
    """Properties of at most ``room`` bytes, so that the content header fits the
    connection's frame_max (a longer one makes the broker close the connection).

    The string headers named in ``shorten`` as ``(key, keep_end, most_bytes)`` are cut to
    ``most_bytes`` (``keep_end``: their end is kept, as for a traceback), and further,
    together only as much as needed, sharing the room left equally. Only when the other
    headers alone do not fit are those that ``protect(key, value)`` does not claim left
    out, largest first.
    The message id, read back from a message, is cut to the 255 bytes of a short string;
    a header whose key is too long or whose value cannot be encoded is left out.

    Raises ValueError when even that cannot fit (protected headers over ``room``)."""
    message_id = cut_utf8(message_id, SHORTSTR_MAX, mark=False)
    sizes: dict[str, int] = {}
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in headers.items():
        if not isinstance(key, str) or len(utf8(key)) > SHORTSTR_MAX:
            dropped.append(str(key)[:80])
            continue
        try:
            sizes[key] = len(_encode_header(key, value))
        except (ValueError, TypeError):
            dropped.append(key)
            continue
        kept[key] = value
    fixed = len(properties_head(priority, {})) + 1 + len(utf8(message_id))
    size = fixed + sum(sizes.values()) + sum(1 + len(utf8(key)) for key in kept)
    texts = {key: (keep_end, most) for key, keep_end, most in shorten
             if isinstance(kept.get(key), str)}
    lengths = {key: sizes[key] - 5 for key in texts}
    wanted = {key: min(lengths[key], max(0, texts[key][1])) for key in texts}
    # What the texts need beyond their keys and length prefixes can be cut away; the
    # others' headers go only when that is not enough, and before any cut, so that the
    # texts keep what room they leave.
    floor = size - sum(lengths.values())
    for key in sorted((key for key, value in kept.items()
                       if key not in texts and not protect(key, value)),
                      key=lambda key: -sizes[key]):
        if floor <= room:
            break
        saved = sizes.pop(key) + 1 + len(utf8(key))
        floor -= saved
        size -= saved
        del kept[key]
        dropped.append(key)
    if floor > room:
        raise ValueError(f"the properties of message {message_id!r} take {floor} bytes; the "
                         f"connection's frame_max leaves room for {room}")
    caps = wanted
    if floor + sum(wanted.values()) > room:
        caps = _shares(wanted, room - floor)
    for key, (keep_end, _) in texts.items():
        if lengths[key] > caps[key]:
            # One cut, so that its note gives the size of the whole text.
            kept[key] = cut_utf8(kept[key], caps[key], keep_end=keep_end)
    cut = [key for key in texts if caps[key] < wanted[key]]
    properties = encode_properties(message_id, priority, kept)
    return Fitted(properties, cut, dropped)


def _read_shortstr(data: bytes | bytearray, offset: int) -> tuple[str, int]:
    size = data[offset]
    start = offset + 1
    return bytes(data[start:start + size]).decode("utf-8", "replace"), start + size


class _Unreadable(Exception):
    """A well-formed field value this module cannot read (an unknown type letter)."""


class _LeftOut:
    """In place of a field value that is read past and left out of its table: a float
    that is not a number, a timestamp out of Python's range."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


_FIXED: dict[int, struct.Struct] = {
    # Type letters per AMQP 0-9-1 with RabbitMQ's errata (and pika's reading of them).
    ord(letter): struct.Struct(form) for letter, form in (
        ("t", ">B"), ("b", ">b"), ("B", ">B"), ("s", ">h"), ("U", ">h"), ("u", ">H"),
        ("I", ">i"), ("i", ">I"), ("l", ">q"), ("L", ">q"), ("f", ">f"), ("d", ">d"),
        ("T", ">Q"))}
_SIZED = frozenset(b"SxA")
"""Type letters of values that start with their size in bytes."""


def _decode_value(data: bytes | bytearray, offset: int, end: int) -> tuple[Any, int]:
    """The field value whose type octet is at ``offset``, read within ``end``."""
    kind = data[offset]
    offset += 1
    fixed = _FIXED.get(kind)
    if fixed is not None:
        stop = offset + fixed.size
        if stop > end:
            raise FrameError(f"its {chr(kind)!r} value takes {fixed.size} bytes, "
                             f"{end - offset} left")
        value = fixed.unpack_from(data, offset)[0]
        if kind == 0x74:  # 't'
            return bool(value), stop
        if kind == 0x54:  # 'T'
            try:
                return datetime.fromtimestamp(value, timezone.utc), stop
            except (OverflowError, OSError, ValueError):
                return _LeftOut(f"the timestamp {value} is out of range"), stop
        if (kind == 0x66 or kind == 0x64) and not math.isfinite(value):
            return _LeftOut(f"the float {value} is not a number"), stop
        return value, stop
    if kind in _SIZED:
        start = offset + 4
        if start > end:
            raise FrameError(f"its {chr(kind)!r} value takes 4 bytes for its size, "
                             f"{end - offset} left")
        stop = start + _ID.unpack_from(data, offset)[0]
        if stop > end:
            raise FrameError(f"its {chr(kind)!r} value of {stop - start} bytes runs past "
                             f"the end ({end - start} bytes left)")
        if kind == 0x53:  # 'S'
            return data[start:stop].decode("utf-8", "replace"), stop
        if kind == 0x78:  # 'x'
            return bytes(data[start:stop]), stop
        items: list[Any] = []
        while start < stop:
            item, start = _decode_value(data, start, stop)
            if not isinstance(item, _LeftOut):
                items.append(item)
        return items, stop
    if kind == 0x46:  # 'F'
        return decode_table(data, offset, end)
    if kind == 0x44:  # 'D'
        if offset + 5 > end:
            raise FrameError(f"its 'D' value takes 5 bytes, {end - offset} left")
        raw = _I32.unpack_from(data, offset + 1)[0]
        return Decimal(raw) * Decimal(10) ** -data[offset], offset + 5
    if kind == 0x56:  # 'V'
        return None, offset
    raise _Unreadable(f"unknown field type {chr(kind)!r}")


def decode_table(data: bytes | bytearray, offset: int,
                 limit: int | None = None) -> tuple[dict[str, Any], int]:
    """An AMQP field table at ``offset``, and where it ends; every byte read lies before
    ``limit`` (the end of its frame; by default the end of ``data``).

    Raises FrameError when the table, or a key or value in it, runs past its end. A value
    of a type this module does not know is logged and ends the table there (its size is
    known, so the rest of the message can still be read); a float that is not a number,
    or a timestamp out of range, is logged and left out."""
    if limit is None:
        limit = len(data)
    start = offset + 4
    if start > limit:
        raise FrameError(f"a field table takes 4 bytes for its size, {limit - offset} "
                         "left")
    end = start + _ID.unpack_from(data, offset)[0]
    if end > limit:
        raise FrameError(f"a field table of {end - start} bytes runs past the end "
                         f"({limit - start} bytes left)")
    offset = start
    table: dict[str, Any] = {}
    key = ""
    try:
        while offset < end:
            at = offset + 1 + data[offset]
            if at >= end:
                raise FrameError(f"a key of {data[offset]} bytes and its value run past the "
                                 f"end of their table ({end - offset - 1} bytes left)")
            key = data[offset + 1:at].decode("utf-8", "replace")
            kind = data[at]
            # The driver's own headers, inline: this runs for every message delivered.
            if kind == 0x6C:  # 'l': signed 64-bit
                offset = at + 9
                if offset > end:
                    raise FrameError(f"header {key!r}: its 'l' value takes 8 bytes, "
                                     f"{end - at - 1} left")
                table[key] = _Q.unpack_from(data, at + 1)[0]
            elif kind == 0x53 and at + 5 <= end:  # 'S': long string
                begin = at + 5
                offset = begin + _ID.unpack_from(data, at + 1)[0]
                if offset > end:
                    raise FrameError(f"header {key!r}: its 'S' value of {offset - begin} "
                                     f"bytes runs past the end ({end - begin} bytes left)")
                table[key] = data[begin:offset].decode("utf-8", "replace")
            else:
                try:
                    value, offset = _decode_value(data, at, end)
                except FrameError as exc:
                    raise FrameError(f"header {key!r}: {exc}") from None
                if isinstance(value, _LeftOut):
                    logger.warning("header %r left out: %s", key, value.why)
                else:
                    table[key] = value
    except _Unreadable as exc:
        logger.warning("a header table could not be read past %r (%s)", key, exc)
    return table, end


def _decode_properties(data: bytes, offset: int, delivery: Delivery) -> None:
    """Keep headers, priority and message id; skip the other properties. Raises FrameError
    when they run past the end of ``data``."""
    flags = 0
    shift = 0
    try:
        while True:
            word = _U16.unpack_from(data, offset)[0]
            offset += 2
            flags |= word << shift
            if not word & 1:
                break
            shift += 16
        if flags & 0x8000:  # content-type
            offset += 1 + data[offset]
        if flags & 0x4000:  # content-encoding
            offset += 1 + data[offset]
        if flags & 0x2000:
            delivery.headers, offset = decode_table(data, offset)
        if flags & 0x1000:  # delivery-mode
            offset += 1
        if flags & 0x0800:
            delivery.priority = data[offset]
            offset += 1
        for bit in (0x0400, 0x0200, 0x0100):  # correlation-id, reply-to, expiration
            if flags & bit:
                offset += 1 + data[offset]
        if flags & 0x0080:
            delivery.message_id, offset = _read_shortstr(data, offset)
    except (IndexError, struct.error):
        offset = len(data) + 1
    if offset > len(data):
        raise FrameError(f"its properties (flags {flags:#06x}) run past the end of its "
                         f"{len(data)} bytes")


class Wire:
    """One AMQP connection (see the module docstring)."""

    def __init__(self, params: Any, *, heartbeat: int | None, connect_timeout: float,
                 rpc_timeout: float, name: str, host_index: int = 0) -> None:
        self.params = params
        self.address = address(params)
        self.host_index = host_index
        """Which of the driver's hosts this connection goes to."""
        self.requested_heartbeat = heartbeat
        self.connect_timeout = connect_timeout
        self.rpc_timeout = rpc_timeout
        self.name = name
        self.sock: Any = None
        self.heartbeat = 0
        self.frame_max = 131072
        self.header_room = self.frame_max - FRAME_OVERHEAD - CONTENT_HEAD
        """Most bytes of properties a message may have on this connection."""
        self.dead: str | None = None
        self.blocked: str | None = None
        self.deliveries: deque[Delivery] = deque()
        self.returned: list[Delivery] = []
        self.consumer_tag: str | None = None
        self.cancelled = False
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._replies: dict[int, Any] = {}
        self._probe_open = False
        self._probe_error: ProbeError | None = None
        self._content: Delivery | None = None
        self._content_kind = 0
        self._body: list[bytes] = []
        self._left = 0
        self._published = 0
        self._settled = 0
        self._settled_single: set[int] = set()
        self._nacked = 0
        self._publish_heads: dict[tuple[str, bool], bytes] = {}
        self._last_send = self._last_recv = time.monotonic()
        self._keeper: threading.Thread | None = None
        self._stop_keeper = threading.Event()

    # -- opening and closing ---------------------------------------------------------

    def open(self) -> Wire:
        pika = _pika()
        params = self.params
        try:
            sock = socket.create_connection((params.host, params.port),
                                            timeout=self.connect_timeout)
        except OSError as exc:
            raise WireError(f"cannot connect to {self.address}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        try:
            if params.ssl_options is not None:
                options = params.ssl_options
                sock = options.context.wrap_socket(
                    sock, server_hostname=options.server_hostname or params.host)
            self.sock = sock
            self._sendall(_PROTOCOL)
            start = self._wait_reply(0, self.connect_timeout)
            mechanism, response = params.credentials.response_for(start)
            if mechanism is None:
                raise WireError(f"the broker offers none of our login mechanisms "
                                f"({start.mechanisms!r})", 403)
            properties = {
                "product": "queue-core", "connection_name": self.name,
                "capabilities": {"publisher_confirms": True, "consumer_cancel_notify": True,
                                 "basic.nack": True, "connection.blocked": True,
                                 "authentication_failure_close": True}}
            self._method(0, pika.spec.Connection.StartOk(properties, mechanism, response,
                                                         params.locale))
            tune = self._wait_reply(0, self.connect_timeout)
            self.frame_max = min(tune.frame_max or 131072, params.frame_max or 131072)
            self.header_room = self.frame_max - FRAME_OVERHEAD - CONTENT_HEAD
            wanted = self.requested_heartbeat
            self.heartbeat = tune.heartbeat if wanted is None else wanted
            self._method(0, pika.spec.Connection.TuneOk(tune.channel_max, self.frame_max,
                                                        self.heartbeat))
            self._method(0, pika.spec.Connection.Open(params.virtual_host))
            self._wait_reply(0, self.connect_timeout)
            self._method(WORK, pika.spec.Channel.Open())
            self._wait_reply(WORK, self.connect_timeout)
            self._method(WORK, pika.spec.Confirm.Select())
            self._wait_reply(WORK, self.connect_timeout)
        except WireError:
            self._kill()
            raise
        except (OSError, ValueError) as exc:
            self._kill()
            raise WireError(f"cannot open an AMQP connection to {self.address}: "
                            f"{exc}") from exc
        self.sock.settimeout(None)
        return self

    def close(self) -> None:
        """Say goodbye politely, then close the socket. Safe to call twice."""
        self._stop_keeper.set()
        if self.sock is not None and self.dead is None:
            try:
                self._method(0, _pika().spec.Connection.Close(200, "bye", 0, 0))
                self._wait(lambda: self.dead is not None, 1.0)
            except (WireError, OSError):
                pass
        self._kill()

    def abandon(self) -> None:
        """Forget the socket without a word: it belongs to another process (after fork)."""
        self._stop_keeper.set()
        self.sock = None
        self.dead = "abandoned after fork"

    def _kill(self, reason: str = "closed") -> None:
        if self.dead is None:
            self.dead = reason
        self._stop_keeper.set()
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _fail(self, message: str, code: int = 0) -> WireError:
        self._kill(message)
        return WireError(message, code)

    def keep_alive(self) -> None:
        """Send heartbeats from a thread while the owner is busy elsewhere (running a job),
        so that the broker does not take a long job's connection for dead."""
        if self._keeper is None and self.heartbeat > 0:
            self._keeper = threading.Thread(target=self._keep, name=f"{self.name}-heartbeat",
                                            daemon=True)
            self._keeper.start()

    def _keep(self) -> None:
        interval = max(0.5, self.heartbeat / 4)
        while not self._stop_keeper.wait(interval):
            if time.monotonic() - self._last_send < self.heartbeat / 2:
                continue
            # Only when the owner is not using the socket: a TLS socket must not be read
            # and written by two threads at once, and a frame must not be cut in two.
            if not self._lock.acquire(blocking=False):
                continue
            try:
                sock = self.sock
                if sock is None:
                    return
                sock.sendall(_HEARTBEAT)
                self._last_send = time.monotonic()
            except OSError:
                return
            finally:
                self._lock.release()

    # -- socket ----------------------------------------------------------------------

    def _sendall(self, data: bytes) -> None:
        if self.sock is None:
            raise WireError(f"connection {self.dead or 'closed'}")
        with self._lock:
            try:
                self.sock.sendall(data)
            except OSError as exc:
                raise self._fail(f"connection lost while sending: {exc}") from exc
        self._last_send = time.monotonic()

    def _receive(self, timeout: float | None) -> bool:
        """Read what has arrived (waiting up to ``timeout``) and act on every complete
        frame; False if nothing came."""
        sock = self.sock
        if sock is None:
            raise WireError(f"connection {self.dead or 'closed'}")
        if self.heartbeat:
            if time.monotonic() - self._last_send >= self.heartbeat / 2:
                self._sendall(_HEARTBEAT)
            if timeout is None or timeout > self.heartbeat / 2:
                timeout = self.heartbeat / 2
        with self._lock:
            try:
                sock.settimeout(timeout)
                data = sock.recv(RECEIVE_SIZE)
            except (TimeoutError, BlockingIOError):
                data = None
            except OSError as exc:
                if type(exc).__name__ not in ("SSLWantReadError", "SSLWantWriteError"):
                    raise self._fail(f"connection lost: {exc}") from exc
                data = None
        if data is None:
            # Judged only after a read found nothing: while a job ran nobody read, and
            # the broker's heartbeats are waiting in the socket.
            silent = time.monotonic() - self._last_recv
            if self.heartbeat and silent > 2 * self.heartbeat + 1:
                raise self._fail(f"no sign of life from the broker for {silent:.0f}s "
                                 f"(heartbeat {self.heartbeat}s)")
            return False
        if not data:
            raise self._fail("connection closed by the broker")
        self._last_recv = time.monotonic()
        self._buf += data
        self._frames()
        return True

    def _wait(self, done: Any, timeout: float | None) -> bool:
        """Read until ``done()`` holds; False when ``timeout`` seconds pass first."""
        if done():
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._receive(left)
            if done():
                return True
            if left == 0.0:
                return False

    def usable(self) -> bool:
        """Whether the connection still works, told without waiting: a connection that
        idled through a broker restart is found out before anything is written to it."""
        if self.sock is None:
            return False
        if time.monotonic() - self._last_recv < 1.0:
            return True
        try:
            ready, _, _ = select.select([self.sock], [], [], 0)
            if ready:
                self._receive(0)
        except (WireError, OSError, ValueError):
            self._kill("found closed")
            return False
        return self.sock is not None

    # -- frames in ---------------------------------------------------------------------

    def _frames(self) -> None:
        buf = self._buf
        size = len(buf)
        pos = 0
        kind = channel = 0
        try:
            while size - pos >= 8:
                kind, channel, length = _HEAD.unpack_from(buf, pos)
                end = pos + 7 + length
                if end >= size:
                    break
                if buf[end] != FRAME_END:
                    raise self._fail("protocol error: bad frame end")
                start = pos + 7
                pos = end + 1
                # Each frame is decoded from a copy of its own payload, so that nothing cut
                # short in it can be read from the frames after it.
                if kind == FRAME_BODY:
                    self._body_frame(bytes(buf[start:end]))
                elif kind == FRAME_METHOD:
                    self._method_frame(channel, bytes(buf[start:end]))
                elif kind == FRAME_HEADER:
                    self._header_frame(bytes(buf[start:end]))
                elif kind != FRAME_HEARTBEAT:
                    raise self._fail(f"protocol error: frame type {kind}")
        except (FrameError, IndexError, struct.error) as exc:
            # struct.error and IndexError too: whatever a damaged frame makes the decoding
            # raise, the connection is dropped with a WireError, never a raw exception.
            raise self._fail(f"protocol error: {_FRAME_NAMES.get(kind, kind)} frame on "
                             f"channel {channel}: {exc}") from exc
        finally:
            del buf[:pos]

    def _method_frame(self, channel: int, payload: bytes) -> None:
        if len(payload) < 4:
            raise FrameError(f"{len(payload)} bytes, too few for a method id")
        method_id = _ID.unpack_from(payload, 0)[0]
        if method_id == _DELIVER or method_id == _GET_OK or method_id == _RETURN:
            self._content_method(method_id, payload)
        elif method_id == _CONFIRM_ACK or method_id == _CONFIRM_NACK:
            if len(payload) < 13:
                raise FrameError(f"{_METHOD_NAMES[method_id]} of {len(payload)} bytes cut "
                                 "short: its fields take 13")
            tag = _U64.unpack_from(payload, 4)[0]
            multiple = payload[12] & 1
            if method_id == _CONFIRM_NACK:
                self._nacked += (max(0, tag - self._settled) - sum(
                    1 for seq in self._settled_single if seq <= tag)) if multiple else 1
            if multiple:
                if tag > self._settled:
                    self._settled = tag
            else:
                self._settled_single.add(tag)
            while self._settled + 1 in self._settled_single:
                self._settled += 1
                self._settled_single.discard(self._settled)
        elif method_id == _GET_EMPTY:
            self._replies[channel] = _EMPTY
        else:
            self._other_method(channel, method_id, payload)

    def _content_method(self, method_id: int, payload: bytes) -> None:
        """basic.deliver, basic.get-ok or basic.return: a message whose content follows."""
        name = _METHOD_NAMES[method_id]
        if self._content is not None:
            raise FrameError(f"{name} came while the content of the message before "
                             "it was incomplete")
        try:
            if method_id == _RETURN:
                code = _U16.unpack_from(payload, 4)[0]
                text, at = _read_shortstr(payload, 6)
                _, at = _read_shortstr(payload, at)  # exchange
                routing_key, at = _read_shortstr(payload, at)
                delivery = Delivery(0, False, routing_key)
                delivery.reply = f"{code} {text}"
            else:
                at = 4
                if method_id == _DELIVER:
                    at += 1 + payload[at]  # consumer tag
                tag = _U64.unpack_from(payload, at)[0]
                redelivered = bool(payload[at + 8])
                _, at = _read_shortstr(payload, at + 9)  # exchange
                routing_key, at = _read_shortstr(payload, at)
                delivery = Delivery(tag, redelivered, routing_key)
                if method_id == _GET_OK:
                    at += 4  # message count
        except (IndexError, struct.error):
            at = len(payload) + 1
        if at > len(payload):
            raise FrameError(f"{name} cut short: its fields take more than the "
                             f"{len(payload)} bytes of its frame")
        self._start_content(method_id, delivery)

    def _other_method(self, channel: int, method_id: int, payload: bytes) -> None:
        pika = _pika()
        known = pika.spec.methods.get(method_id)
        if known is None:
            raise FrameError(f"unknown method {method_id >> 16}.{method_id & 0xFFFF}")
        method = known()
        try:
            method.decode(payload, 4)
        except Exception as exc:
            # Whatever a cut or damaged method makes pika raise.
            raise FrameError(f"{method.NAME} does not decode ({type(exc).__name__}: "
                             f"{exc})") from exc
        if method_id == _CONNECTION_CLOSE:
            try:
                self._method(0, pika.spec.Connection.CloseOk())
            except WireError:
                pass
            raise self._fail(f"the broker closed the connection: {method.reply_code} "
                             f"{method.reply_text}", method.reply_code)
        if method_id == _CONNECTION_CLOSE_OK:
            self._kill("closed")
            return
        if method_id == _CHANNEL_CLOSE:
            text = f"{method.reply_code} {method.reply_text}"
            if channel == PROBE:
                self._method(PROBE, pika.spec.Channel.CloseOk())
                self._probe_open = False
                self._probe_error = ProbeError(text, method.reply_code)
                return
            raise self._fail(f"the broker closed the channel: {text}", method.reply_code)
        if method_id == _BLOCKED:
            self.blocked = method.reason or "no reason given"
            logger.warning("%s: the broker blocks publishing: %s", self.name, self.blocked)
            return
        if method_id == _UNBLOCKED:
            self.blocked = None
            logger.info("%s: the broker accepts publishing again", self.name)
            return
        if method_id == _CANCEL:
            self.cancelled = True
            return
        self._replies[channel] = method

    def _start_content(self, method_id: int, delivery: Delivery) -> None:
        self._content = delivery
        self._content_kind = method_id
        self._body = []
        self._left = -1

    def _header_frame(self, payload: bytes) -> None:
        delivery = self._content
        if delivery is None:
            raise self._fail("protocol error: content header without a method")
        if self._left >= 0:
            raise FrameError("a second content header for one message")
        if len(payload) < CONTENT_HEAD:
            raise FrameError(f"{len(payload)} bytes, fewer than the {CONTENT_HEAD} of its "
                             "class, weight and body size")
        _, _, size = _CONTENT.unpack_from(payload, 0)
        _decode_properties(payload, CONTENT_HEAD, delivery)
        self._left = size
        if size == 0:
            self._content_done()

    def _body_frame(self, payload: bytes) -> None:
        if self._content is None or self._left < 0:
            raise self._fail("protocol error: content body without a header")
        if len(payload) > self._left:
            raise FrameError(f"{len(payload)} bytes where {self._left} were left of the "
                             "body its header announced")
        self._body.append(payload)
        self._left -= len(payload)
        if self._left <= 0:
            self._content_done()

    def _content_done(self) -> None:
        delivery, self._content = self._content, None
        assert delivery is not None
        body = self._body
        delivery.body = body[0] if len(body) == 1 else b"".join(body)
        if self._content_kind == _DELIVER:
            self.deliveries.append(delivery)
        elif self._content_kind == _GET_OK:
            self._replies[WORK] = delivery
        else:
            self.returned.append(delivery)

    # -- methods out -------------------------------------------------------------------

    def _method(self, channel: int, method: Any) -> None:
        self._sendall(_pika().frame.Method(channel, method).marshal())

    def _wait_reply(self, channel: int, timeout: float) -> Any:
        if not self._wait(lambda: channel in self._replies or (
                channel == PROBE and self._probe_error is not None), timeout):
            raise self._fail(f"no answer from the broker within {timeout:g}s")
        if channel == PROBE and self._probe_error is not None:
            error, self._probe_error = self._probe_error, None
            raise error
        return self._replies.pop(channel)

    def call(self, method: Any, channel: int = WORK) -> Any:
        """Send a synchronous method and return the broker's answer."""
        if channel == PROBE and not self._probe_open:
            self._probe_error = None
            self._method(PROBE, _pika().spec.Channel.Open())
            self._wait_reply(PROBE, self.rpc_timeout)
            self._probe_open = True
        self._replies.pop(channel, None)
        self._method(channel, method)
        return self._wait_reply(channel, self.rpc_timeout)

    def declare(self, queue: str, arguments: dict[str, Any], *,
                passive: bool = False) -> tuple[int, int]:
        """Declare a durable queue; (ready messages, consumers). On the probe channel:
        ProbeError when the queue is missing (passive) or exists with other arguments."""
        method = _pika().spec.Queue.Declare(queue=queue, passive=passive, durable=True,
                                            arguments=arguments)
        ok = self.call(method, PROBE)
        return int(ok.message_count), int(ok.consumer_count)

    def purge(self, queue: str, channel: int = WORK) -> int:
        return int(self.call(_pika().spec.Queue.Purge(queue=queue), channel).message_count)

    def delete(self, queue: str) -> int:
        return int(self.call(_pika().spec.Queue.Delete(queue=queue), WORK).message_count)

    # -- consuming -------------------------------------------------------------------

    def qos(self, prefetch: int) -> None:
        """A per-consumer prefetch, for consumers started afterwards. (A channel-wide one
        applies at once, but RabbitMQ 4.3 refuses it with a channel error.)"""
        self.call(_pika().spec.Basic.Qos(prefetch_count=prefetch, global_qos=False))

    def poll(self, timeout: float) -> bool:
        """Read what arrives within ``timeout`` seconds; False if nothing came."""
        return self._receive(timeout)

    def consume(self, queue: str) -> None:
        self.cancelled = False
        ok = self.call(_pika().spec.Basic.Consume(queue=queue))
        self.consumer_tag = ok.consumer_tag

    def cancel(self) -> None:
        """Stop the consumer; deliveries sent before the broker heard it stay queued
        here."""
        if self.consumer_tag is not None and not self.cancelled:
            self.call(_pika().spec.Basic.Cancel(consumer_tag=self.consumer_tag))
        self.consumer_tag = None

    def next_delivery(self, timeout: float) -> Delivery | None:
        if self.deliveries:
            return self.deliveries.popleft()
        if self.cancelled:
            raise self._fail("the broker cancelled the consumer (the queue was deleted?)")
        self._wait(lambda: bool(self.deliveries) or self.cancelled, timeout)
        return self.deliveries.popleft() if self.deliveries else None

    def get(self, queue: str) -> Delivery | None:
        reply = self.call(_pika().spec.Basic.Get(queue=queue))
        return None if reply is _EMPTY else reply

    def ack(self, tag: int, multiple: bool = False) -> None:
        self._sendall(_ACK.pack(FRAME_METHOD, WORK, _ACK_SIZE, _BASIC, _BASIC_ACK, tag,
                                _MULTIPLE if multiple else 0) + _END)

    def requeue(self, tag: int, multiple: bool = False) -> None:
        """basic.nack with requeue: the broker marks the messages redelivered."""
        self._sendall(_ACK.pack(FRAME_METHOD, WORK, _ACK_SIZE, _BASIC, _BASIC_NACK, tag,
                                _REQUEUE | (_MULTIPLE if multiple else 0)) + _END)

    # -- publishing with confirms ------------------------------------------------------

    def publish_bytes(self, routing_key: str, body: bytes, properties: bytes,
                      mandatory: bool = True) -> bytes:
        """The frames of one message; pass them (several joined) to ``publish``."""
        head = self._publish_heads.get((routing_key, mandatory))
        if head is None:
            # Reserved short, the default exchange (an empty short string).
            payload = (_U16.pack(_BASIC) + _U16.pack(_BASIC_PUBLISH) + b"\x00\x00\x00"
                       + shortstr(routing_key)
                       + (b"\x01" if mandatory else b"\x00"))
            head = _HEAD.pack(FRAME_METHOD, WORK, len(payload)) + payload + _END
            self._publish_heads[(routing_key, mandatory)] = head
        if len(properties) > self.header_room:
            # The broker would close the connection on it: the caller fits its properties
            # first (fit_properties), so this only guards against a mistake.
            raise WireError(f"the properties of a message take {len(properties)} bytes; "
                            f"frame_max {self.frame_max} leaves room for {self.header_room}")
        header = _CONTENT.pack(_BASIC, 0, len(body)) + properties
        parts = [head, _HEAD.pack(FRAME_HEADER, WORK, len(header)), header, _END]
        step = self.frame_max - FRAME_OVERHEAD
        if not body:
            pass
        elif len(body) <= step:
            parts += [_HEAD.pack(FRAME_BODY, WORK, len(body)), body, _END]
        else:
            for start in range(0, len(body), step):
                chunk = body[start:start + step]
                parts += [_HEAD.pack(FRAME_BODY, WORK, len(chunk)), chunk, _END]
        return b"".join(parts)

    def publish(self, frames: bytes, count: int) -> int:
        """Send ``count`` messages' frames; returns the sequence number of the last."""
        self._sendall(frames)
        self._published += count
        return self._published

    def confirm(self, upto: int, timeout: float) -> list[Delivery]:
        """Wait until the broker confirmed every message up to ``upto``; returns (and
        forgets) the messages it returned as unroutable. Raises WireError when it refused
        any (basic.nack) or said nothing in time; the connection is then dropped, since
        what it did with the rest cannot be known."""
        if not self._wait(lambda: self._settled >= upto, timeout):
            why = f" (the broker blocks publishing: {self.blocked})" if self.blocked else ""
            raise self._fail(f"no publisher confirm within {timeout:g}s{why}")
        if self._nacked:
            count, self._nacked = self._nacked, 0
            raise self._fail(f"the broker refused {count} message(s) (basic.nack)")
        returned, self.returned = self.returned, []
        return returned
