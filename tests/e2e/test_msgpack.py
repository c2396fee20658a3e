"""The ``jobupdates.v1.msgpack`` subprotocol with real Daphne and bridge processes.

A client that offers it gets the same messages as a JSON client (welcome,
updates, replay, ``job_state``, answers and errors), each as one MessagePack
map in a binary frame, and speaks MessagePack itself.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgpack
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from harness.clients import recv_json, welcomed, ws_connect
from tests.conftest import Stack
from tests.support.raw_websocket import DEFLATE_OFFER, RawWebSocket

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("stack", ["fast"], indirect=True)]

MSGPACK = "jobupdates.v1.msgpack"
UPDATE = {"job_id": "j-1", "status": "completed", "data": {"rows": 10, "ok": True, "r": 0.5}}


def msgpack_connect(port: int, cookie: str | None, path: str = "/ws") -> Any:
    """A WebSocket offering the MessagePack subprotocol, as a page on the site would."""
    return ws_connect(port, cookie, path, subprotocols=[MSGPACK])


async def recv_msgpack(ws: ClientConnection) -> dict[str, Any]:
    """Receive one binary frame and decode it."""
    frame = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(frame, bytes), f"expected a binary frame, got {frame!r}"
    value: dict[str, Any] = msgpack.unpackb(frame, raw=False)
    return value


async def send_msgpack(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(msgpack.packb(message))


async def test_a_msgpack_client_gets_what_a_json_client_gets(
    stack: Stack, staff_cookie: str, publish
):
    async with (
        msgpack_connect(stack.port, staff_cookie) as packed,
        ws_connect(stack.port, staff_cookie) as plain,
    ):
        assert packed.subprotocol == MSGPACK
        welcome = await recv_msgpack(packed)
        assert welcome["type"] == "welcome", welcome
        assert len(welcome["client_id"]) == 32, welcome
        await welcomed(plain)
        await asyncio.to_thread(publish, json.dumps(UPDATE))
        update, same = await recv_msgpack(packed), await recv_json(plain)
        assert update == same
        assert {k: update[k] for k in UPDATE} == UPDATE

        await send_msgpack(packed, {"type": "ping"})
        assert await recv_msgpack(packed) == {"type": "pong"}
        await packed.send('{"type":"ping"}')  # a JSON text frame on a MessagePack connection
        error = await recv_msgpack(packed)
        assert (error["type"], error["code"]) == ("error", "text_frame"), error
        await packed.send(b"\xc1")  # never used in MessagePack
        error = await recv_msgpack(packed)
        assert (error["type"], error["code"]) == ("error", "invalid_msgpack"), error
        await packed.send(msgpack.packb([1, 2]))
        error = await recv_msgpack(packed)
        assert (error["code"], error["message"]) == (
            "not_an_object",
            "expected a MessagePack map, got list",
        ), error


async def test_replay_states_and_subscriptions_in_msgpack(stack: Stack, staff_cookie: str, publish):
    async with msgpack_connect(stack.port, staff_cookie) as ws:
        await recv_msgpack(ws)
        for n in (1, 2):
            await asyncio.to_thread(publish, json.dumps({**UPDATE, "job_id": f"r-{n}"}))
        first, second = await recv_msgpack(ws), await recv_msgpack(ws)
    async with msgpack_connect(stack.port, staff_cookie, f"/ws?since={first['position']}") as ws:
        assert (await recv_msgpack(ws))["type"] == "welcome"
        assert await recv_msgpack(ws) == second, "expected the replay in MessagePack"
    async with msgpack_connect(stack.port, staff_cookie, "/ws?job=r-1") as ws:
        assert (await recv_msgpack(ws))["type"] == "welcome"
        state = await recv_msgpack(ws)
        assert state == {**first, "type": "job_state"}
        await send_msgpack(ws, {"type": "subscribe", "job_ids": ["r-2"]})
        assert await recv_msgpack(ws) == {"type": "subscribed", "job_ids": ["r-2"]}
        assert await recv_msgpack(ws) == {**second, "type": "job_state"}


def test_msgpack_frames_are_binary_and_shared_compressed(stack: Stack, staff_cookie: str, publish):
    with (
        RawWebSocket(stack.port, staff_cookie, subprotocols=(MSGPACK,)) as plain,
        RawWebSocket(
            stack.port, staff_cookie, subprotocols=(MSGPACK,), extensions=DEFLATE_OFFER
        ) as compressed,
        RawWebSocket(
            stack.port, staff_cookie, subprotocols=(MSGPACK,), extensions=DEFLATE_OFFER
        ) as other,
    ):
        assert plain.headers["sec-websocket-protocol"] == MSGPACK
        for client in (plain, compressed, other):
            assert client.read_message().value()["type"] == "welcome"
        assert publish(json.dumps(UPDATE)) == 1
        got_plain, got, got_other = (c.read_message() for c in (plain, compressed, other))
    assert (got_plain.opcode, got_plain.rsv1, got.opcode, got.rsv1) == (2, False, 2, True)
    assert got.payload == got_other.payload, "expected the process's one compressed frame"
    assert got.inflated() == got_plain.payload
    assert {k: got_plain.value()[k] for k in UPDATE} == UPDATE


async def test_a_refusal_is_explained_in_msgpack(stack: Stack):
    async with msgpack_connect(stack.port, None) as ws:  # no session: unauthenticated
        assert ws.subprotocol == MSGPACK
        error = await recv_msgpack(ws)
        assert (error["type"], error["code"]) == ("error", "unauthenticated"), error
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 4401
