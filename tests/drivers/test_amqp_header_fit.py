"""Header fields of the AMQP driver bounded in bytes, with no server: UTF-8 safe cuts that
never split a character, and properties fitted to a connection's frame_max (the error text
cut, sharing the room; headers of others left out only when that is not enough)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pika", reason="pika is not installed (pip install -e '.[amqp]')")

from queue_core.drivers.amqp.codec import (  # noqa: E402
    CONTENT_HEAD,
    FRAME_OVERHEAD,
    cut_utf8,
    decode_table,
    encode_properties,
    fit_properties,
)

ROOM = 4096 - FRAME_OVERHEAD - CONTENT_HEAD
"""Bytes of properties a connection with RabbitMQ's smallest frame_max takes."""

TEXTS = ["plain ascii " * 40, "é" * 300, "€uro " * 90, "𝄞" * 120, "aé€𝄞" * 70]


def _size(text: str) -> int:
    return len(text.encode())


def _read_headers(properties: bytes) -> dict[str, Any]:
    # The flags (2 bytes), then the headers table: the driver writes them first.
    return decode_table(properties, 2)[0]


# -- cutting, no server ----------------------------------------------------------------


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("keep_end", [False, True])
def test_a_cut_keeps_whole_characters_within_the_limit(text: str, keep_end: bool) -> None:
    whole = _size(text)
    for limit in range(0, whole + 3):
        cut = cut_utf8(text, limit, keep_end=keep_end, mark=False)
        assert _size(cut) <= limit
        assert _size(cut) > limit - 4  # at most the bytes of one character left over
        assert (text.endswith(cut) if keep_end else text.startswith(cut))
        if limit >= whole:
            assert cut == text


@pytest.mark.parametrize("text", TEXTS)
def test_a_cut_says_so_when_there_is_room(text: str) -> None:
    head = cut_utf8(text, 200)
    assert _size(head) <= 200 and head.endswith(f" [cut from {_size(text)} bytes]")
    assert text.startswith(head[:head.rindex(" [cut from")])
    tail = cut_utf8(text, 200, keep_end=True)
    assert _size(tail) <= 200 and tail.startswith(f"[cut from {_size(text)} bytes] ")
    assert text.endswith(tail[tail.index("] ") + 2:])
    assert cut_utf8(text, 10) == cut_utf8(text, 10, mark=False)  # no room for the note


def test_a_lone_surrogate_is_written_not_raised() -> None:
    text = "cannot open '\udcff\udcfe.txt': " + "é" * 50
    cut = cut_utf8(text, 40)
    assert _size(cut) <= 40 and cut.startswith("cannot open '??.txt'")
    properties = encode_properties("id-1", None, {"qc-error": text})
    assert _read_headers(properties)["qc-error"].startswith("cannot open '??.txt'")


SHORTEN = (("qc-traceback", True, 32768), ("qc-error", False, 8192),
           ("qc-error-type", False, 1000))


def test_fitting_cuts_the_traceback_keeping_its_end_and_a_short_message_whole() -> None:
    traceback = "Traceback (most recent call last):\n" + "  File x, line 1\n" * 400 + \
        "RuntimeError: " + "€" * 100 + " failed\n"
    headers = {"qc-attempt": 3, "qc-ttr": 60000, "qc-error-type": "RuntimeError",
               "qc-error": "é" * 800, "qc-traceback": traceback, "qc-failed-at": 1}
    fitted = fit_properties("job-1", 2, headers, ROOM, SHORTEN)
    assert len(fitted.properties) <= ROOM
    assert fitted.cut == ["qc-traceback"] and fitted.dropped == []
    found = _read_headers(fitted.properties)
    assert found["qc-error"] == "é" * 800 and found["qc-error-type"] == "RuntimeError"
    assert found["qc-traceback"].endswith(" failed\n")
    assert found["qc-traceback"].startswith(f"[cut from {_size(traceback)} bytes] ")
    assert (found["qc-attempt"], found["qc-ttr"], found["qc-failed-at"]) == (3, 60000, 1)
    # Only what is needed goes: the properties fill the room, but for a character.
    assert len(fitted.properties) >= ROOM - 3


def test_fitting_shares_the_room_between_a_long_message_and_its_traceback() -> None:
    headers = {"qc-error": "€" * 5000, "qc-traceback": "𝄞" * 5000, "qc-attempt": 1,
               "qc-error-type": "ValueError"}
    fitted = fit_properties("job-2", None, headers, ROOM, SHORTEN)
    assert len(fitted.properties) <= ROOM
    found = _read_headers(fitted.properties)
    assert found["qc-error-type"] == "ValueError"
    message, traceback = found["qc-error"], found["qc-traceback"]
    assert message.startswith("€" * 500) and message.endswith(" [cut from 15000 bytes]")
    assert traceback.endswith("𝄞" * 400) and traceback.startswith("[cut from 20000 bytes] ")
    assert abs(_size(message) - _size(traceback)) <= 4
    assert sorted(fitted.cut) == ["qc-error", "qc-traceback"] and fitted.dropped == []


def test_headers_of_others_go_only_when_cutting_the_error_is_not_enough() -> None:
    headers = {"qc-attempt": 2, "qc-ttr": 1000, "trace": "t" * 3000, "span": "s" * 2000,
               "small": "kept", "opaque": object(), "qc-error": "e" * 3000}
    fitted = fit_properties("job-3", None, headers, ROOM, SHORTEN,
                            lambda key, value: key.startswith("qc-"))
    assert len(fitted.properties) <= ROOM
    assert fitted.dropped == ["opaque", "trace"]  # the unencodable one, then the largest
    found = _read_headers(fitted.properties)
    assert {key: value for key, value in found.items() if key != "qc-error"} == {
        "qc-attempt": 2, "qc-ttr": 1000, "span": "s" * 2000, "small": "kept"}
    # Left out before the error was cut: the error keeps the room they left.
    assert 1500 < _size(found["qc-error"]) < 3000
    small = fit_properties("job-4", None, {"trace": "t" * 3000, "qc-error": "e" * 3000},
                           ROOM, SHORTEN)
    assert small.dropped == [] and small.cut == ["qc-error"]


def test_fitting_cuts_a_message_id_and_drops_keys_a_short_string_cannot_hold() -> None:
    fitted = fit_properties("\ufffd" * 200, None, {"k" * 300: 1, "ok": 2}, ROOM)
    assert fitted.dropped == ["k" * 80]
    assert len(fitted.properties) <= ROOM
    message_id = fitted.properties[-1 - 255:]
    assert message_id[0] == 255 and message_id[1:].decode() == "\ufffd" * 85


def test_texts_are_cut_to_their_most_bytes_even_with_room_to_spare() -> None:
    headers = {"qc-error": "é" * 10000, "qc-traceback": "x" * 100}
    fitted = fit_properties("job-5", None, headers, 10**6, SHORTEN)
    found = _read_headers(fitted.properties)
    assert _size(found["qc-error"]) <= 8192
    assert found["qc-error"].endswith(" [cut from 20000 bytes]")
    assert found["qc-traceback"] == "x" * 100
    assert fitted.cut == []  # cut to its most bytes, not for want of room


def test_a_header_value_pika_cannot_read_leaves_the_rest_of_the_message_readable() -> None:
    # A double that is not a number: pika turns doubles into ints, and fails on this one.
    import struct
    good = b"\x02ok" + b"l" + struct.pack(">q", 7)
    bad = b"\x03nan" + b"d" + struct.pack(">d", float("nan"))
    data = struct.pack(">I", len(good + bad)) + good + bad + b"after"
    table, end = decode_table(data, 0)
    assert table == {"ok": 7}
    assert data[end:] == b"after"
