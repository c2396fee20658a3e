"""The bridge in-process, against a real throwaway Redis and a real in-memory layer."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import time
from typing import Any

import pytest
import redis
from channels.layers import InMemoryChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError

from botrix_site.redis_server import RedisServer, free_port
from harness.updates import CHANNEL
from jobupdates.ingest.backoff import backoff
from jobupdates.ingest.bridge import Bridge, BridgeOptions, BridgeState
from jobupdates.ingest.leadership import Role, Standing
from jobupdates.protocol import JOB_UPDATE_EVENT, JobUpdateEvent, RejectReason

GROUP = "jobupdates.all"
VALID = {"job_id": "j-1", "status": "completed", "data": {"k": "v"}}


class FlakyLayer(InMemoryChannelLayer):
    """An in-memory layer whose first ``failures`` group_sends raise like a lost Redis."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def group_send(self, group, message):
        if self.failures:
            self.failures -= 1
            raise RedisConnectionError("Connection refused (injected)")
        await super().group_send(group, message)


def make_bridge(url: str, layer, history=None, lease=None, **kwargs) -> Bridge:
    options = BridgeOptions(redis_url=url, channel=CHANNEL, group=GROUP, **kwargs)
    return Bridge(
        options,
        layer=layer,
        delays=functools.partial(backoff, 0.05, 0.2),
        history=history,
        lease=lease,
    )


async def receive(layer, channel, timeout=2.0):
    return await asyncio.wait_for(layer.receive(channel), timeout)


async def running(bridge: Bridge) -> asyncio.Task[None]:
    """Run ``bridge`` until it is subscribed (and, if it holds a lease, aligned)."""
    task = asyncio.create_task(bridge.run())
    await asyncio.wait_for(bridge.wait_for_state(BridgeState.SUBSCRIBED), 5)
    if bridge.election is not None and bridge.role is Role.ACTIVE:
        await asyncio.wait_for(bridge.aligned.wait(), 5)
    return task


async def test_valid_update_is_forwarded_as_the_client_frame(redis_server, publish, member):
    layer, channel = member
    bridge = make_bridge(redis_server.url, layer)
    task = await running(bridge)
    publish(json.dumps(VALID))
    message = await receive(layer, channel)
    assert message["type"] == JOB_UPDATE_EVENT
    assert json.loads(message["text"]) == {"type": "job_update", **VALID}
    event = JobUpdateEvent.from_event(message)  # what every Daphne process reads
    assert (event.job_id, event.position) == (VALID["job_id"], None)
    assert event.received_at is not None
    assert event.received_at > 0
    bridge.stop()
    await asyncio.wait_for(task, 2)
    assert bridge.state is BridgeState.STOPPED
    assert (bridge.stats.received, bridge.stats.forwarded) == (1, 1)


async def test_invalid_messages_are_counted_logged_and_do_not_stop_the_flow(
    redis_server, publish, member, caplog
):
    layer, channel = member
    bridge = make_bridge(redis_server.url, layer, statuses=("completed",), max_payload_bytes=100)
    task = await running(bridge)
    with caplog.at_level(logging.WARNING, logger="jobupdates.ingest.bridge"):
        publish(b"{oops")
        publish(json.dumps({"job_id": "a", "status": "queued"}))
        publish(json.dumps({"job_id": "a", "status": "completed", "data": "x" * 200}))
        publish(json.dumps(VALID))
        assert json.loads((await receive(layer, channel))["text"])["job_id"] == "j-1"
    assert bridge.stats.rejected == {
        RejectReason.INVALID_JSON: 1,
        RejectReason.UNKNOWN_STATUS: 1,
        RejectReason.TOO_LARGE: 1,
    }
    logged = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(logged) == 3
    assert "unknown_status: expected status to be one of completed; got 'queued'" in logged[1]
    bridge.stop()
    await task


async def test_reconnects_after_redis_restarts_and_logs_each_state(member, caplog):
    layer, channel = member
    server = RedisServer().start()
    bridge = make_bridge(server.url, layer)
    with caplog.at_level(logging.INFO, logger="jobupdates.ingest.bridge"):
        task = await running(bridge)
        server.stop()
        await asyncio.wait_for(bridge.wait_for_state(BridgeState.BACKING_OFF), 5)
        server.start()
        await asyncio.wait_for(bridge.wait_for_state(BridgeState.SUBSCRIBED), 5)
    import redis

    redis.Redis.from_url(server.url).publish(CHANNEL, json.dumps(VALID))
    assert json.loads((await receive(layer, channel))["text"])["status"] == "completed"
    assert bridge.stats.reconnects >= 1
    states = [r.getMessage() for r in caplog.records if r.getMessage().startswith("bridge ")]
    assert any("subscribed -> backing_off: lost Redis" in s for s in states), states
    assert any("-> subscribed" in s for s in states[1:]), states
    bridge.stop()
    await task
    server.stop()


async def test_unreachable_redis_backs_off_and_stops_promptly(member):
    layer, _ = member
    bridge = make_bridge(f"redis://127.0.0.1:{free_port()}/0", layer)
    task = asyncio.create_task(bridge.run())
    await asyncio.wait_for(bridge.wait_for_state(BridgeState.BACKING_OFF), 5)
    bridge.stop()
    await asyncio.wait_for(task, 1)
    assert bridge.state is BridgeState.STOPPED


async def counted(bridge, forwarded: int = 1) -> None:
    """Return once ``bridge`` has counted ``forwarded`` updates."""
    while bridge.stats.forwarded < forwarded:
        await asyncio.sleep(0.01)


async def test_failed_group_send_is_retried_not_dropped(redis_server, publish, caplog):
    layer = FlakyLayer(failures=2)
    channel = await layer.new_channel()
    await layer.group_add(GROUP, channel)
    bridge = make_bridge(redis_server.url, layer)
    task = await running(bridge)
    with caplog.at_level(logging.WARNING, logger="jobupdates.ingest.bridge"):
        publish(json.dumps(VALID))
        assert json.loads((await receive(layer, channel))["text"])["job_id"] == "j-1"
    retries = [r.getMessage() for r in caplog.records if "group_send failed" in r.getMessage()]
    assert len(retries) == 2
    assert "Connection refused (injected)" in retries[0]
    await asyncio.wait_for(counted(bridge), 5)  # the frame arrives before the bridge counts it
    assert bridge.stats.forwarded == 1
    bridge.stop()
    await task


async def test_update_still_unsent_at_stop_is_logged_as_an_error(redis_server, caplog):
    layer = FlakyLayer(failures=10**6)
    bridge = make_bridge(redis_server.url, layer)
    bridge.stop()
    with caplog.at_level(logging.ERROR, logger="jobupdates.ingest.bridge"):
        await bridge.handle_many([json.dumps(VALID).encode()])
    assert any(
        "stopping with 1 update(s) not forwarded (jobs 'j-1'; group_send failed)" in r.getMessage()
        for r in caplog.records
    )
    assert bridge.stats.forwarded == 0


def history_and_lease(client, holder: str):
    from jobupdates.history import History
    from jobupdates.ingest.leadership import Lease

    history = History(
        client,
        stream_key="h",
        state_prefix="s:",
        max_entries=100,
        max_age_seconds=0,
        state_ttl_seconds=60,
    )
    return history, Lease(client, "lease", holder, ttl_seconds=1)


async def test_updates_are_recorded_with_a_position_before_they_are_sent(
    redis_server, publish, member
):
    import redis.asyncio as aioredis

    layer, channel = member
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=10)
    history, lease = history_and_lease(client, "solo")
    bridge = make_bridge(redis_server.url, layer, history=history, lease=lease, lease_interval=0.1)
    task = await running(bridge)
    publish(json.dumps(VALID))
    event = await receive(layer, channel)
    entry_id, _fields = (await client.xrange("h"))[0]
    assert event["position"] == entry_id.decode()
    assert event["job_id"] == "j-1"
    assert abs(event["received_at"] - time.time()) < 5
    assert json.loads(event["text"]) == {
        "type": "job_update",
        **VALID,
        "position": event["position"],
    }
    assert bridge.stats.forwarded_by_status == {"completed": 1}
    bridge.stop()
    await task
    await client.aclose()


async def test_two_bridges_deliver_exactly_once_and_the_standby_takes_over(
    redis_server, publish, member, caplog
):
    import redis.asyncio as aioredis

    layer, channel = member
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=10)
    bridges = []
    for name in ("one", "two"):
        history, lease = history_and_lease(client, name)
        bridges.append(
            make_bridge(redis_server.url, layer, history=history, lease=lease, lease_interval=0.1)
        )
    tasks = [await running(b) for b in bridges]
    active = next(b for b in bridges if b.role == "active")
    standby = next(b for b in bridges if b is not active)
    for n in range(5):
        assert publish(json.dumps({**VALID, "job_id": f"j{n}"})) == 2
    received = [json.loads((await receive(layer, channel))["text"])["job_id"] for _ in range(5)]
    assert received == [f"j{n}" for n in range(5)]
    deadline = time.monotonic() + 5
    while standby.stats.skipped_as_standby < 5:  # it reads its own copy, at its own pace
        assert time.monotonic() < deadline, "expected the standby to skip all 5"
        await asyncio.sleep(0.01)
    await asyncio.wait_for(counted(active, 5), 5)  # the frames arrive before it counts them
    assert (active.stats.forwarded, standby.stats.skipped_as_standby) == (5, 5)
    with caplog.at_level(logging.INFO, logger="jobupdates.ingest.leadership"):
        active.stop()
        await tasks[bridges.index(active)]
        deadline = time.monotonic() + 3
        while standby.role is not Role.ACTIVE:  # it takes over at its next interval
            assert time.monotonic() < deadline, "expected the standby to take over"
            await asyncio.sleep(0.01)
    assert any("is now the active bridge" in r.getMessage() for r in caplog.records)
    publish(json.dumps({**VALID, "job_id": "after"}))
    assert json.loads((await receive(layer, channel))["text"])["job_id"] == "after"
    with pytest.raises(asyncio.TimeoutError):
        await receive(layer, channel, timeout=0.3)  # nothing twice
    standby.stop()
    await tasks[bridges.index(standby)]
    await client.aclose()


async def test_after_a_redis_restart_the_bridge_retakes_the_lost_lease_before_reading(member):
    """A restarted Redis has lost the lease: the bridge must not skip updates as a standby
    until its election's next interval (30 s here), but take the lease as it re-subscribes."""
    import redis
    import redis.asyncio as aioredis

    layer, channel = member
    server = RedisServer().start()
    client = aioredis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=2)
    history, lease = history_and_lease(client, "solo")
    lease.ttl_ms = 60_000
    bridge = make_bridge(server.url, layer, history=history, lease=lease, lease_interval=30)
    task = await running(bridge)
    assert bridge.role == "active"
    server.stop()
    await asyncio.wait_for(bridge.wait_for_state(BridgeState.BACKING_OFF), 5)
    server.start()
    await asyncio.wait_for(bridge.wait_for_state(BridgeState.SUBSCRIBED), 5)
    assert bridge.role == "active", "expected the lease retaken as the bridge re-subscribed"
    redis.Redis.from_url(server.url).publish(CHANNEL, json.dumps(VALID))
    assert json.loads((await receive(layer, channel))["text"])["job_id"] == "j-1"
    assert bridge.stats.skipped_as_standby == 0
    bridge.stop()
    await task
    await client.aclose()
    server.stop()


async def test_a_bridge_that_does_not_know_the_holder_subscribes_only_once_it_does(
    redis_server, publish, member
):
    """Subscribed without knowing who holds the lease, it would skip updates as a standby
    that nobody records: it asks again until Redis answers, then subscribes."""
    import redis.asyncio as aioredis

    from jobupdates.ingest.leadership import Lease

    class FailingTwice(Lease):
        failures = 4  # two tries each: the election's first check, then one more

        async def hold(self, *args: Any, **kwargs: Any) -> Standing:
            if self.failures:
                self.failures -= 1
                raise RedisConnectionError("Connection refused (injected)")
            return await super().hold(*args, **kwargs)

    layer, channel = member
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=10)
    history, _ = history_and_lease(client, "solo")
    lease = FailingTwice(client, "lease", "solo", ttl_seconds=60)
    bridge = make_bridge(redis_server.url, layer, history=history, lease=lease, lease_interval=30)
    task = await running(bridge)
    assert lease.failures == 0
    assert (bridge.role, bridge.election.holder_unknown) == ("active", False)
    publish(json.dumps(VALID))
    assert json.loads((await receive(layer, channel))["text"])["job_id"] == "j-1"
    assert (bridge.role, bridge.stats.skipped_as_standby) == ("active", 0)
    bridge.stop()
    await task
    await client.aclose()


async def test_a_long_backoff_ends_as_soon_as_redis_answers_again(member, caplog):
    """Every second spent backing off once Redis is back loses what is published."""
    layer, channel = member
    server = RedisServer().start()
    options = BridgeOptions(redis_url=server.url, channel=CHANNEL, group=GROUP)
    bridge = Bridge(options, layer=layer, delays=lambda: itertools.repeat(60.0))
    with caplog.at_level(logging.INFO, logger="jobupdates.ingest.bridge"):
        task = await running(bridge)
        server.stop()
        await asyncio.wait_for(bridge.wait_for_state(BridgeState.BACKING_OFF), 5)
        server.start()
        # far sooner than the 60 s delay: the probe saw Redis come back
        await asyncio.wait_for(bridge.wait_for_state(BridgeState.SUBSCRIBED), 10)
    assert "Redis answers again; reconnecting now" in caplog.text
    redis.Redis.from_url(server.url).publish(CHANNEL, json.dumps(VALID))
    assert json.loads((await receive(layer, channel))["text"])["status"] == "completed"
    bridge.stop()
    await asyncio.wait_for(task, 5)
    server.stop()
