"""A connection releases what it holds however it ends, end to end.

Its admission slot (the per-user limit), its registry record (``/ws/stats``
and the admin list) and its group membership go away exactly once, even when
the consumer is closing while the client still sends frames, and when Redis
is down at the moment the client leaves.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from botrix_site.redis_server import RedisServer
from harness.clients import login, recv_json, welcomed, ws_connect
from tests.conftest import STAFF, Stack, _stack
from tests.e2e.test_registry import poll, stats
from tests.support.channel_layer import wait_for_daphne_subscribed

pytestmark = pytest.mark.e2e

SESSIONS = 20
"""JOBUPDATES_MAX_CONNECTIONS_PER_USER's default."""
BAD_FRAMES = 12
"""Two more than JOBUPDATES_MAX_STRIKES: the last two arrive while the server closes."""


@pytest.fixture
def one_slot_stack(redis_server: RedisServer, e2e_database: str) -> Iterator[Stack]:
    """The fast-path stack with one connection per user and quick registry writes."""
    yield from _stack(
        redis_server,
        e2e_database,
        "fast",
        JOBUPDATES_MAX_CONNECTIONS_PER_USER="1",
        JOBUPDATES_REGISTRY_SOCKET_TIMEOUT="1",
        JOBUPDATES_REDIS_SOCKET_TIMEOUT="1",
    )


async def closed_with(ws) -> tuple[list[str], int | None]:
    """Read error codes until the server closes; return them and the close code."""
    codes: list[str] = []
    try:
        while True:
            frame = await recv_json(ws, timeout=10)
            if frame["type"] == "error":
                codes.append(frame["code"])
    except ConnectionClosed as closed:
        return codes, closed.rcvd.code if closed.rcvd else None


async def burst_of_bad_frames(port: int, cookie: str) -> tuple[list[str], int | None]:
    async with ws_connect(port, cookie) as ws:
        await welcomed(ws)
        for n in range(BAD_FRAMES):  # all at once: the server reads them after its close
            await ws.send(f"not json {n}")
        return await closed_with(ws)


@pytest.mark.parametrize("stack", ["fast", "core"], indirect=True)
async def test_bad_frame_bursts_leave_no_ghosts_and_lock_nobody_out(stack: Stack):
    cookie = login(stack.port, *STAFF)
    mark = stack.daphne.mark()
    results = await asyncio.gather(
        *(burst_of_bad_frames(stack.port, cookie) for _ in range(SESSIONS))
    )
    for codes, close_code in results:
        assert close_code == 4400, (codes, close_code)
        assert codes[-1] == "too_many_bad_frames", codes
        assert len(codes) == 10, f"expected no answer to frames sent after the close: {codes}"
    await asyncio.to_thread(
        stack.daphne.wait_for_count, r"client [0-9a-f]{32} disconnected", SESSIONS, after=mark
    )
    assert not stack.daphne.matching("Exception inside application"), stack.daphne.output()

    # Every slot is free again: the user holds the whole per-user allowance at once.
    async with ws_connect(stack.port, cookie) as first:
        await welcomed(first)
        others = [ws_connect(stack.port, cookie) for _ in range(SESSIONS - 1)]
        opened = [await client.__aenter__() for client in others]
        try:
            for ws in opened:
                await welcomed(ws)
            await poll(
                f"exactly {SESSIONS} clients in /ws/stats",
                lambda: stats(stack.port, cookie)["connected_clients"] == SESSIONS,
                timeout=10,
            )
        finally:
            for client in others:
                await client.__aexit__(None, None, None)


async def test_redis_down_during_a_disconnect_still_frees_the_slot(one_slot_stack: Stack):
    stack = one_slot_stack
    cookie = login(stack.port, *STAFF)
    async with ws_connect(stack.port, cookie) as ws:
        client_id = await welcomed(ws)
        async with ws_connect(stack.port, cookie) as second:  # the one slot is taken
            codes, close_code = await closed_with(second)
            assert (codes, close_code) == (["too_many_connections"], 4429)
        mark = stack.daphne.mark()
        stack.redis.stop()
    line = await asyncio.to_thread(
        stack.daphne.wait_for, rf"client {client_id} disconnected", after=mark
    )
    # the registry's write fails for sure (Redis is down); the layer's unsubscribe may
    # or may not reach a dead connection first. Either failure is logged with its reason.
    failed = stack.daphne.matching(
        rf"registry unregister failed \(|client {client_id}: .* failed on disconnect \("
    )
    assert failed, f"expected the failed teardown steps logged with their reason: {line}"
    assert not stack.daphne.matching("Exception inside application"), stack.daphne.output()

    stack.redis.start()
    await asyncio.to_thread(wait_for_daphne_subscribed, stack.redis.url)
    async with ws_connect(stack.port, cookie) as ws:
        await welcomed(ws)  # the slot is free: not too_many_connections
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv_json(ws))["type"] == "pong"
