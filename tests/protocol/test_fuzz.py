"""Hostile input: the parsers never crash, and every rejection says why.

What the bridge accepts, clients can read: its frame is strict JSON (no
``Infinity`` or ``NaN``) and is the same value once re-encoded in MessagePack,
as a server process does for MessagePack clients.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobupdates.protocol import (
    DEFAULT_STATUSES,
    ErrorCode,
    FrameError,
    InvalidJobUpdate,
    RejectReason,
    parse_client_frame,
    parse_job_update,
)
from jobupdates.protocol.encodings import Encoding, payload
from jobupdates.protocol.positions import Position, PositionError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.integers(min_value=-(2**63) - 2, max_value=2**64 + 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=30,
)
odd_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=200)


CLIENT_DEPTH = 1000
"""The deepest nesting MessagePack clients decode (jobupdates.js's ``MAX_DEPTH``;
msgpack-python's unpacker stops at 1,023): deeper updates are not checked here."""


def depth(value: Any) -> int:
    """How deep arrays and maps nest in ``value`` (a scalar: 0)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level + 1)
            stack.extend(
                (child, level + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def not_json(name: str) -> Any:
    raise AssertionError(f"expected strict JSON, got the constant {name}")


def check_update(raw: bytes) -> None:
    try:
        update = parse_job_update(raw, max_bytes=64 * 1024)
        frame = update.to_frame()
    except InvalidJobUpdate as exc:
        assert isinstance(exc.reason, RejectReason)
        assert exc.detail.startswith("expected"), exc.detail
        return
    decoded = json.loads(frame, parse_constant=not_json)  # what a browser's JSON.parse reads
    packed = payload(frame, Encoding.MSGPACK)  # as a server process encodes it: never fails
    if depth(decoded) <= CLIENT_DEPTH:
        assert msgpack.unpackb(packed, raw=False) == decoded
    assert decoded["type"] == "job_update"
    assert decoded["status"] in DEFAULT_STATUSES
    assert decoded["job_id"] == update.job_id
    assert update.job_id.strip()
    frame.encode("utf-8")


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(payload):
    check_update(payload)


@FUZZ
@given(json_values)
def test_random_json_values(value):
    check_update(json.dumps(value).encode())


@FUZZ
@given(
    job_id=json_values | odd_text,
    status=st.sampled_from(DEFAULT_STATUSES) | odd_text | json_values,
    data=json_values,
)
def test_near_valid_updates(job_id, status, data):
    check_update(json.dumps({"job_id": job_id, "status": status, "data": data}).encode())


@FUZZ
@given(depth=st.integers(min_value=1, max_value=200_000), in_objects=st.booleans())
def test_deep_nesting(depth, in_objects):
    body = '{"a":' * depth + "1" + "}" * depth if in_objects else "[" * depth + "]" * depth
    check_update(f'{{"job_id":"j","status":"queued","data":{body}}}'.encode())


@FUZZ
@given(digits=st.integers(min_value=1, max_value=20_000))
def test_huge_numbers(digits):
    check_update(f'{{"job_id":"j","status":"queued","data":{"9" * digits}}}'.encode())


@FUZZ
@given(
    mantissa=st.integers(min_value=-(10**20), max_value=10**20),
    exponent=st.integers(min_value=-400, max_value=400),
    nested=st.booleans(),
)
def test_numbers_near_and_past_both_encodings_limits(mantissa, exponent, nested):
    number = f"{mantissa}e{exponent}"  # 1e400 is JSON that Python parses to infinity
    data = f'{{"a":[1,{{"b":{number}}}]}}' if nested else number
    check_update(f'{{"job_id":"j","status":"queued","data":{data}}}'.encode())


@FUZZ
@given(st.one_of(odd_text, st.binary(max_size=300).map(lambda b: b.decode("latin-1"))))
def test_client_text_frames(text):
    try:
        message = parse_client_frame(text, None)
    except FrameError as exc:
        assert isinstance(exc.code, ErrorCode)
        assert exc.detail.startswith("expected"), exc.detail
        return
    assert message.type.value in text


@FUZZ
@given(json_values)
def test_client_json_frames(value):
    try:
        parse_client_frame(json.dumps(value), None)
    except FrameError as exc:
        assert exc.detail.startswith("expected")


@FUZZ
@given(st.binary(max_size=100))
def test_client_binary_frames_are_refused(data):
    try:
        parse_client_frame(None, data)
    except FrameError as exc:
        assert exc.code is ErrorCode.BINARY_FRAME
    else:
        raise AssertionError("expected binary frames to be refused")


@FUZZ
@given(odd_text)
def test_positions(text):
    try:
        position = Position.parse(text)
    except PositionError as exc:
        assert "expected a position like" in str(exc)
    else:
        assert Position.parse(str(position)) == position
