"""Admission at the handshake: a bounded number in progress, the rest told to come back."""

from __future__ import annotations

import asyncio

import msgpack
import pytest
from channels.testing import WebsocketCommunicator

from jobupdates.access.handshakes import HandshakeGate
from jobupdates.asgi import websocket_application


async def test_the_gate_lets_limit_in_and_refuses_the_rest_after_the_wait(caplog):
    gate = HandshakeGate()
    first = await gate.enter(1, 1.0)
    assert first is not None
    assert await gate.enter(1, 0.05) is None
    assert gate.refused == 1
    assert "refused 1 handshake(s) as busy (server_busy, 4503)" in caplog.text
    first()
    first()  # giving a turn back twice gives back one
    second = await gate.enter(1, 0.05)
    assert second is not None
    assert await gate.enter(1, 0.05) is None


async def test_waiting_handshakes_get_their_turn_in_arrival_order():
    gate = HandshakeGate()
    release = await gate.enter(1, 1.0)
    assert release is not None
    order: list[int] = []

    async def wait_turn(n: int) -> None:
        done = await gate.enter(1, 5.0)
        assert done is not None
        order.append(n)
        done()

    waiting = []
    for n in range(3):  # each one queued before the next arrives
        waiting.append(asyncio.create_task(wait_turn(n)))
        await _until(lambda n=n: gate.waiting == n + 1)
    release()
    await asyncio.gather(*waiting)
    assert order == [0, 1, 2]


@pytest.mark.django_db(transaction=True)
async def test_a_handshake_without_a_turn_is_told_to_come_back(settings):
    settings.JOBUPDATES_MAX_HANDSHAKES = 1
    settings.JOBUPDATES_HANDSHAKE_WAIT = 0.05
    settings.ALLOWED_HOSTS = ["app.example.com"]
    application = websocket_application()
    held = await application.handshakes.enter(1, 1.0)
    assert held is not None
    headers = [(b"origin", b"https://evil.test")]
    busy = WebsocketCommunicator(application, "/ws", headers=headers)
    assert (await busy.connect())[0]
    error = await busy.receive_json_from()
    assert (error["code"], (await busy.receive_output())["code"]) == ("server_busy", 4503)
    held()
    served = WebsocketCommunicator(application, "/ws", headers=headers)
    assert (await served.connect())[0]  # reached the consumer, which refuses the origin
    assert (await served.receive_json_from())["code"] == "origin_not_allowed"
    assert await application.handshakes.enter(1, 0.05) is not None, "expected the turn back"


@pytest.mark.django_db(transaction=True)
async def test_a_msgpack_client_is_told_to_come_back_in_msgpack(settings):
    settings.JOBUPDATES_MAX_HANDSHAKES = 1
    settings.JOBUPDATES_HANDSHAKE_WAIT = 0.05
    application = websocket_application()
    held = await application.handshakes.enter(1, 1.0)
    assert held is not None
    busy = WebsocketCommunicator(application, "/ws", subprotocols=["jobupdates.v1.msgpack"])
    assert await busy.connect() == (True, "jobupdates.v1.msgpack")
    error = msgpack.unpackb((await busy.receive_output())["bytes"])
    assert (error["code"], (await busy.receive_output())["code"]) == ("server_busy", 4503)
    held()


async def _until(condition) -> None:
    """Let the loop run until ``condition`` holds (it changes on the loop's next turns)."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0)


async def test_a_handshake_that_fails_gives_its_turn_back(settings, monkeypatch):
    """Redis lost during a token check, say: the connection fails, its turn is freed."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from jobupdates.access import middleware

    async def lost_redis(scope):
        raise RedisConnectionError("Connection refused")

    settings.JOBUPDATES_MAX_HANDSHAKES = 1
    monkeypatch.setattr(middleware, "identify", lost_redis)
    application = websocket_application()
    comm = WebsocketCommunicator(application, "/ws")
    with pytest.raises(RedisConnectionError):
        await comm.connect()
    assert await application.handshakes.enter(1, 0.05) is not None, "expected the turn back"
