"""Numbers both encodings carry, with real Redis, Daphne and bridge processes.

``1e400`` (Python reads it as infinity, which JSON has no text for) and 2**64
(beyond MessagePack's 64 bits): the bridge rejects either as ``invalid_number``,
counts it and keeps it as a dead letter, and the updates after it reach JSON
and MessagePack clients alike. The same number already in the history (an
older bridge recorded it) is skipped for the connections whose encoding
cannot carry it, live and in a replay, and only for them: nothing else is
missed, no client gets text that is not JSON, none is closed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection

from botrix_site.redis_server import RedisServer
from harness.clients import login, welcomed, ws_connect
from harness.updates import job_update
from jobupdates.conf import conf
from jobupdates.history import History
from jobupdates.protocol.dead_letters import decode_dead_letter
from tests.conftest import STAFF, Stack, _stack
from tests.e2e.test_msgpack import MSGPACK, recv_msgpack, send_msgpack
from tests.e2e.test_registry import poll, stats

pytestmark = pytest.mark.e2e

NUMBERS = {"1e400": "1e400", "2**64": str(2**64)}
"""Each number as a worker's JSON text has it."""
NAMED = {
    "1e400": "got inf (a float beyond the 64-bit range, such as 1e400)",
    "2**64": "got the integer 18446744073709551616",
}
"""How the rejection names each."""


@pytest.fixture(params=["fast", "core"])
def numbers_stack(
    request: pytest.FixtureRequest, redis_server: RedisServer, e2e_database: str
) -> Iterator[Stack]:
    """The stack, its bridge reporting its counts every second (``/ws/stats``)."""
    yield from _stack(
        redis_server,
        e2e_database,
        request.param,
        JOBUPDATES_REGISTRY_INTERVAL="1",
        JOBUPDATES_REGISTRY_SOCKET_TIMEOUT="1",
    )


def not_json(name: str) -> Any:
    raise AssertionError(f"a JSON client got {name}, which is not JSON")


async def recv_strict(ws: ClientConnection) -> dict[str, Any]:
    """One text frame, decoded as strictly as a browser's ``JSON.parse``."""
    frame = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(frame, str), f"expected a text frame, got {frame!r}"
    value: dict[str, Any] = json.loads(frame, parse_constant=not_json)
    return value


async def nothing_more(plain: ClientConnection, packed: ClientConnection) -> None:
    """Both connections are open, and nothing else was sent before their pong."""
    await plain.send('{"type":"ping"}')
    assert await recv_strict(plain) == {"type": "pong"}
    await send_msgpack(packed, {"type": "ping"})
    assert await recv_msgpack(packed) == {"type": "pong"}


def clients(port: int, cookie: str, query: str = "") -> tuple[Any, Any]:
    """A JSON client and a MessagePack client."""
    return (
        ws_connect(port, cookie, f"/ws{query}"),
        ws_connect(port, cookie, f"/ws{query}", subprotocols=[MSGPACK]),
    )


@pytest.mark.parametrize("numbers_stack", ["fast"], indirect=True)
@pytest.mark.parametrize("number", NUMBERS)
async def test_the_bridge_rejects_it_counts_it_keeps_it_and_the_next_updates_flow(
    numbers_stack: Stack, number: str, publish
):
    stack = numbers_stack
    cookie = login(stack.port, *STAFF)
    bad = f'{{"job_id":"bad","status":"processing","data":{{"x":[1,{{"y":{NUMBERS[number]}}}]}}}}'
    connect_plain, connect_packed = clients(stack.port, cookie)
    async with connect_plain as plain, connect_packed as packed:
        await welcomed(plain)
        assert (await recv_msgpack(packed))["type"] == "welcome"
        mark = stack.bridge.mark()
        for payload in (job_update("before", data={"n": 1}), bad, job_update("after")):
            assert publish(payload) == 1
        for got in (
            [await recv_strict(plain) for _ in "ab"],
            [await recv_msgpack(packed) for _ in "ab"],
        ):
            assert [(f["type"], f["job_id"]) for f in got] == [
                ("job_update", "before"),
                ("job_update", "after"),
            ]
        await nothing_more(plain, packed)
    line = stack.bridge.wait_for(
        r"rejected message on 'botrix:jobs:updates': invalid_number: (.*)", after=mark
    )
    assert line.group(1).startswith("expected numbers both JSON and MessagePack clients"), line
    assert NAMED[number] in line.group(1), line

    def counted() -> bool:
        return stats(stack.port, cookie)["rejected"]["by_reason"].get("invalid_number") == 1

    await poll("invalid_number counted in /ws/stats", counted, timeout=10)
    client = redis.Redis.from_url(stack.redis.url)
    try:

        def kept() -> bool:
            return bool(client.llen(conf.DEAD_LETTER_KEY))

        await poll("a dead letter kept", kept, timeout=10)
        [raw] = client.lrange(conf.DEAD_LETTER_KEY, 0, -1)
    finally:
        client.close()
    letter = decode_dead_letter(raw)
    assert letter is not None
    assert (letter.reason, letter.preview) == ("invalid_number", bad)
    assert stack.bridge.running


def older_frame(job_id: str, data_text: str) -> str:
    """A ``job_update`` frame as a bridge before ``invalid_number`` encoded it (1e400
    became ``Infinity``)."""
    value = {"type": "job_update", "job_id": job_id, "status": "processing", "data": None}
    return json.dumps(value, separators=(",", ":")).replace("null", data_text)


@pytest.mark.parametrize("number", NUMBERS)
async def test_one_already_in_the_history_never_stops_a_replay_or_closes_a_client(
    numbers_stack: Stack, number: str, publish
):
    """Live (the server reads what an older bridge recorded from the history) and
    replayed: the entry is skipped where the encoding cannot carry it, logged, and
    everything else is delivered."""
    stack = numbers_stack
    cookie = login(stack.port, *STAFF)
    inf = number == "1e400"
    data_text = '{"x":Infinity}' if inf else f'{{"x":{NUMBERS[number]}}}'
    json_gets = ["after-1", "after-2"] if inf else ["bad", "after-1", "after-2"]
    connect_plain, connect_packed = clients(stack.port, cookie)
    async with connect_plain as plain, connect_packed as packed:
        await welcomed(plain)
        await recv_msgpack(packed)
        publish(job_update("before"))
        since = (await recv_strict(plain))["position"]
        assert (await recv_msgpack(packed))["position"] == since
        mark = stack.daphne.mark()
        connection = aioredis.Redis.from_url(stack.redis.url)
        try:
            appended = await History.from_conf(connection).append_many(
                [("bad", older_frame("bad", data_text)), ("after-1", older_frame("after-1", "1"))]
            )
        finally:
            await connection.aclose()
        bad_position = appended.positions[0]
        publish(job_update("after-2"))  # names after-1 as its predecessor: the server fills
        live_plain = [await recv_strict(plain) for _ in json_gets]
        live_packed = [await recv_msgpack(packed) for _ in range(2)]
        await nothing_more(plain, packed)
    assert [f["job_id"] for f in live_plain] == json_gets
    assert [f["job_id"] for f in live_packed] == ["after-1", "after-2"]
    if not inf:
        assert live_plain[0]["data"] == {"x": 2**64}, "JSON carries it (JavaScript rounds it)"
    for encoding in ("jobupdates.v1",) * inf + ("jobupdates.v1.msgpack",):
        stack.daphne.wait_for(
            rf"skipped update '{bad_position}' of job 'bad' for {encoding} connections",
            after=mark,
        )

    connect_plain, connect_packed = clients(stack.port, cookie, f"?since={since}")
    async with connect_plain as plain, connect_packed as packed:
        await welcomed(plain)
        assert (await recv_msgpack(packed))["type"] == "welcome"
        replayed_plain = [await recv_strict(plain) for _ in json_gets]
        replayed_packed = [await recv_msgpack(packed) for _ in range(2)]
        await nothing_more(plain, packed)
    assert replayed_plain == live_plain
    assert replayed_packed == live_packed
    assert [f["position"] for f in replayed_packed] == [f["position"] for f in live_plain[-2:]]
