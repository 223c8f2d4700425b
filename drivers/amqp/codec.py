"""AMQP 0-9-1 as bytes: the frames, field tables and basic properties the amqp driver
writes and reads itself, and the protocol's numbers, named.

Whatever comes from the broker is read only within its own frame's bytes: anything cut
short or inconsistent raises FrameError. The rarer methods are pika's to encode and decode
(see ``connection``).
"""

from __future__ import annotations

import calendar
import logging
import math
import struct
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, NamedTuple

logger = logging.getLogger(__name__)

_ID = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_Q = struct.Struct(">q")

# -- frames ----------------------------------------------------------------------------

FRAME_HEAD = struct.Struct(">BHI")
"""What a frame starts with: its type, its channel and the size of its payload."""
FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
END = bytes([FRAME_END])
FRAME_OVERHEAD = FRAME_HEAD.size + len(END)
"""Bytes of a frame around its payload: type, channel, size, and the end octet. The broker
refuses a frame whose payload is longer than frame_max less these."""
FRAME_NAMES = {FRAME_METHOD: "method", FRAME_HEADER: "content header",
               FRAME_BODY: "content body"}
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
"""What a client opens a connection with: the protocol, version 0-9-1."""

# -- classes and methods ---------------------------------------------------------------

CLASS_CONNECTION = 10
CLASS_CHANNEL = 20
CLASS_BASIC = 60
"""The basic class: its methods below, and its content header's class id."""
_CLASS_SHIFT = 16
_METHOD_MASK = (1 << _CLASS_SHIFT) - 1


def _method_id(class_id: int, method: int) -> int:
    """A method's id as a method frame carries it (and pika keys it): the class's short,
    then the method's."""
    return class_id << _CLASS_SHIFT | method


CONNECTION_CLOSE = _method_id(CLASS_CONNECTION, 50)
CONNECTION_CLOSE_OK = _method_id(CLASS_CONNECTION, 51)
CONNECTION_BLOCKED = _method_id(CLASS_CONNECTION, 60)
CONNECTION_UNBLOCKED = _method_id(CLASS_CONNECTION, 61)
CHANNEL_CLOSE = _method_id(CLASS_CHANNEL, 40)
BASIC_CANCEL = _method_id(CLASS_BASIC, 30)
BASIC_PUBLISH = _method_id(CLASS_BASIC, 40)
BASIC_RETURN = _method_id(CLASS_BASIC, 50)
BASIC_DELIVER = _method_id(CLASS_BASIC, 60)
BASIC_GET_OK = _method_id(CLASS_BASIC, 71)
BASIC_GET_EMPTY = _method_id(CLASS_BASIC, 72)
BASIC_ACK = _method_id(CLASS_BASIC, 80)
BASIC_NACK = _method_id(CLASS_BASIC, 120)
METHOD_NAMES = {BASIC_DELIVER: "basic.deliver", BASIC_GET_OK: "basic.get-ok",
                BASIC_RETURN: "basic.return", BASIC_ACK: "basic.ack",
                BASIC_NACK: "basic.nack"}
METHOD_ID = _ID
"""What a method frame's payload starts with: the method's id."""

REPLY_SUCCESS = 200
ACCESS_REFUSED = 403
PRECONDITION_FAILED = 406
"""The reply code of a declare whose arguments differ from the queue's."""

_ACK_PAYLOAD = struct.Struct(">IQB")
"""The payload of basic.ack and basic.nack: method id, delivery tag, flag bits."""
_ACK_FRAME = struct.Struct(">BHIIQB")
"""A basic.ack or basic.nack frame but its end octet: FRAME_HEAD, then _ACK_PAYLOAD."""
_MULTIPLE = 1
_REQUEUE = 2
_MANDATORY = 1
"""basic.publish's flag bit: the broker returns a message that no queue takes."""
_RESERVED_SHORT = bytes(2)
_DEFAULT_EXCHANGE = bytes(1)
"""The default exchange, which routes by queue name: an empty short string."""
_DELIVERY = struct.Struct(">QB")
"""A delivery tag and the redelivered flag."""

# -- content headers and basic properties ----------------------------------------------

_CONTENT = struct.Struct(">HHQ")
CONTENT_HEAD = _CONTENT.size
"""Bytes of a content header before the properties: class, weight, body size."""
_WEIGHT = 0
"""A content header's weight, which AMQP 0-9-1 leaves unused."""

# The property flags, in the order of the properties they announce.
_CONTENT_TYPE = 0x8000
_CONTENT_ENCODING = 0x4000
_HEADERS = 0x2000
_DELIVERY_MODE = 0x1000
_PRIORITY = 0x0800
_CORRELATION_ID = 0x0400
_REPLY_TO = 0x0200
_EXPIRATION = 0x0100
_MESSAGE_ID = 0x0080
_MORE_FLAGS = 0x0001
"""Set in a flags word that another flags word follows."""
_FLAGS_BITS = 16
_PERSISTENT = bytes((2,))
"""Delivery mode 2: the broker keeps the message on disk."""

SHORTSTR_MAX = 255

# Field value type letters, as the table decoder compares them.
_BOOLEAN = ord("t")
_TIMESTAMP = ord("T")
_FLOAT = ord("f")
_DOUBLE = ord("d")
_LONG_LONG = ord("l")
_LONG_STRING = ord("S")
_BYTE_ARRAY = ord("x")
_TABLE = ord("F")
_DECIMAL = ord("D")
_VOID = ord("V")
_DECIMAL_VALUE = struct.Struct(">Bi")
"""A decimal: its scale, then its units, a signed 32-bit number."""
_LONG_STRING_HEAD = 1 + _ID.size
"""A long string's type letter and size."""


class FrameError(ValueError):
    """Bytes from the broker that do not parse: a frame, or a field in one, cut short or
    inconsistent. The Wire drops the connection on it (a WireError)."""


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


# -- frames out ------------------------------------------------------------------------


def publish_frame(channel: int, routing_key: str, mandatory: bool) -> bytes:
    """The method frame of a basic.publish to the default exchange."""
    payload = (METHOD_ID.pack(BASIC_PUBLISH) + _RESERVED_SHORT + _DEFAULT_EXCHANGE
               + shortstr(routing_key) + bytes((_MANDATORY if mandatory else 0,)))
    return FRAME_HEAD.pack(FRAME_METHOD, channel, len(payload)) + payload + END


def message_frames(publish: bytes, channel: int, body: bytes, properties: bytes,
                   frame_max: int) -> bytes:
    """A message's frames: its ``publish`` frame, its content header, and its body in
    frames of at most ``frame_max`` bytes."""
    header = _CONTENT.pack(CLASS_BASIC, _WEIGHT, len(body)) + properties
    parts = [publish, FRAME_HEAD.pack(FRAME_HEADER, channel, len(header)), header, END]
    step = frame_max - FRAME_OVERHEAD
    if not body:
        pass
    elif len(body) <= step:
        parts += [FRAME_HEAD.pack(FRAME_BODY, channel, len(body)), body, END]
    else:
        for start in range(0, len(body), step):
            chunk = body[start:start + step]
            parts += [FRAME_HEAD.pack(FRAME_BODY, channel, len(chunk)), chunk, END]
    return b"".join(parts)


def ack_frame(channel: int, tag: int, multiple: bool) -> bytes:
    """basic.ack of delivery ``tag`` (and, with ``multiple``, of every one before it)."""
    return _ACK_FRAME.pack(FRAME_METHOD, channel, _ACK_PAYLOAD.size, BASIC_ACK, tag,
                           _MULTIPLE if multiple else 0) + END


def requeue_frame(channel: int, tag: int, multiple: bool) -> bytes:
    """basic.nack with requeue of delivery ``tag`` (and, with ``multiple``, of every one
    before it)."""
    return _ACK_FRAME.pack(FRAME_METHOD, channel, _ACK_PAYLOAD.size, BASIC_NACK, tag,
                           _REQUEUE | (_MULTIPLE if multiple else 0)) + END


# -- field tables out ------------------------------------------------------------------

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
    return b"D" + _DECIMAL_VALUE.pack(scale, raw)


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


# -- properties out --------------------------------------------------------------------


def properties_head(priority: int | None, headers: dict[str, Any],
                    expiration: str | None = None) -> bytes:
    """Basic properties up to the message id, which comes last: headers, persistent
    delivery mode, priority, and an expiration (milliseconds, as text: a failed job's
    ``max_age``). Jobs pushed together share it."""
    flags = (_HEADERS | _DELIVERY_MODE | _MESSAGE_ID | (_PRIORITY if priority is not None else 0)
             | (_EXPIRATION if expiration is not None else 0))
    parts = [_U16.pack(flags), encode_table(headers), _PERSISTENT]
    if priority is not None:
        parts.append(bytes((priority,)))
    if expiration is not None:
        parts.append(shortstr(expiration))
    return b"".join(parts)


def encode_properties(message_id: str, priority: int | None, headers: dict[str, Any],
                      expiration: str | None = None) -> bytes:
    return properties_head(priority, headers, expiration) + shortstr(message_id)


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
                   protect: Callable[[str, Any], bool] = lambda key, value: False,
                   expiration: str | None = None) -> Fitted:
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
    fixed = len(properties_head(priority, {}, expiration)) + 1 + len(utf8(message_id))
    size = fixed + sum(sizes.values()) + sum(1 + len(utf8(key)) for key in kept)
    texts = {key: (keep_end, most) for key, keep_end, most in shorten
             if isinstance(kept.get(key), str)}
    lengths = {key: sizes[key] - _LONG_STRING_HEAD for key in texts}
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
    properties = encode_properties(message_id, priority, kept, expiration)
    return Fitted(properties, cut, dropped)


# -- methods in ------------------------------------------------------------------------


def read_method_id(payload: bytes) -> int:
    """The id of the method whose frame's payload this is."""
    if len(payload) < METHOD_ID.size:
        raise FrameError(f"{len(payload)} bytes, too few for a method id")
    method_id: int = METHOD_ID.unpack_from(payload, 0)[0]
    return method_id


def method_label(method_id: int) -> str:
    """``class.method`` of a method id, numbered as in the spec."""
    return f"{method_id >> _CLASS_SHIFT}.{method_id & _METHOD_MASK}"


class Confirm(NamedTuple):
    """A publisher confirm: basic.ack or basic.nack from the broker."""

    tag: int
    """The sequence number of the message it confirms..."""
    multiple: bool
    """... and, when set, of every message before it."""


def decode_confirm(method_id: int, payload: bytes) -> Confirm:
    if len(payload) < _ACK_PAYLOAD.size:
        raise FrameError(f"{METHOD_NAMES[method_id]} of {len(payload)} bytes cut "
                         f"short: its fields take {_ACK_PAYLOAD.size}")
    _, tag, flags = _ACK_PAYLOAD.unpack_from(payload, 0)
    return Confirm(tag, bool(flags & _MULTIPLE))


class ContentMethod(NamedTuple):
    """What the driver reads of basic.deliver, basic.get-ok or basic.return: a method
    whose message's content follows."""

    tag: int
    redelivered: bool
    routing_key: str
    reply: str
    """For a returned message: why the broker could not route it."""
    left: int = -1
    """For basic.get-ok: the messages left in the queue after this one (-1: not told)."""


def decode_content_method(method_id: int, payload: bytes) -> ContentMethod:
    """The fields of basic.deliver, basic.get-ok or basic.return; FrameError when they
    run past the end of ``payload``."""
    try:
        if method_id == BASIC_RETURN:
            code = _U16.unpack_from(payload, METHOD_ID.size)[0]
            text, at = _read_shortstr(payload, METHOD_ID.size + _U16.size)
            _, at = _read_shortstr(payload, at)  # exchange
            routing_key, at = _read_shortstr(payload, at)
            method = ContentMethod(0, False, routing_key, f"{code} {text}")
        else:
            at = METHOD_ID.size
            if method_id == BASIC_DELIVER:
                at += 1 + payload[at]  # consumer tag
            tag, redelivered = _DELIVERY.unpack_from(payload, at)
            _, at = _read_shortstr(payload, at + _DELIVERY.size)  # exchange
            routing_key, at = _read_shortstr(payload, at)
            if method_id == BASIC_GET_OK:
                left = _ID.unpack_from(payload, at)[0]  # the message count
                at += _ID.size
                method = ContentMethod(tag, bool(redelivered), routing_key, "", left)
            else:
                method = ContentMethod(tag, bool(redelivered), routing_key, "")
    except (IndexError, struct.error):
        at = len(payload) + 1
    if at > len(payload):
        raise FrameError(f"{METHOD_NAMES[method_id]} cut short: its fields take more than "
                         f"the {len(payload)} bytes of its frame")
    return method


# -- field tables in -------------------------------------------------------------------


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
        if kind == _BOOLEAN:
            return bool(value), stop
        if kind == _TIMESTAMP:
            try:
                return datetime.fromtimestamp(value, timezone.utc), stop
            except (OverflowError, OSError, ValueError):
                return _LeftOut(f"the timestamp {value} is out of range"), stop
        if (kind == _FLOAT or kind == _DOUBLE) and not math.isfinite(value):
            return _LeftOut(f"the float {value} is not a number"), stop
        return value, stop
    if kind in _SIZED:
        start, stop = _sized(data, offset, end, f"its {chr(kind)!r} value")
        if kind == _LONG_STRING:
            return data[start:stop].decode("utf-8", "replace"), stop
        if kind == _BYTE_ARRAY:
            return bytes(data[start:stop]), stop
        items: list[Any] = []
        while start < stop:
            item, start = _decode_value(data, start, stop)
            if not isinstance(item, _LeftOut):
                items.append(item)
        return items, stop
    if kind == _TABLE:
        return decode_table(data, offset, end)
    if kind == _DECIMAL:
        if offset + _DECIMAL_VALUE.size > end:
            raise FrameError(f"its 'D' value takes {_DECIMAL_VALUE.size} bytes, "
                             f"{end - offset} left")
        scale, raw = _DECIMAL_VALUE.unpack_from(data, offset)
        return Decimal(raw) * Decimal(10) ** -scale, offset + _DECIMAL_VALUE.size
    if kind == _VOID:
        return None, offset
    raise _Unreadable(f"unknown field type {chr(kind)!r}")


def _sized(data: bytes | bytearray, offset: int, end: int, what: str) -> tuple[int, int]:
    """Where the bytes of a value that starts with its 32-bit size begin and end; raises
    FrameError naming ``what`` when the size, or the value, runs past ``end``."""
    start = offset + _ID.size
    if start > end:
        raise FrameError(f"{what} takes {_ID.size} bytes for its size, {end - offset} left")
    stop = start + _ID.unpack_from(data, offset)[0]
    if stop > end:
        raise FrameError(f"{what} of {stop - start} bytes runs past the end "
                         f"({end - start} bytes left)")
    return start, stop


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
    offset, end = _sized(data, offset, limit, "a field table")
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
            if kind == _LONG_LONG:
                offset = at + 1 + _Q.size
                if offset > end:
                    raise FrameError(f"header {key!r}: its 'l' value takes {_Q.size} bytes, "
                                     f"{end - at - 1} left")
                table[key] = _Q.unpack_from(data, at + 1)[0]
            elif kind == _LONG_STRING and at + _LONG_STRING_HEAD <= end:
                begin = at + _LONG_STRING_HEAD
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


# -- content headers in ----------------------------------------------------------------


def content_body_size(payload: bytes) -> int:
    """The body size a content header announces."""
    if len(payload) < CONTENT_HEAD:
        raise FrameError(f"{len(payload)} bytes, fewer than the {CONTENT_HEAD} of its "
                         "class, weight and body size")
    _, _, size = _CONTENT.unpack_from(payload, 0)
    body_size: int = size
    return body_size


class Properties(NamedTuple):
    """The basic properties the driver reads back; the others are skipped."""

    headers: dict[str, Any]
    priority: int | None
    message_id: str | None


def decode_properties(data: bytes, offset: int) -> Properties:
    """Headers, priority and message id of the properties at ``offset``. Raises
    FrameError when they run past the end of ``data``."""
    headers: dict[str, Any] = {}
    priority: int | None = None
    message_id: str | None = None
    flags = 0
    shift = 0
    try:
        while True:
            word = _U16.unpack_from(data, offset)[0]
            offset += _U16.size
            flags |= word << shift
            if not word & _MORE_FLAGS:
                break
            shift += _FLAGS_BITS
        if flags & _CONTENT_TYPE:
            offset += 1 + data[offset]
        if flags & _CONTENT_ENCODING:
            offset += 1 + data[offset]
        if flags & _HEADERS:
            headers, offset = decode_table(data, offset)
        if flags & _DELIVERY_MODE:
            offset += 1
        if flags & _PRIORITY:
            priority = data[offset]
            offset += 1
        for bit in (_CORRELATION_ID, _REPLY_TO, _EXPIRATION):
            if flags & bit:
                offset += 1 + data[offset]
        if flags & _MESSAGE_ID:
            message_id, offset = _read_shortstr(data, offset)
    except (IndexError, struct.error):
        offset = len(data) + 1
    if offset > len(data):
        raise FrameError(f"its properties (flags {flags:#06x}) run past the end of its "
                         f"{len(data)} bytes")
    return Properties(headers, priority, message_id)
