"""Server frames as a client library reads them: plain and compressed, text and binary."""

from __future__ import annotations

import json
import zlib

import pytest
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from jobupdates.protocol.wire import Framing, deflate, frame


def parse(data: bytes, *, inflate: bool) -> Frame:
    """Parse one server frame as the websockets client does, inflating if negotiated."""
    reader = StreamReader()
    reader.feed_data(data)
    extensions = [PerMessageDeflate(True, True, 15, 15)] if inflate else []
    parser = Frame.parse(reader.read_exact, mask=False, extensions=extensions)
    try:
        next(parser)
    except StopIteration as done:
        parsed: Frame = done.value
        return parsed
    raise AssertionError("expected one whole frame")


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536, 200_000])
@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
def test_plain_frames_parse_as_websockets_reads_them(length, opcode):
    payload = b"x" * length
    parsed = parse(frame(payload, opcode.value), inflate=False)
    assert (parsed.opcode, parsed.fin, parsed.rsv1, parsed.data) == (opcode, True, False, payload)


@pytest.mark.parametrize("length", [0, 1, 300, 70_000])
def test_compressed_frames_have_rsv1_and_inflate_to_the_payload(length):
    payload = json.dumps({"type": "job_update", "data": "x" * length}).encode()
    data = Framing(compressed=True).build(payload)
    assert data[0] & 0x40, "expected RSV1 set"
    parsed = parse(data, inflate=True)
    assert (parsed.opcode, parsed.data) == (Opcode.TEXT, payload)


def test_each_compressed_message_stands_alone():
    """server_no_context_takeover: a fresh inflater per message reads any of them."""
    messages = [b'{"a":"same text"}', b'{"b":"other"}' * 50, b'{"a":"same text"}']
    compressed = [deflate(message) for message in messages]
    assert compressed[0] == compressed[2], "expected no history shared between messages"
    for message, data in zip(messages, compressed, strict=True):
        assert not data.endswith(b"\x00\x00\xff\xff"), "expected the empty block removed"
        fresh = zlib.decompressobj(-15)
        assert fresh.decompress(data + b"\x00\x00\xff\xff") == message


@pytest.mark.parametrize(
    ("framing", "key", "opcode", "rsv1"),
    [
        (Framing(), "frame", Opcode.TEXT, False),
        (Framing(binary=True), "frame.binary", Opcode.BINARY, False),
        (Framing(compressed=True), "frame.deflate", Opcode.TEXT, True),
        (Framing(binary=True, compressed=True), "frame.binary.deflate", Opcode.BINARY, True),
    ],
)
def test_each_framing_has_its_own_key_and_frame(framing, key, opcode, rsv1):
    assert framing.key == key
    data = framing.build(b"payload")
    assert (data[0] & 0x0F, bool(data[0] & 0x40)) == (opcode.value, rsv1)
    assert parse(data, inflate=rsv1).data == b"payload"
