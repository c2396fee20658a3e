"""The sans-I/O protocol: Redis payloads and client frames, on tables of inputs."""

from __future__ import annotations

import json
import sys

import hypothesis
import msgpack
import pytest
from hypothesis import strategies as st

from jobupdates import protocol
from jobupdates.protocol import (
    ClientMessageType,
    ErrorCode,
    FrameError,
    InvalidJobUpdate,
    JobUpdate,
    RejectReason,
    parse_client_frame,
    parse_job_update,
)

GOOD = [
    (
        b'{"job_id":"j-1","status":"completed","data":{"k":"v"}}',
        JobUpdate("j-1", "completed", {"k": "v"}),
    ),
    ('{"job_id":"j-1","status":"queued"}', JobUpdate("j-1", "queued", None)),
    (b'{"job_id":42,"status":"failed","data":[1,2]}', JobUpdate("42", "failed", [1, 2])),
    (
        b'{"job_id":"j","status":"pending","data":"text","extra":1}',
        JobUpdate("j", "pending", "text"),
    ),
    (
        '{"job_id":"ジョブ","status":"processing","data":{"msg":"日本"}}'.encode(),
        JobUpdate("ジョブ", "processing", {"msg": "日本"}),
    ),
    (b' {"job_id":"j","status":"cancelled","data":null} ', JobUpdate("j", "cancelled", None)),
    (
        b'{"job_id":"j","status":"completed","data":{"n":' + b"9" * 4000 + b"}}",
        JobUpdate("j", "completed", {"n": int("9" * 4000)}),
    ),
]


@pytest.mark.parametrize(("payload", "expected"), GOOD)
def test_valid_payloads_parse(payload, expected):
    assert parse_job_update(payload) == expected


BAD = [
    (b"", RejectReason.INVALID_JSON),
    (b"not json", RejectReason.INVALID_JSON),
    (b'{"job_id":"a",', RejectReason.INVALID_JSON),
    (b"\xff\xfe{}", RejectReason.INVALID_UTF8),
    (b'{"job_id":"\xed\xa0\x80","status":"completed"}', RejectReason.INVALID_UTF8),
    (b"[1]", RejectReason.NOT_AN_OBJECT),
    (b"null", RejectReason.NOT_AN_OBJECT),
    (b'"s"', RejectReason.NOT_AN_OBJECT),
    (b"{}", RejectReason.MISSING_JOB_ID),
    (b'{"job_id":null,"status":"completed"}', RejectReason.MISSING_JOB_ID),
    (b'{"job_id":"","status":"completed"}', RejectReason.MISSING_JOB_ID),
    (b'{"job_id":" \\t","status":"completed"}', RejectReason.MISSING_JOB_ID),
    (b'{"job_id":true,"status":"completed"}', RejectReason.INVALID_JOB_ID),
    (b'{"job_id":1.5,"status":"completed"}', RejectReason.INVALID_JOB_ID),
    (b'{"job_id":{"a":1},"status":"completed"}', RejectReason.INVALID_JOB_ID),
    (b'{"job_id":"' + b"x" * 256 + b'","status":"completed"}', RejectReason.INVALID_JOB_ID),
    (b'{"job_id":"a"}', RejectReason.INVALID_STATUS),
    (b'{"job_id":"a","status":1}', RejectReason.INVALID_STATUS),
    (b'{"job_id":"a","status":null}', RejectReason.INVALID_STATUS),
    (b'{"job_id":"a","status":"done"}', RejectReason.UNKNOWN_STATUS),
    (b'{"job_id":"a","status":"COMPLETED"}', RejectReason.UNKNOWN_STATUS),
    (b'{"job_id":"a","status":"completed","data":NaN}', RejectReason.INVALID_JSON),
    (b'{"job_id":"a","status":"completed","data":-Infinity}', RejectReason.INVALID_JSON),
    (b'{"job_id":"a","status":"completed","data":' + b"9" * 5000 + b"}", RejectReason.INVALID_JSON),
    (b"[" * 50_000 + b"]" * 50_000, RejectReason.TOO_DEEP),
]


@pytest.mark.parametrize(("payload", "reason"), BAD)
def test_invalid_payloads_are_rejected_with_their_reason(payload, reason):
    with pytest.raises(InvalidJobUpdate) as rejected:
        parse_job_update(payload)
    assert rejected.value.reason is reason
    assert rejected.value.detail.startswith("expected"), rejected.value.detail


def test_oversize_payload_is_rejected_before_decoding():
    with pytest.raises(InvalidJobUpdate) as rejected:
        parse_job_update(b"\xff" * 11, max_bytes=10)
    assert rejected.value.reason is RejectReason.TOO_LARGE
    assert rejected.value.detail == "expected at most 10 bytes, got 11"
    assert parse_job_update(b'{"job_id":"a","status":"queued"}', max_bytes=32).job_id == "a"


def test_statuses_are_configurable():
    assert (
        parse_job_update(b'{"job_id":"a","status":"paused"}', statuses=("paused",)).status
        == "paused"
    )
    with pytest.raises(InvalidJobUpdate, match="one of paused; got 'queued'"):
        parse_job_update(b'{"job_id":"a","status":"queued"}', statuses=("paused",))


def test_frame_has_exactly_the_four_fields_and_keeps_unicode():
    frame = JobUpdate("j-1", "completed", {"k": "v", "u": "é"}).to_frame()
    assert json.loads(frame) == {
        "type": "job_update",
        "job_id": "j-1",
        "status": "completed",
        "data": {"k": "v", "u": "é"},
    }
    assert "é" in frame


NUMBERS_NOT_CARRIED = [
    b'{"job_id":"n","status":"processing","data":{"x":1e400}}',
    b'{"job_id":"n","status":"processing","data":[-1E+999]}',
    b'{"job_id":"n","status":"processing","data":{"x":18446744073709551616}}',
    b'{"job_id":"n","status":"processing","data":-9223372036854775809}',
    b'{"job_id":"n","status":"processing","data":{"a":[1,{"b":[2,' + b"9" * 4000 + b"]}]}}",
]


@pytest.mark.parametrize("payload", NUMBERS_NOT_CARRIED)
def test_numbers_json_or_msgpack_clients_cannot_receive_are_invalid_number(payload):
    with pytest.raises(InvalidJobUpdate) as rejected:
        parse_job_update(payload).to_frame()  # the bridge encodes each update it accepts
    assert rejected.value.reason is RejectReason.INVALID_NUMBER
    assert rejected.value.detail.startswith("expected numbers both JSON and MessagePack")


def test_numbers_at_the_edges_of_the_range_reach_both_encodings_unchanged():
    data = {"max": 2**64 - 1, "min": -(2**63), "large": 1.7976931348623157e308, "tiny": 5e-324}
    frame = JobUpdate("j", "queued", data).to_frame()
    assert json.loads(frame, parse_constant=pytest.fail)["data"] == data
    assert msgpack.unpackb(msgpack.packb(json.loads(frame)))["data"] == data


def test_nesting_msgpack_cannot_carry_is_too_deep():
    """Python 3.13's json parses deeper than MessagePack's 1,024 levels (3.11's, here)."""
    data: list = []
    for _ in range(1100):
        data = [data]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 5000))
    try:
        with pytest.raises(InvalidJobUpdate) as rejected:
            JobUpdate("j", "queued", data).to_frame()
    finally:
        sys.setrecursionlimit(limit)
    assert rejected.value.reason is RejectReason.TOO_DEEP
    assert rejected.value.detail.startswith("expected JSON nested within")


def test_lone_surrogate_cannot_reach_a_client():
    update = parse_job_update(b'{"job_id":"a","status":"queued","data":"\\ud800"}')
    with pytest.raises(InvalidJobUpdate) as rejected:
        update.to_frame()
    assert rejected.value.reason is RejectReason.UNENCODABLE


CLIENT_BAD = [
    (None, b"\x00", ErrorCode.BINARY_FRAME),
    ("x" * 4097, None, ErrorCode.FRAME_TOO_LARGE),
    ("nope", None, ErrorCode.INVALID_JSON),
    ("[" * 3000, None, ErrorCode.INVALID_JSON),
    ("[]", None, ErrorCode.NOT_AN_OBJECT),
    ("{}", None, ErrorCode.UNKNOWN_TYPE),
    ('{"type":"PING"}', None, ErrorCode.UNKNOWN_TYPE),
    ('{"type":["ping"]}', None, ErrorCode.UNKNOWN_TYPE),
]


@pytest.mark.parametrize(("text", "data", "code"), CLIENT_BAD)
def test_bad_client_frames_get_a_code(text, data, code):
    with pytest.raises(FrameError) as error:
        parse_client_frame(text, data)
    assert error.value.code is code
    assert error.value.detail.startswith("expected"), error.value.detail


def test_ping_frame():
    assert parse_client_frame('{"type":"ping"}', None).type is ClientMessageType.PING


def test_server_frames():
    assert json.loads(protocol.welcome_frame("abc")) == {"type": "welcome", "client_id": "abc"}
    assert json.loads(protocol.pong_frame()) == {"type": "pong"}
    assert json.loads(protocol.error_frame(ErrorCode.UNAUTHENTICATED, "log in")) == {
        "type": "error",
        "code": "unauthenticated",
        "message": "log in",
    }


def test_protocol_is_sans_io():
    import subprocess
    import sys

    code = (
        "import sys, jobupdates.protocol;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in"
        " {'django', 'asyncio', 'redis', 'channels', 'socket'});"
        "print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"protocol imported I/O modules: {result.stdout}{result.stderr}"


# Positions and recovery


def P(text: str):
    from jobupdates.protocol.positions import Position

    return Position.parse(text)


@pytest.mark.parametrize("text", ["1-0", "1732570000000-12", b"5-5"])
def test_positions_parse_and_print(text):
    expected = text.decode() if isinstance(text, bytes) else text
    assert str(P(text)) == expected


@pytest.mark.parametrize(
    "text", ["", "1", "1-", "-1", "a-b", "1-0 ", "1-0-0", "1" * 21 + "-0", "\uff11-0"]
)
def test_bad_positions_say_what_was_expected(text):
    from jobupdates.protocol.positions import PositionError

    with pytest.raises(PositionError, match="expected a position like"):
        P(text)


@pytest.mark.parametrize(
    "text",
    [
        "99999999999999999999-0",
        "0-99999999999999999999",
        f"{2**64}-0",
        f"0-{2**64}",
        f"{2**64 - 1}-{2**64}",
    ],
)
def test_positions_beyond_64_bits_are_refused_before_redis_sees_them(text):
    from jobupdates.protocol.positions import PositionError

    too_large = r"expected a position like .* parts of at most 18446744073709551615, got '"
    with pytest.raises(PositionError, match=too_large):
        P(text)


@hypothesis.given(
    st.integers(min_value=0, max_value=10**20 - 1), st.integers(min_value=0, max_value=10**20 - 1)
)
def test_a_position_parses_exactly_when_both_parts_fit_in_64_bits(ms, seq):
    from jobupdates.protocol.positions import PositionError

    text = f"{ms}-{seq}"
    if ms < 2**64 and seq < 2**64:
        assert str(P(text)) == text
    else:
        with pytest.raises(PositionError):
            P(text)


def test_the_largest_64_bit_position_parses():
    top = f"{2**64 - 1}-{2**64 - 1}"
    assert str(P(top)) == top
    assert str(P("00000000000000000001-0")) == "1-0", "expected leading zeros to be read"


def test_positions_order_numerically_not_as_text():
    assert P("9-0") < P("10-0") < P("10-1") < P("11-0")


@pytest.mark.parametrize(
    ("since", "oldest", "newest", "expected"),
    [
        ("5-0", "1-0", "9-0", None),
        ("1-0", "1-0", "9-0", None),
        ("9-0", "1-0", "9-0", None),
        ("0-5", "1-0", "9-0", "position_too_old"),
        ("9-1", "1-0", "9-0", "unknown_position"),
        ("5-0", None, None, "unknown_position"),
    ],
)
def test_recovery_is_all_or_nothing(since, oldest, newest, expected):
    from jobupdates.protocol.positions import plan_recovery

    decision = plan_recovery(P(since), oldest and P(oldest), newest and P(newest))
    assert decision == expected


@pytest.mark.parametrize(
    ("since", "expected"),
    [("5-0", "position_lost"), ("9-1", "unknown_position"), ("0-5", "position_too_old")],
)
def test_a_seen_position_the_history_no_longer_holds_was_lost(since, expected):
    from jobupdates.protocol.positions import plan_recovery

    assert plan_recovery(P(since), P("1-0"), P("9-0"), held=False) == expected


@pytest.mark.parametrize(("since", "expected"), [("3-0", "position_lost"), ("7-0", None)])
def test_a_position_before_a_known_loss_cannot_be_replayed(since, expected):
    from jobupdates.protocol.positions import plan_recovery

    assert plan_recovery(P(since), P("1-0"), P("9-0"), lost=P("6-0")) == expected


def test_frames_gain_a_position_and_become_state_frames():
    from jobupdates.protocol.positions import as_state, with_position

    frame = with_position(JobUpdate("j", "queued", {"a": [1]}).to_frame(), "7-1")
    assert json.loads(frame) == {
        "type": "job_update",
        "job_id": "j",
        "status": "queued",
        "data": {"a": [1]},
        "position": "7-1",
    }
    assert json.loads(as_state(frame))["type"] == "job_state"
    with pytest.raises(ValueError, match="expected a frame starting"):
        as_state('{"type":"pong"}')


# Subscriptions and the connect request


def test_subscribe_and_unsubscribe_frames():
    message = parse_client_frame('{"type":"subscribe","job_ids":["a",7,"a"]}', None)
    assert message.type is ClientMessageType.SUBSCRIBE
    assert message.job_ids == ("a", "7")
    assert parse_client_frame('{"type":"unsubscribe","job_ids":["b"]}', None).job_ids == ("b",)


@pytest.mark.parametrize(
    ("frame", "detail"),
    [
        ('{"type":"subscribe"}', "expected job_ids to be a non-empty list, got null"),
        ('{"type":"subscribe","job_ids":[]}', "expected job_ids to be a non-empty list, got list"),
        ('{"type":"subscribe","job_ids":"a"}', "got str"),
        ('{"type":"subscribe","job_ids":["a",""]}', "job_ids[1]: expected a non-empty job_id"),
        ('{"type":"unsubscribe","job_ids":[true]}', "job_ids[0]: expected job_id to be a string"),
    ],
)
def test_bad_subscriptions_name_the_wrong_entry(frame, detail):
    with pytest.raises(FrameError) as error:
        parse_client_frame(frame, None)
    assert error.value.code is ErrorCode.INVALID_JOB_IDS
    assert detail in error.value.detail


def test_connect_query():
    from jobupdates.protocol.connect import ConnectRequest, parse_connect_query

    assert parse_connect_query(b"") == ConnectRequest()
    assert parse_connect_query(b"since=5-1&job=a&job=b%20c&job=a&x=1") == ConnectRequest(
        since="5-1", job_ids=("a", "b c")
    )
    with pytest.raises(FrameError) as error:
        parse_connect_query(b"job=")
    assert error.value.code is ErrorCode.INVALID_JOB_IDS
    with pytest.raises(FrameError) as error:
        parse_connect_query("since=1-0&since=2-0")
    assert error.value.code is ErrorCode.INVALID_POSITION


def test_reset_and_subscription_frames():
    from jobupdates.protocol.frames import ServerMessageType, reset_frame, subscriptions_frame

    assert json.loads(reset_frame("position_too_old", "reload")) == {
        "type": "reset",
        "reason": "position_too_old",
        "message": "reload",
    }
    assert json.loads(subscriptions_frame(ServerMessageType.SUBSCRIBED, ("a",))) == {
        "type": "subscribed",
        "job_ids": ["a"],
    }


def test_loggable_escapes_line_breaks_and_truncates():
    from jobupdates.protocol.logs import loggable

    assert loggable("a\nCRITICAL django.security forged") == "'a\\nCRITICAL django.security forged'"
    long = loggable("x" * 15_000)
    assert "\n" not in long
    assert long.endswith("... (14802 more characters)"), long[-40:]
    assert len(long) < 250
