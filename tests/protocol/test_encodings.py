"""Encodings: the subprotocol a client offers picks JSON or MessagePack, both ways."""

from __future__ import annotations

import json
import sys

import msgpack
import pytest

from jobupdates.protocol.encodings import (
    JSON_SUBPROTOCOL,
    MSGPACK_SUBPROTOCOL,
    Encoding,
    Unencodable,
    asgi_send,
    check_json,
    negotiate,
    payload,
)
from jobupdates.protocol.frames import (
    ClientMessage,
    ClientMessageType,
    ErrorCode,
    FrameError,
    error_frame,
    parse_client_frame,
)


@pytest.mark.parametrize(
    ("offered", "selected", "encoding"),
    [
        ((), None, Encoding.JSON),
        ((JSON_SUBPROTOCOL,), JSON_SUBPROTOCOL, Encoding.JSON),
        ((MSGPACK_SUBPROTOCOL,), MSGPACK_SUBPROTOCOL, Encoding.MSGPACK),
        ((JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL), MSGPACK_SUBPROTOCOL, Encoding.MSGPACK),
        ((MSGPACK_SUBPROTOCOL, "token.abc"), MSGPACK_SUBPROTOCOL, Encoding.MSGPACK),
        (("token.abc",), None, Encoding.JSON),
        (("jobupdates.v2",), None, Encoding.JSON),
    ],
)
def test_negotiate_selects_msgpack_then_json_and_never_a_token(offered, selected, encoding):
    assert negotiate(offered) == (selected, encoding)
    assert Encoding.of(selected) is encoding


def test_a_server_message_is_the_same_map_in_msgpack():
    text = error_frame(ErrorCode.RATE_LIMITED, "é, too fast")
    packed = payload(text, Encoding.MSGPACK)
    assert msgpack.unpackb(packed, raw=False) == json.loads(text)
    assert payload(text, Encoding.JSON) == text.encode()
    assert asgi_send(text, Encoding.JSON) == {"type": "websocket.send", "text": text}
    assert asgi_send(text, Encoding.MSGPACK) == {"type": "websocket.send", "bytes": packed}


def parse_msgpack(text: str | None, data: bytes | None, max_chars: int = 4096) -> ClientMessage:
    return parse_client_frame(text, data, max_chars=max_chars, encoding=Encoding.MSGPACK)


def test_msgpack_client_messages_parse_like_json_ones():
    subscribe = {"type": "subscribe", "job_ids": ["a", 7, "a"]}
    assert parse_msgpack(None, msgpack.packb(subscribe)) == parse_client_frame(
        json.dumps(subscribe), None
    )
    assert parse_msgpack(None, msgpack.packb({"type": "ping"})) == ClientMessage(
        ClientMessageType.PING
    )


@pytest.mark.parametrize(
    ("text", "data", "code", "detail"),
    [
        ('{"type":"ping"}', None, ErrorCode.TEXT_FRAME, "got a text frame of 15 characters"),
        (None, b"\xc1", ErrorCode.INVALID_MSGPACK, "got invalid MessagePack"),
        (None, msgpack.packb({"type": "ping"}) + b"\x00", ErrorCode.INVALID_MSGPACK, "invalid"),
        (None, msgpack.packb({1: "x"}), ErrorCode.INVALID_MSGPACK, "invalid MessagePack"),
        (None, b"\x92\x01", ErrorCode.INVALID_MSGPACK, "invalid MessagePack"),
        (None, b"\x91" * 3000 + b"\xc0", ErrorCode.INVALID_MSGPACK, "(StackError)"),
        (None, msgpack.packb([1]), ErrorCode.NOT_AN_OBJECT, "expected a MessagePack map"),
        (None, msgpack.packb({"type": "x" * 9000}), ErrorCode.FRAME_TOO_LARGE, "at most 4096"),
        (None, msgpack.packb({"type": "nope"}), ErrorCode.UNKNOWN_TYPE, "got 'nope'"),
        (
            None,
            msgpack.packb({"type": "subscribe", "job_ids": [b"bin"]}),
            ErrorCode.INVALID_JOB_IDS,
            "job_ids[0]",
        ),
    ],
)
def test_bad_msgpack_client_messages_say_what_was_expected(text, data, code, detail):
    with pytest.raises(FrameError) as raised:
        parse_msgpack(text, data)
    assert raised.value.code is code
    assert detail in raised.value.detail


def test_a_json_connection_still_refuses_binary_frames():
    with pytest.raises(FrameError) as raised:
        parse_client_frame(None, msgpack.packb({"type": "ping"}))
    assert raised.value.code is ErrorCode.BINARY_FRAME


# What an older bridge may have recorded: a text one encoding cannot carry

INFINITE = '{"type":"job_update","job_id":"n","status":"processing","data":{"x":Infinity}}'
HUGE = '{"type":"job_update","job_id":"n","status":"processing","data":{"x":18446744073709551616}}'


@pytest.mark.parametrize("constant", ["Infinity", "-Infinity", "NaN"])
def test_a_text_with_a_non_standard_constant_is_carried_by_neither(constant):
    text = INFINITE.replace("Infinity", constant)
    for encoding in Encoding:
        with pytest.raises(Unencodable) as refused:
            asgi_send(text, encoding)
        assert refused.value.encoding is encoding
        assert refused.value.detail == (
            f"expected JSON text, got the non-standard constant {constant}"
        )
        with pytest.raises(Unencodable):
            payload(text, encoding)


def test_an_integer_beyond_64_bits_is_carried_by_json_only():
    assert asgi_send(HUGE, Encoding.JSON) == {"type": "websocket.send", "text": HUGE}
    assert payload(HUGE, Encoding.JSON) == HUGE.encode()
    with pytest.raises(Unencodable) as refused:
        payload(HUGE, Encoding.MSGPACK)
    assert refused.value.encoding is Encoding.MSGPACK
    assert refused.value.detail.endswith("got the integer 18446744073709551616")
    edge = HUGE.replace("18446744073709551616", "18446744073709551615")
    assert msgpack.unpackb(payload(edge, Encoding.MSGPACK))["data"] == {"x": 2**64 - 1}


def test_the_json_check_parses_only_a_text_that_may_hold_a_constant():
    check_json('{"data":"NaN and -Infinity, in a string"}')  # parsed: fine
    check_json('{"data":' + "[" * 100_000)  # not parsed: no constant in it
    with pytest.raises(Unencodable, match="expected JSON text, Expecting"):
        check_json('{"data":"Infinity",')


def test_a_text_msgpack_cannot_nest_is_unencodable_not_an_error():
    """Python 3.13's json nests deeper than MessagePack's 1,024 levels (3.11's, here)."""
    deep = '{"data":' + "[" * 1100 + "]" * 1100 + "}"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 5000))
    try:
        with pytest.raises(Unencodable, match="expected JSON text MessagePack carries"):
            payload(deep, Encoding.MSGPACK)
    finally:
        sys.setrecursionlimit(limit)
