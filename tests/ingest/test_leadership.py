"""One active bridge: the lease and the election, against a real throwaway Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from jobupdates.ingest.leadership import Election, Lease, Role


async def until_active(election: Election, seconds: float) -> None:
    """Return once ``election`` has made its bridge the active one (bounded wait)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while election.role is not Role.ACTIVE:
        assert asyncio.get_running_loop().time() < deadline, "expected the bridge to be active"
        await asyncio.sleep(0.01)


@pytest.fixture
async def client(redis_server):
    connection = aioredis.Redis.from_url(redis_server.url, socket_timeout=10)
    yield connection
    await connection.aclose()


async def test_first_holder_keeps_the_lease_until_it_releases_it(client):
    a, b = Lease(client, "lease", "a", 10), Lease(client, "lease", "b", 10)
    assert await a.hold() == "a"
    assert await b.hold() == "a"
    assert await a.hold() == "a"
    await b.release()  # not the holder: no effect
    assert await b.hold() == "a"
    await a.release()
    assert await b.hold() == "b"


async def test_an_unrenewed_lease_expires_and_a_standby_takes_it(client):
    a, b = Lease(client, "lease", "a", 0.2), Lease(client, "lease", "b", 0.2)
    assert await a.hold() == "a"
    assert 0 < await client.pttl("lease") <= 200
    deadline = asyncio.get_running_loop().time() + 2
    while await b.hold() != "b":  # a has "crashed": it no longer renews
        assert asyncio.get_running_loop().time() < deadline, "expected the lease to expire"
        await asyncio.sleep(0.02)


async def test_elections_pick_one_active_and_hand_over_on_stop(client):
    first = Election(Lease(client, "lease", "first", 5), interval=0.05)
    second = Election(Lease(client, "lease", "second", 5), interval=0.05)
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    running_first = asyncio.create_task(first.run(stop_first))
    await until_active(first, 2)
    running_second = asyncio.create_task(second.run(stop_second))
    await asyncio.wait_for(second.decided.wait(), 2)
    assert (first.role, second.role) == (Role.ACTIVE, Role.STANDBY)
    stop_first.set()
    await running_first
    assert first.role is Role.STANDBY
    await until_active(second, 2)
    assert second.takeovers == 1
    stop_second.set()
    await running_second
    assert await client.get("lease") is None


async def test_lost_redis_makes_a_bridge_standby(redis_server):
    from botrix_site.redis_server import RedisServer

    server = RedisServer().start()
    connection = aioredis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
    election = Election(Lease(connection, "lease", "solo", 5), interval=0.05)
    stop = asyncio.Event()
    running = asyncio.create_task(election.run(stop))
    await until_active(election, 2)
    server.stop()
    deadline = asyncio.get_running_loop().time() + 5
    while election.role is Role.ACTIVE:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    server.start()
    await until_active(election, 5)
    stop.set()
    await running
    await connection.aclose()
    server.stop()
