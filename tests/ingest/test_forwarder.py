"""The forwarder records each batch after the last one it recorded, so a loss shows."""

from __future__ import annotations

import asyncio
import itertools
import json

import redis.asyncio as aioredis

from jobupdates.ingest.forwarder import Batch, Forwarder, Outcome
from jobupdates.protocol import JobUpdate
from tests.ingest.conftest import GROUP, HISTORY, make_history


def batch(*job_ids: str) -> Batch:
    updates = [JobUpdate(job_id, "queued", None) for job_id in job_ids]
    return Batch([(update, update.to_frame()) for update in updates], received_at=1.0)


async def test_a_batch_after_redis_lost_the_last_one_recorded_marks_the_loss(redis_server, member):
    layer, channel = member
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=5)
    forwarder = Forwarder(
        layer=layer,
        group=GROUP,
        history=make_history(client),
        delays=lambda: itertools.repeat(0.01),
        stopping=asyncio.Event(),
    )
    assert await forwarder.forward(batch("a", "b")) is Outcome.SENT
    last = forwarder.last_recorded
    assert last is not None
    assert await client.get(HISTORY + ":lost") is None
    await client.delete(HISTORY)  # Redis came back without its newest writes
    assert await forwarder.forward(batch("c")) is Outcome.SENT
    assert (await client.get(HISTORY + ":lost")).decode() == last
    assert forwarder.last_recorded != last
    received = [await layer.receive(channel) for _ in range(3)]
    assert [json.loads(m["text"])["job_id"] for m in received] == ["a", "b", "c"]
    await client.aclose()
