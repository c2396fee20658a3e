"""permessage-deflate with real Daphne and bridge processes, seen on the raw socket.

A client that offers compression gets each update's compressed frame (RSV1
set), the same bytes as every other such client of the process, built once
per update and process whatever the number of such clients (counted in
``/metrics``); a client that does not, on the same process, gets the plain
frame; a compressed client message that inflates past the limit (a "deflate
bomb") is refused with ``frame_too_large`` and close 1009 before it is
inflated.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from prometheus_client.parser import text_string_to_metric_families

from botrix_site.redis_server import RedisServer
from harness.clients import login, recv_json, welcomed, ws_connect
from tests.conftest import STAFF, Stack, _stack
from tests.support.raw_websocket import DEFLATE_OFFER, RawWebSocket

pytestmark = pytest.mark.e2e
FAST = pytest.mark.parametrize("stack", ["fast"], indirect=True)
"""Compression is the project's server's, whichever the layer: one stack is enough."""

UPDATE = {"job_id": "j-1", "status": "completed", "data": {"rows": 10, "note": "x" * 300}}
NEGOTIATED = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
UPDATES = 8
"""Updates published to each group of compressed clients."""


def welcomed_raw(client: RawWebSocket) -> bool:
    """Read the welcome; return whether it came compressed."""
    frame = client.read_message()
    assert frame.value()["type"] == "welcome", frame
    return frame.rsv1


@FAST
def test_a_client_offering_deflate_gets_compressed_frames_and_one_that_does_not_plain(
    stack: Stack, staff_cookie: str, publish
):
    with (
        RawWebSocket(stack.port, staff_cookie, extensions=DEFLATE_OFFER) as compressed,
        RawWebSocket(stack.port, staff_cookie, extensions=DEFLATE_OFFER) as other,
        RawWebSocket(stack.port, staff_cookie) as plain,
    ):
        assert compressed.headers["sec-websocket-extensions"] == NEGOTIATED
        assert "sec-websocket-extensions" not in plain.headers
        assert [welcomed_raw(c) for c in (compressed, other, plain)] == [True, True, False]
        assert publish(json.dumps(UPDATE)) == 1
        got, got_other, got_plain = (c.read_message() for c in (compressed, other, plain))
    assert (got.rsv1, got.opcode, got_plain.rsv1, got_plain.opcode) == (True, 1, False, 1)
    assert got.payload == got_other.payload, "expected the process's one compressed frame"
    assert len(got.payload) < len(got_plain.payload) / 2, (got.payload, got_plain.payload)
    assert got.inflated() == got_plain.payload, "expected the same JSON, byte for byte"
    update = json.loads(got_plain.payload)
    assert {k: update[k] for k in UPDATE} == UPDATE


def frames_built(port: int, cookie: str) -> dict[str, float]:
    """``jobupdates_frames_built_total`` per framing, from the process's ``/metrics``."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    request.add_header("Cookie", cookie)
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return {
        sample.labels["framing"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "jobupdates_frames_built"
        for sample in family.samples
        if sample.name == "jobupdates_frames_built_total"
    }


@FAST
def test_one_compressed_frame_is_built_per_update_whatever_the_number_of_clients(
    stack: Stack, staff_cookie: str, publish
):
    """5 compressed clients, then 1, on one process: N updates cost N compressions each time."""
    assert frames_built(stack.port, staff_cookie) == {
        "json+deflate": 0.0,
        "msgpack": 0.0,
        "msgpack+deflate": 0.0,
    }
    compressions = 0.0
    for clients in (5, 1):
        with ExitStack() as opened:
            sockets = [
                opened.enter_context(
                    RawWebSocket(stack.port, staff_cookie, extensions=DEFLATE_OFFER)
                )
                for _ in range(clients)
            ]
            assert all(welcomed_raw(client) for client in sockets)
            for n in range(UPDATES):
                assert publish(json.dumps({**UPDATE, "data": {"n": n}})) == 1
            for client in sockets:  # every update, compressed, in order: all frames were built
                frames = [client.read_message() for _ in range(UPDATES)]
                assert all(frame.rsv1 for frame in frames), frames
                assert [frame.value()["data"]["n"] for frame in frames] == list(range(UPDATES))
        built = frames_built(stack.port, staff_cookie)
        compressions, before = built["json+deflate"], compressions
        assert compressions - before == UPDATES, (
            f"expected {UPDATES} compressions for {UPDATES} updates to {clients} client(s), "
            f"one per update and process; got {compressions - before}"
        )
        assert (built["msgpack"], built["msgpack+deflate"]) == (0.0, 0.0), built


@FAST
async def test_a_websockets_client_negotiates_and_reads_compressed_updates(
    stack: Stack, staff_cookie: str, publish
):
    async with ws_connect(stack.port, staff_cookie) as ws:  # compression="deflate": the default
        [extension] = ws.protocol.extensions
        assert extension.name == "permessage-deflate"
        assert extension.remote_no_context_takeover, "expected server_no_context_takeover"
        await welcomed(ws)
        await ws.send('{"type":"ping"}')  # compressed by the client
        assert await recv_json(ws) == {"type": "pong"}
        await asyncio.to_thread(publish, json.dumps(UPDATE))
        update = await recv_json(ws)
    assert {k: update[k] for k in UPDATE} == UPDATE


@FAST
def test_a_deflate_bomb_is_refused_before_it_is_inflated(stack: Stack, staff_cookie: str):
    with RawWebSocket(stack.port, staff_cookie, extensions=DEFLATE_OFFER) as client:
        welcomed_raw(client)
        bomb = b'{"type":"ping","pad":"' + b" " * (64 * 1024 * 1024) + b'"}'
        client.send(bomb, compressed=True)  # 64 MiB inflated, about 64 KiB on the wire
        error = client.read_message().value()
        assert (error["type"], error["code"]) == ("error", "frame_too_large"), error
        assert "at most 1048576 bytes inflated" in error["message"], error
        assert client.close_code() == 1009
    stack.daphne.wait_for(r"refused a client message: frame_too_large")
    with RawWebSocket(stack.port, staff_cookie, extensions=DEFLATE_OFFER) as client:
        assert welcomed_raw(client), "expected the server unaffected"


@FAST
def test_a_compressed_message_within_the_limit_is_read(stack: Stack, staff_cookie: str):
    with RawWebSocket(stack.port, staff_cookie, extensions=DEFLATE_OFFER) as client:
        welcomed_raw(client)
        for _ in range(3):  # a fresh inflater per message (no context takeover)
            client.send(b'{"type":"ping"}', compressed=True)
            assert client.read_message().value() == {"type": "pong"}
        client.send(json.dumps({"type": "ping", "pad": "y" * 8000}).encode(), compressed=True)
        error = client.read_message().value()  # over 4096 characters, under 1 MiB
        assert (error["type"], error["code"]) == ("error", "frame_too_large"), error
        client.send(b'{"type":"ping"}', compressed=True)
        assert client.read_message().value() == {"type": "pong"}, "expected it still open"


@pytest.fixture
def uncompressed(redis_server: RedisServer, e2e_database: str) -> Iterator[Stack]:
    """The stack with ``JOBUPDATES_PERMESSAGE_DEFLATE=false``."""
    yield from _stack(redis_server, e2e_database, "fast", JOBUPDATES_PERMESSAGE_DEFLATE="false")


async def test_the_setting_turns_compression_off(uncompressed: Stack):
    cookie = await asyncio.to_thread(login, uncompressed.port, *STAFF)
    uncompressed.daphne.wait_for(r"permessage-deflate: off")
    async with ws_connect(uncompressed.port, cookie) as ws:  # offering permessage-deflate
        assert ws.protocol.extensions == []
        await welcomed(ws)


@FAST
def test_corrupt_compressed_data_closes_only_that_connection(stack: Stack, staff_cookie: str):
    with (
        RawWebSocket(stack.port, staff_cookie, extensions=DEFLATE_OFFER) as client,
        RawWebSocket(stack.port, staff_cookie, extensions=DEFLATE_OFFER) as other,
    ):
        welcomed_raw(client)
        welcomed_raw(other)
        client.send(b"\xff\xff\xff\xff not deflate", raw_rsv1=True)
        assert client.close_code() == 1007, "expected invalid frame payload data, not a drop"
        stack.daphne.wait_for(r"failing a WebSocket connection from .* with 1007: .*deflate")
        other.send(b'{"type":"ping"}', compressed=True)
        assert other.read_message().value() == {"type": "pong"}, "expected the other unaffected"
