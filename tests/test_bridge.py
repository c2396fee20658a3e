"""The bridge in-process, against a real throwaway Redis and a real in-memory layer."""

from __future__ import annotations

import asyncio
import functools
import json
import logging

import pytest
from channels.layers import InMemoryChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError

from botrix_site.redis_server import RedisServer, free_port
from jobupdates.backoff import backoff
from jobupdates.bridge import Bridge, BridgeState
from jobupdates.protocol import JOB_UPDATE_EVENT, RejectReason

GROUP = "jobupdates.all"
CHANNEL = "botrix:jobs:updates"
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


def make_bridge(url: str, layer, **kwargs) -> Bridge:
    return Bridge(
        redis_url=url,
        channel=CHANNEL,
        group=GROUP,
        layer=layer,
        delays=functools.partial(backoff, 0.05, 0.2),
        **kwargs,
    )


@pytest.fixture
async def member():
    layer = InMemoryChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add(GROUP, channel)
    return layer, channel


async def receive(layer, channel, timeout=2.0):
    return await asyncio.wait_for(layer.receive(channel), timeout)


async def running(bridge: Bridge) -> asyncio.Task[None]:
    task = asyncio.create_task(bridge.run())
    await asyncio.wait_for(bridge.wait_for_state(BridgeState.SUBSCRIBED), 5)
    return task


async def test_valid_update_is_forwarded_as_the_client_frame(redis_server, publish, member):
    layer, channel = member
    bridge = make_bridge(redis_server.url, layer)
    task = await running(bridge)
    publish(json.dumps(VALID))
    message = await receive(layer, channel)
    assert message["type"] == JOB_UPDATE_EVENT
    assert json.loads(message["text"]) == {"type": "job_update", **VALID}
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
    with caplog.at_level(logging.WARNING, logger="jobupdates.bridge"):
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
    with caplog.at_level(logging.INFO, logger="jobupdates.bridge"):
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


async def test_failed_group_send_is_retried_not_dropped(redis_server, publish, caplog):
    layer = FlakyLayer(failures=2)
    channel = await layer.new_channel()
    await layer.group_add(GROUP, channel)
    bridge = make_bridge(redis_server.url, layer)
    task = await running(bridge)
    with caplog.at_level(logging.WARNING, logger="jobupdates.bridge"):
        publish(json.dumps(VALID))
        assert json.loads((await receive(layer, channel))["text"])["job_id"] == "j-1"
    retries = [r.getMessage() for r in caplog.records if "group_send failed" in r.getMessage()]
    assert len(retries) == 2
    assert "Connection refused (injected)" in retries[0]
    assert bridge.stats.forwarded == 1
    bridge.stop()
    await task


async def test_update_still_unsent_at_stop_is_logged_as_an_error(redis_server, caplog):
    layer = FlakyLayer(failures=10**6)
    bridge = make_bridge(redis_server.url, layer)
    bridge.stop()
    with caplog.at_level(logging.ERROR, logger="jobupdates.bridge"):
        await bridge.handle(json.dumps(VALID).encode())
    assert any("stopping with an update not forwarded" in r.getMessage() for r in caplog.records)
    assert bridge.stats.forwarded == 0
