"""A standby's ring meets the history on a takeover: a real redis-server, in-process."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time

import pytest
import redis
import redis.asyncio as aioredis

from harness.updates import CHANNEL
from jobupdates.ingest.backoff import backoff
from jobupdates.ingest.bridge import Bridge, BridgeOptions
from jobupdates.ingest.forwarder import Outcome
from jobupdates.ingest.leadership import Lease, Role
from jobupdates.protocol import parse_job_update
from jobupdates.protocol.alignment import digest
from tests.ingest.conftest import HISTORY, make_history

LEASE = "botrix:jobs:bridge:active"
LAYER_GROUP = "jobupdates.all"


def payload(job_id: str, n: int) -> bytes:
    return json.dumps({"job_id": job_id, "status": "processing", "data": {"n": n}}).encode()


@pytest.fixture
async def client(redis_server):
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def standby(url: str, client: aioredis.Redis, layer, sync: redis.Redis, **options) -> Bridge:
    """A bridge whose lease another bridge ("old") holds."""
    sync.set(LEASE, "old", px=60_000)
    bridge = Bridge(
        BridgeOptions(redis_url=url, channel=CHANNEL, group=LAYER_GROUP, **options),
        layer=layer,
        delays=functools.partial(backoff, 0.05, 0.2),
        history=make_history(client),
        lease=Lease(client, LEASE, "new", ttl_seconds=60),
    )
    assert bridge.election is not None
    assert await bridge.election.check() is Role.STANDBY
    bridge.takeover.subscribed(0.0)
    return bridge


async def old_bridge_records(client: aioredis.Redis, payloads: list[bytes]) -> None:
    """What the old active bridge recorded before it died."""
    updates = [parse_job_update(p) for p in payloads]
    await make_history(client).append_many(
        [(u.job_id, u.to_frame()) for u in updates], digests=[digest(p) for p in payloads]
    )


async def take_over(bridge: Bridge, sync: redis.Redis) -> None:
    sync.delete(LEASE)  # the old bridge's lease expired
    assert bridge.election is not None
    assert await bridge.election.check() is Role.ACTIVE


def recorded(sync: redis.Redis) -> list[tuple[str, int]]:
    rows = []
    for _, fields in sync.xrange(HISTORY):
        if b"g" in fields:
            rows.append(("gap", -1))
            continue
        frame = json.loads(fields[b"f"])
        assert set(frame) == {"type", "job_id", "status", "data"}, "expected the frame unchanged"
        rows.append((frame["job_id"], frame["data"]["n"]))
    return rows


async def sent(layer, channel, count: int) -> list[tuple[str, int]]:
    """What the layer got, in order: ``(job, n)`` per update, ``("gap", -1)`` per recorded gap."""
    found = []
    for _ in range(count):
        event = await asyncio.wait_for(layer.receive(channel), 5)
        frame = json.loads(event["text"])
        if event["gap"]:
            assert (frame["type"], frame["reason"]) == ("reset", "updates_lost"), frame
            assert frame["position"] == event["position"]
            found.append(("gap", -1))
        else:
            found.append((frame["job_id"], frame["data"]["n"]))
    return found


@pytest.mark.parametrize("recorded_before", [0, 1, 7, 10])
async def test_exactly_the_unrecorded_suffix_is_forwarded_once_then_what_came_after(
    redis_server, client, sync, member, recorded_before
):
    layer, channel = member
    bridge = await standby(redis_server.url, client, layer, sync)
    earlier = [payload("earlier", n) for n in range(3)]
    await bridge.handle_many(earlier)  # what both bridges received and the old one recorded
    await old_bridge_records(client, earlier)
    # the same payload ten times: the alignment counts on the sequence, not a set
    gap = [payload("same", 0)] * 10
    assert await bridge.handle_many(gap) == 10
    await old_bridge_records(client, gap[:recorded_before])
    await take_over(bridge, sync)
    await bridge.handle_many([payload("after", 0), payload("after", 1)])
    left = 10 - recorded_before
    expected = (
        [("earlier", n) for n in range(3)] + [("same", 0)] * 10 + [("after", 0), ("after", 1)]
    )
    assert recorded(sync) == expected
    assert await sent(layer, channel, left + 2) == [("same", 0)] * left + [
        ("after", 0),
        ("after", 1),
    ]
    assert channel not in layer.channels, "expected nothing more sent"
    assert (bridge.stats.recovered, bridge.stats.gaps) == (left + 2, 0)  # with "after"


async def test_an_idle_takeover_forwards_the_ring_without_waiting_for_a_new_message(
    redis_server, client, sync, member
):
    layer, channel = member
    bridge = await standby(redis_server.url, client, layer, sync)
    await bridge.handle_many([payload("gap", n) for n in range(5)])
    await old_bridge_records(client, [payload("gap", n) for n in range(2)])
    await take_over(bridge, sync)
    assert bridge.unaligned
    assert await bridge.align() is Outcome.SENT
    assert await sent(layer, channel, 3) == [("gap", n) for n in range(2, 5)]
    assert not bridge.unaligned
    assert recorded(sync) == [("gap", n) for n in range(5)]


async def test_a_ring_shorter_than_the_gap_reports_it(redis_server, client, sync, member, caplog):
    layer, channel = member
    bridge = await standby(redis_server.url, client, layer, sync, standby_buffer_messages=3)
    await bridge.handle_many([payload("gap", n) for n in range(6)])  # the ring keeps 3..5
    await old_bridge_records(client, [payload("gap", 0)])  # 1 and 2 are lost
    await take_over(bridge, sync)
    with caplog.at_level(logging.WARNING, logger="jobupdates.ingest.bridge"):
        assert await bridge.align() is Outcome.SENT
    assert await sent(layer, channel, 4) == [("gap", -1)] + [("gap", n) for n in range(3, 6)]
    assert bridge.stats.gaps == 1
    assert any("may be lost" in r.getMessage() for r in caplog.records), caplog.text


async def test_an_active_bridge_records_each_payloads_digest(redis_server, client, sync, member):
    layer, _ = member
    bridge = Bridge(
        BridgeOptions(redis_url=redis_server.url, channel=CHANNEL, group=LAYER_GROUP),
        layer=layer,
        delays=functools.partial(backoff, 0.05, 0.2),
        history=make_history(client),
    )
    body = payload("job", 1)
    await bridge.handle_many([body])
    [(_, fields)] = sync.xrange(HISTORY)
    assert fields[b"d"].decode() == digest(body)
    assert [entry.digest for entry in bridge.takeover.ring] == [digest(body)]
    assert not bridge.unaligned


async def test_a_standby_that_resubscribed_after_the_newest_entry_reports_the_gap(
    redis_server, client, sync, member, caplog
):
    layer, channel = member
    bridge = await standby(redis_server.url, client, layer, sync)
    await bridge.handle_many([payload("seen", 0)])
    await old_bridge_records(client, [payload("seen", 0), payload("missed", 0)])
    bridge.takeover.subscribed(time.time() + 1)  # it lost Redis and re-subscribed since
    await bridge.handle_many([payload("after", 0)])
    await take_over(bridge, sync)
    with caplog.at_level(logging.WARNING, logger="jobupdates.ingest.bridge"):
        assert await bridge.align() is Outcome.SENT
    assert await sent(layer, channel, 2) == [("gap", -1), ("after", 0)]
    assert bridge.stats.gaps == 1
    assert any("may be lost" in r.getMessage() for r in caplog.records), caplog.text


async def test_durable_entries_between_the_recorded_ones_do_not_misalign_the_ring(
    redis_server, client, sync, member
):
    """The tail holds the other input's entries too (no digest): they are skipped."""
    layer, channel = member
    bridge = await standby(redis_server.url, client, layer, sync)
    gap = [payload("gap", n) for n in range(6)]
    await bridge.handle_many(gap)
    history = make_history(client)
    for n in range(3):
        await old_bridge_records(client, gap[n : n + 1])
        update = parse_job_update(payload("durable", n))
        await history.append_many([(update.job_id, update.to_frame())], [f"{n + 1}-0"])
    await take_over(bridge, sync)
    assert await bridge.align() is Outcome.SENT
    assert await sent(layer, channel, 3) == [("gap", n) for n in range(3, 6)]
    assert bridge.stats.gaps == 0


async def test_what_came_before_a_recorded_gap_is_not_aligned_with(
    redis_server, client, sync, member
):
    """A gap recorded in the history breaks the run of recorded digests: the ring is
    aligned with what was recorded after it only."""
    layer, channel = member
    bridge = await standby(redis_server.url, client, layer, sync)
    ring = [payload("ring", n) for n in range(4)]
    await bridge.handle_many(ring)
    await old_bridge_records(client, ring[:1])
    await make_history(client).append_many([], gap="an earlier takeover's")
    await old_bridge_records(client, ring[1:2])
    await take_over(bridge, sync)
    assert await bridge.align() is Outcome.SENT
    assert await sent(layer, channel, 2) == [("ring", 2), ("ring", 3)]


async def test_a_bridge_that_was_active_aligns_with_what_it_recorded_itself(
    redis_server, client, sync, member
):
    """Active, then deposed (the lease moved on while it was away), then active again:
    its ring holds its own recorded digests, then what it buffered as a standby."""
    layer, channel = member
    bridge = await standby(redis_server.url, client, layer, sync)
    await take_over(bridge, sync)
    assert await bridge.align() is Outcome.SENT
    await bridge.handle_many([payload("mine", n) for n in range(3)])  # recorded by it
    assert await sent(layer, channel, 3) == [("mine", n) for n in range(3)]
    assert bridge.election is not None
    sync.set(LEASE, "other", px=60_000)
    await bridge.election.check()  # deposed: another bridge holds the lease now
    later = [payload("later", n) for n in range(4)]
    await bridge.handle_many(later)  # buffered as a standby
    await old_bridge_records(client, later[:2])  # the other one recorded two, then died
    await take_over(bridge, sync)
    assert await bridge.align() is Outcome.SENT
    assert await sent(layer, channel, 2) == [("later", 2), ("later", 3)]
    assert bridge.stats.gaps == 0
