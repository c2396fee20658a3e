"""Durable ingest in-process: a real redis-server, a real in-memory channel layer."""

from __future__ import annotations

import asyncio
import functools
import json

import pytest
import redis
import redis.asyncio as aioredis

from harness.updates import CHANNEL, STREAM
from jobupdates.history import History
from jobupdates.ingest.backoff import backoff
from jobupdates.ingest.bridge import Bridge, BridgeOptions
from jobupdates.ingest.durable import BLOCK_SECONDS, GROUP
from jobupdates.protocol import JobUpdate, RejectReason
from tests.ingest.conftest import HISTORY, make_history

LAYER_GROUP = "jobupdates.all"


def payload(job_id: str, n: int) -> str:
    return json.dumps({"job_id": job_id, "status": "processing", "data": {"n": n}})


@pytest.fixture
async def history(redis_server):
    client = aioredis.Redis.from_url(redis_server.url)
    yield make_history(client)
    await client.aclose()


def make_bridge(url: str, layer, history: History, *, block_seconds: float = BLOCK_SECONDS):
    options = BridgeOptions(
        redis_url=url,
        channel=CHANNEL,
        group=LAYER_GROUP,
        ingest_stream=STREAM,
        durable_block_seconds=block_seconds,
    )
    return Bridge(
        options, layer=layer, delays=functools.partial(backoff, 0.05, 0.2), history=history
    )


async def start(bridge: Bridge) -> asyncio.Task[None]:
    task = asyncio.create_task(bridge.run())
    assert bridge.durable is not None
    await asyncio.wait_for(bridge.durable.reading.wait(), 5)
    return task


async def stop(bridge: Bridge, task: asyncio.Task[None]) -> None:
    bridge.stop()
    await asyncio.wait_for(task, 5)


async def numbers(layer, channel, count: int) -> list[tuple[str, int]]:
    found = []
    for _ in range(count):
        message = await asyncio.wait_for(layer.receive(channel), 5)
        frame = json.loads(message["text"])
        found.append((frame["job_id"], frame["data"]["n"]))
    return found


def recorded(sync: redis.Redis) -> list[tuple[str, int, str | None]]:
    """The history as (job, n, ingest entry ID)."""
    rows = []
    for _, fields in sync.xrange(HISTORY):
        frame = json.loads(fields[b"f"])
        ingest_id = fields.get(b"i")
        rows.append((frame["job_id"], frame["data"]["n"], ingest_id and ingest_id.decode()))
    return rows


def pending(sync: redis.Redis) -> int:
    return int(sync.xpending(STREAM, GROUP)["pending"])


async def test_entries_added_before_any_bridge_and_after_are_forwarded_in_order_and_acked(
    redis_server, sync, history, member
):
    layer, channel = member
    early = [sync.xadd(STREAM, {"payload": payload("early", n)}).decode() for n in range(3)]
    bridge = make_bridge(redis_server.url, layer, history)
    task = await start(bridge)
    assert await numbers(layer, channel, 3) == [("early", n) for n in range(3)]
    late = [sync.xadd(STREAM, {"payload": payload("late", n)}).decode() for n in range(50)]
    assert await numbers(layer, channel, 50) == [("late", n) for n in range(50)]
    await stop(bridge, task)
    assert pending(sync) == 0, "expected every forwarded entry ACKed"
    assert recorded(sync) == [("early", n, early[n]) for n in range(3)] + [
        ("late", n, late[n]) for n in range(50)
    ]
    message = json.loads(sync.get("botrix:jobs:state:late").decode().partition(" ")[2])
    assert set(message) == {"type", "job_id", "status", "data"}, "expected the frame unchanged"
    assert bridge.durable is not None
    assert (bridge.durable.stats.forwarded, bridge.durable.stats.acked) == (53, 53)


async def test_both_inputs_work_at_once(redis_server, sync, history, member):
    layer, channel = member
    bridge = make_bridge(redis_server.url, layer, history)
    task = await start(bridge)
    from jobupdates.ingest.bridge import BridgeState

    await asyncio.wait_for(bridge.wait_for_state(BridgeState.SUBSCRIBED), 5)
    sync.publish(CHANNEL, payload("published", 0))
    assert await numbers(layer, channel, 1) == [("published", 0)]
    sync.xadd(STREAM, {"payload": payload("durable", 0)})
    assert await numbers(layer, channel, 1) == [("durable", 0)]
    await stop(bridge, task)


async def test_bad_entries_are_rejected_counted_and_acked(redis_server, sync, history, member):
    layer, channel = member
    bridge = make_bridge(redis_server.url, layer, history)
    task = await start(bridge)
    sync.xadd(STREAM, {"data": payload("no-payload-field", 0)})
    sync.xadd(STREAM, {"payload": "{oops"})
    sync.xadd(STREAM, {"payload": json.dumps({"job_id": "x", "status": "exploded"})})
    sync.xadd(STREAM, {"payload": payload("good", 1)})
    assert await numbers(layer, channel, 1) == [("good", 1)]
    await stop(bridge, task)
    assert bridge.stats.rejected == {
        RejectReason.MISSING_PAYLOAD: 1,
        RejectReason.INVALID_JSON: 1,
        RejectReason.UNKNOWN_STATUS: 1,
    }
    assert bridge.durable is not None
    assert bridge.durable.stats.rejected == 3
    assert pending(sync) == 0, "expected rejected entries ACKed, never redelivered"
    assert [row[:2] for row in recorded(sync)] == [("good", 1)]


async def test_pending_entries_already_recorded_are_skipped_the_others_forwarded_once(
    redis_server, sync, history, member
):
    """A bridge read 5 entries, recorded the first 2 and died before its XACK."""
    layer, channel = member
    ids = [sync.xadd(STREAM, {"payload": payload("crash", n)}).decode() for n in range(5)]
    sync.xgroup_create(STREAM, GROUP, id="0")
    read = sync.xreadgroup(GROUP, "dead-bridge", {STREAM: ">"}, count=5)
    assert len(read[0][1]) == 5
    frames = [("crash", JobUpdate("crash", "processing", {"n": n}).to_frame()) for n in range(2)]
    await history.append_many(frames, ids[:2])
    after = [sync.xadd(STREAM, {"payload": payload("after", n)}).decode() for n in range(2)]

    bridge = make_bridge(redis_server.url, layer, history)
    task = await start(bridge)
    expected = [("crash", 2), ("crash", 3), ("crash", 4), ("after", 0), ("after", 1)]
    assert await numbers(layer, channel, 5) == expected
    await stop(bridge, task)
    assert recorded(sync) == [("crash", n, ids[n]) for n in range(5)] + [
        ("after", n, after[n]) for n in range(2)
    ], "expected each update in the history once, in order"
    assert pending(sync) == 0
    assert bridge.durable is not None
    assert (bridge.durable.stats.already_recorded, bridge.durable.stats.recoveries) == (2, 1)


@pytest.mark.parametrize("recorded_by_it", [0, 1])
async def test_entries_a_deposed_bridge_read_come_before_newer_ones(
    redis_server, sync, history, member, recorded_by_it
):
    """A frozen bridge's blocked read is answered after its successor took over: it holds
    entries pending (recorded or not: it may have been fenced) while the active bridge
    reads newer ones. Those come first, each once: the stream's order is the history's."""
    layer, channel = member
    sync.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    zombie = [sync.xadd(STREAM, {"payload": payload("early", n)}).decode() for n in range(2)]
    assert len(sync.xreadgroup(GROUP, "deposed-bridge", {STREAM: ">"}, count=2)[0][1]) == 2
    frames = [("early", JobUpdate("early", "processing", {"n": 0}).to_frame())]
    await history.append_many(frames[:recorded_by_it], zombie[:recorded_by_it])
    newer = sync.xadd(STREAM, {"payload": payload("newer", 0)}).decode()
    bridge = make_bridge(redis_server.url, layer, history)
    durable = bridge.durable
    assert durable is not None
    client = aioredis.Redis.from_url(redis_server.url)
    read = await client.xreadgroup(GROUP, durable.consumer, {STREAM: ">"}, count=10)
    entries = [(entry_id.decode(), fields) for entry_id, fields in read[0][1]]
    assert [entry_id for entry_id, _ in entries] == [newer]
    assert await durable.handle(client, await durable.with_older(client, entries))
    await client.aclose()
    expected = [("early", n) for n in range(recorded_by_it, 2)] + [("newer", 0)]
    assert await numbers(layer, channel, len(expected)) == expected
    assert recorded(sync) == [
        *(("early", n, zombie[n]) for n in range(2)),
        ("newer", 0, newer),
    ], "expected each entry in the history once, in the stream's order"
    assert pending(sync) == 0


async def test_an_idle_period_longer_than_5s_does_not_kill_the_reader(
    redis_server, sync, history, member
):
    """redis-py 8 times a read out after 5 s by default; a 6 s block must survive."""
    layer, channel = member
    bridge = make_bridge(redis_server.url, layer, history, block_seconds=6.0)
    task = await start(bridge)
    assert bridge.durable is not None
    await asyncio.wait_for(bridge.durable.idled.wait(), 15)  # one whole 6 s block, idle
    assert bridge.stats.reconnects == 0
    sync.xadd(STREAM, {"payload": payload("after-idle", 0)})
    assert await numbers(layer, channel, 1) == [("after-idle", 0)]
    await stop(bridge, task)
    assert bridge.durable.idle_reads >= 1


async def test_a_standby_does_not_read_the_stream(redis_server, sync, history, member):
    from jobupdates.ingest.leadership import Lease, Role

    layer, channel = member
    client = aioredis.Redis.from_url(redis_server.url)
    sync.set("lease", "someone-else")
    options = BridgeOptions(
        redis_url=redis_server.url,
        channel=CHANNEL,
        group=LAYER_GROUP,
        ingest_stream=STREAM,
        lease_interval=0.1,
    )
    bridge = Bridge(
        options,
        layer=layer,
        delays=functools.partial(backoff, 0.05, 0.2),
        history=history,
        lease=Lease(client, "lease", "me", 30),
    )
    task = asyncio.create_task(bridge.run())
    assert bridge.election is not None
    await asyncio.wait_for(bridge.election.decided.wait(), 5)
    assert bridge.role is Role.STANDBY
    sync.xadd(STREAM, {"payload": payload("kept", 0)})
    assert sync.xinfo_groups(STREAM) == [], "expected a standby not to read the stream"
    sync.delete("lease")  # the other bridge is gone: this one takes over and reads
    assert bridge.durable is not None
    await asyncio.wait_for(bridge.durable.reading.wait(), 5)
    assert await numbers(layer, channel, 1) == [("kept", 0)]
    await stop(bridge, task)
    await client.aclose()
