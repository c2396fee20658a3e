"""The bridge's one ordered intake: a real redis-server, both inputs in-process.

The PUBLISH input and the durable input run as separate tasks. Each batch is
recorded (which gives its positions) and then sent: if another batch could be
recorded in between, the server processes would receive the later positions
first (a client's position would go backwards, and a resume from it would skip
the other batch).
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import pytest
import redis.asyncio as aioredis
from channels.layers import InMemoryChannelLayer

from harness.updates import CHANNEL, STREAM
from jobupdates.ingest.backoff import backoff
from jobupdates.ingest.bridge import Bridge, BridgeOptions
from jobupdates.protocol.positions import Position
from tests.ingest.conftest import GROUP, make_history


class HeldLayer(InMemoryChannelLayer):
    """A layer whose first ``group_send_many`` waits until the test lets it through."""

    def __init__(self) -> None:
        super().__init__(capacity=10_000)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.calls = 0

    async def group_send_many(self, group: str, messages: list[dict[str, Any]]) -> None:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            await self.release.wait()
        for message in messages:
            await self.group_send(group, message)


def payload(job_id: str) -> bytes:
    return json.dumps({"job_id": job_id, "status": "processing", "data": None}).encode()


@pytest.fixture
async def client(redis_server):
    connection = aioredis.Redis.from_url(redis_server.url)
    yield connection
    await connection.aclose()


async def test_a_batch_of_one_input_waits_while_the_other_is_recorded_and_not_yet_sent(
    redis_server, client
):
    layer = HeldLayer()
    channel = await layer.new_channel()
    await layer.group_add(GROUP, channel)
    bridge = Bridge(
        BridgeOptions(
            redis_url=redis_server.url, channel=CHANNEL, group=GROUP, ingest_stream=STREAM
        ),
        layer=layer,
        delays=functools.partial(backoff, 0.05, 0.2),
        history=make_history(client),
    )
    assert bridge.durable is not None
    published = asyncio.create_task(bridge.handle_many([payload("pub")]))
    await asyncio.wait_for(layer.entered.wait(), 5)  # recorded; its send is held
    entry = (await client.xadd(STREAM, {"payload": payload("xadd")})).decode()
    durable = asyncio.create_task(
        bridge.durable.handle(client, [(entry, {b"payload": payload("xadd")})])
    )
    while bridge.intake.waiting == 0:  # the durable batch is parsed and waits for its turn
        assert not durable.done(), "expected the durable batch to wait, not to be sent"
        await asyncio.sleep(0)
    assert await client.xlen("botrix:jobs:history") == 1, "nothing recorded meanwhile"
    layer.release.set()
    await asyncio.wait_for(asyncio.gather(published, durable), 5)

    received = [await layer.receive(channel) for _ in range(2)]
    assert [json.loads(m["text"])["job_id"] for m in received] == ["pub", "xadd"]
    first, second = (Position.parse(m["position"]) for m in received)
    assert first < second, "expected the positions in the order they are sent"
    assert received[1]["prev"] == received[0]["position"], "each names the one before it"
