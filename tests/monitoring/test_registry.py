"""The client registry against a real Redis: round trips, refresh, expiry, admin disconnect."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
import redis.asyncio as aioredis
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from jobupdates.access.middleware import ORIGIN_OK
from jobupdates.consumers import JobUpdatesConsumer
from jobupdates.monitoring.reading import read_snapshot
from jobupdates.monitoring.registry import DISCONNECT_EVENT, Registry

SCOPE = {
    "client": ("10.0.0.5", 5555),
    "headers": [(b"user-agent", b"pytest"), (b"x-forwarded-for", b"6.6.6.6")],
    "user": User(pk=7, username="ann", is_staff=True),
}


@pytest.fixture
def executions(monkeypatch):
    """Count pipeline round trips."""
    calls: list[int] = []
    original = aioredis.client.Pipeline.execute

    async def counting(self, *args, **kwargs):
        calls.append(len(self.command_stack))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(aioredis.client.Pipeline, "execute", counting)
    return calls


async def test_one_round_trip_per_connect_and_disconnect_and_refresh(redis_server, executions):
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=5)
    registry = Registry(client, interval=60)
    sent = [0]
    local = await registry.register(SCOPE, "c" * 32, "chan-1", ["jobupdates.all"], lambda: sent[0])
    assert len(executions) == 1
    reader = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    [found] = read_snapshot(reader).clients
    assert found.client_id == "c" * 32
    assert found.username == "ann"
    assert found.user_id == 7
    assert found.remote_addr == "10.0.0.5", "expected X-Forwarded-For ignored without proxies"
    assert found.user_agent == "pytest"
    assert found.instance == registry.instance
    assert found.subscriptions == ["jobupdates.all"]

    sent[0] += 1  # the connection's feed sent it a job update
    local.last_active = found.last_active + 10
    await registry.refresh()
    assert len(executions) == 2
    [found] = read_snapshot(reader).clients
    assert found.messages_sent == 1
    assert found.last_active == local.last_active

    await registry.unregister("c" * 32)
    assert len(executions) == 3
    assert read_snapshot(reader).clients == []
    reader.close()
    await client.aclose()


async def test_changed_subscriptions_are_written_by_the_next_refresh(redis_server, executions):
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=5)
    registry = Registry(client, interval=60)
    local = await registry.register(SCOPE, "f" * 32, "chan-4", ["jobupdates.all"], lambda: 0)
    reader = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    local.resubscribe(["job-1", "job-2"])
    assert read_snapshot(reader).clients[0].subscriptions == ["jobupdates.all"]
    await registry.refresh()
    assert read_snapshot(reader).clients[0].subscriptions == ["job-1", "job-2"]
    assert len(executions) == 2
    reader.close()
    await client.aclose()


async def test_records_lost_by_redis_are_rewritten_by_the_next_refresh(redis_server, executions):
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=5)
    registry = Registry(client, interval=60)
    for n in range(3):
        await registry.register(SCOPE, f"{n}" * 32, f"chan-{n}", ["jobupdates.all"], lambda: 0)
    reader = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    reader.flushall()  # Redis restarted without persistence
    await registry.refresh()
    assert len(executions) == 3 + 2, "expected one refresh to find the loss and one to rewrite"
    assert sorted(c.client_id for c in read_snapshot(reader).clients) == [
        f"{n}" * 32 for n in range(3)
    ]
    await registry.refresh()
    assert len(executions) == 3 + 2 + 1, "expected a single round trip once rewritten"
    reader.close()
    await client.aclose()


async def test_a_failed_write_makes_the_next_refresh_rewrite_every_record(redis_server):
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=5)
    registry = Registry(client, interval=60)
    await registry.register(SCOPE, "g" * 32, "chan-5", ["jobupdates.all"], lambda: 0)
    await registry.register(SCOPE, "h" * 32, "chan-6", ["jobupdates.all"], lambda: 0)
    registry.redis = aioredis.Redis.from_url("redis://127.0.0.1:9/0", socket_timeout=1)
    await registry.unregister("g" * 32)  # the HDEL is lost: Redis still lists "g"
    reader = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    assert len(read_snapshot(reader).clients) == 2
    await registry.redis.aclose()
    registry.redis = client
    await registry.refresh()
    assert [c.client_id for c in read_snapshot(reader).clients] == ["h" * 32]
    reader.close()
    await client.aclose()


async def test_clients_of_a_process_that_stops_refreshing_vanish_within_two_intervals(
    redis_server,
):
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=5)
    registry = Registry(client, interval=0.3)
    refreshes, enough = [0], asyncio.Event()
    refresh = registry.refresh

    async def counted() -> None:
        await refresh()
        refreshes[0] += 1
        if refreshes[0] >= 3:  # three intervals: past the TTL of two
            enough.set()

    registry.refresh = counted  # type: ignore[method-assign]
    await registry.register(SCOPE, "d" * 32, "chan-2", ["jobupdates.all"], lambda: 0)
    reader = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    await asyncio.wait_for(enough.wait(), 10)  # refreshes keep it alive past the TTL
    assert len(read_snapshot(reader).clients) == 1
    assert registry._task is not None
    registry._task.cancel()  # the process "dies": no more refreshes
    died = time.monotonic()
    while read_snapshot(reader).clients:  # gone by the TTL alone (bounded wait, not a timing)
        assert time.monotonic() - died < 10, "expected the record to expire"
        await asyncio.sleep(0.05)
    assert not reader.smembers("jobupdates:registry:instances"), "expected the dead id pruned"
    reader.close()
    await client.aclose()


async def test_registry_failures_never_reach_the_consumer(caplog):
    client = aioredis.Redis.from_url("redis://127.0.0.1:9/0", socket_timeout=1)
    registry = Registry(client, interval=60)
    with caplog.at_level("WARNING", logger="jobupdates.monitoring.registry"):
        await registry.register(SCOPE, "e" * 32, "chan-3", ["jobupdates.all"], lambda: 0)
        await registry.refresh()
        await registry.unregister("e" * 32)
    failed = [r.getMessage().split(" (")[0] for r in caplog.records]
    assert failed == [
        "registry register failed",
        "registry refresh failed",
        "registry unregister failed",
    ], "expected each failure logged with its reason, none raised"
    assert all("ConnectionError" in r.getMessage() for r in caplog.records)
    await client.aclose()


async def test_admin_disconnect_event_closes_with_4000_after_an_error_frame(redis_server, settings):
    settings.JOBUPDATES_REDIS_URL = redis_server.url
    comm = WebsocketCommunicator(JobUpdatesConsumer.as_asgi(), "/ws")
    comm.scope["user"] = SCOPE["user"]
    comm.scope[ORIGIN_OK] = True
    comm.scope["client"] = ("127.0.0.1", 1)
    assert (await comm.connect())[0]
    client_id = (await comm.receive_json_from())["client_id"]
    reader = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    deadline = time.monotonic() + 5
    while not read_snapshot(reader).clients:  # registered right after the welcome
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    [found] = read_snapshot(reader).clients
    assert found.client_id == client_id
    await get_channel_layer().send(found.channel_name, {"type": DISCONNECT_EVENT, "by": "s"})
    error = await comm.receive_json_from()
    assert error["code"] == "disconnected_by_staff"
    assert await comm.receive_output() == {"type": "websocket.close", "code": 4000}
    await comm.disconnect()
    assert read_snapshot(reader).clients == []
    reader.close()


async def test_a_storm_of_connects_and_disconnects_shares_round_trips(redis_server, executions):
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=5)
    registry = Registry(client, interval=60)
    ids = [f"{n:032d}" for n in range(100)]
    await asyncio.gather(
        *(registry.register(SCOPE, i, f"chan-{i}", ["jobupdates.all"], lambda: 0) for i in ids)
    )
    assert len(executions) == 1, "expected one write for the 100 connects of the moment"
    reader = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    assert sorted(c.client_id for c in read_snapshot(reader).clients) == ids
    leaving, joining = ids[:50], [f"{n:032d}" for n in range(100, 110)]
    await asyncio.gather(
        *(registry.unregister(i) for i in leaving),
        *(registry.register(SCOPE, i, f"chan-{i}", ["jobupdates.all"], lambda: 0) for i in joining),
    )
    assert len(executions) == 2, "expected one more write for the 60 changes"
    assert sorted(c.client_id for c in read_snapshot(reader).clients) == ids[50:] + joining
    reader.close()
    await client.aclose()


async def test_a_client_that_leaves_before_its_record_is_written_is_not_left_behind(
    redis_server,
):
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=5)
    registry = Registry(client, interval=60)
    first = asyncio.ensure_future(registry.register(SCOPE, "a" * 32, "c-a", ["x"], lambda: 0))
    await asyncio.sleep(0)  # the first write is in flight; "b" waits for the next
    second = asyncio.ensure_future(registry.register(SCOPE, "b" * 32, "c-b", ["x"], lambda: 0))
    await asyncio.sleep(0)
    second.cancel()  # its consumer was cancelled while registering: teardown unregisters
    await registry.unregister("b" * 32)
    await first
    reader = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    assert [c.client_id for c in read_snapshot(reader).clients] == ["a" * 32]
    reader.close()
    await client.aclose()
