"""One active bridge: the fenced lease, who may take it, and the election, against a
real throwaway Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from jobupdates.ingest.leadership import (
    COVER_MARGIN_MS,
    NOT_HELD,
    Election,
    Lease,
    Previous,
    Role,
    Tenure,
)


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


@pytest.fixture
async def run(client) -> str:
    """The Redis process's run id: a subscription counts on the Redis it was made on."""
    return str((await client.info("server"))["run_id"])


def lease(client, name: str, ttl: float = 10) -> Lease:
    return Lease(client, "lease", name, ttl)


async def test_first_holder_keeps_the_lease_until_it_releases_it(client, run):
    a, b = lease(client, "a"), lease(client, "b")
    assert (await a.hold(1, run)).holder == "a"
    assert (await b.hold(1, run)).holder == "a"
    assert (await a.hold(1, run)).holder == "a"
    await b.release()  # not the holder: no effect
    assert (await b.hold(1, run)).holder == "a"
    await a.release()
    assert (await b.hold(1, run)).holder == "b"


async def test_each_new_holder_has_a_larger_token_and_knows_how_the_last_lease_ended(client, run):
    a, b = lease(client, "a"), lease(client, "b")
    first = (await a.hold(1, run)).tenure
    assert first is not None
    assert (first.token, first.holder, first.previous) == (1, "a", Previous.NONE)
    assert (await a.hold(1, run, drained=True)).tenure == first, "a renewal keeps the value"
    await a.release()
    second = (await b.hold(1, run)).tenure
    assert second is not None
    assert (second.token, second.previous) == (2, Previous.RELEASED)
    assert second.drained_ms > 0, "a graceful stop had nothing in hand"
    await b.hold(1, run, drained=True)
    await client.delete("lease")  # b's lease expired: it crashed, or froze
    await client.hdel("lease:bridges", "b")  # and it is no longer a live candidate
    third = (await a.hold(1, run)).tenure
    assert third is not None
    assert (third.token, third.previous) == (3, Previous.EXPIRED)
    assert third.drained_ms >= second.drained_ms, "when b last had nothing in hand"


async def test_an_unrenewed_lease_expires_and_a_standby_takes_it(client, run):
    a, b = lease(client, "a", 0.2), lease(client, "b", 0.2)
    assert (await a.hold(1, run)).holder == "a"
    assert 0 < await client.pttl("lease") <= 200
    deadline = asyncio.get_running_loop().time() + 2
    while (await b.hold(1, run)).holder != "b":  # a has "crashed": it no longer renews
        assert asyncio.get_running_loop().time() < deadline, "expected the lease to expire"
        await asyncio.sleep(0.02)


async def test_a_free_lease_goes_to_the_bridge_subscribed_longest(client, run):
    """The standby that held the gap all along wins over one started after it began."""
    ttl = 0.3
    holder, standby, late = (
        lease(client, "a", ttl),
        lease(client, "standby", ttl),
        lease(client, "b", ttl),
    )
    await holder.hold(1, run)
    await standby.hold(1, run)
    await asyncio.sleep(0.01)
    await late.hold(1, run)  # subscribed later; then the holder crashes: it renews no more
    deadline = asyncio.get_running_loop().time() + 2
    while await client.exists("lease"):
        assert asyncio.get_running_loop().time() < deadline, "expected the lease to expire"
        await standby.hold(1, run)  # both stay alive
        await asyncio.sleep(0.05)
    assert (await late.hold(1, run)).holder is None, "not while the standby is alive"
    assert (await standby.hold(1, run)).holder == "standby"


async def test_a_bridge_not_subscribed_takes_a_free_lease_only_if_no_live_one_is(client, run):
    holder, standby, starting = lease(client, "a"), lease(client, "standby"), lease(client, "b")
    await holder.hold(1, run)
    await standby.hold(1, run)
    await holder.release()
    assert (await starting.hold(None)).holder is None
    await standby.release()  # the only subscribed bridge stopped
    assert (await starting.hold(None)).holder == "b"


async def test_a_frozen_candidate_is_not_waited_for(client, run):
    frozen, other = lease(client, "a", 0.2), lease(client, "b", 0.2)
    await frozen.hold(1, run)  # subscribed first, then frozen: its candidacy goes stale
    await asyncio.sleep(0.25)
    assert (await other.hold(1, run)).holder == "b"


async def test_a_holder_that_resubscribed_hands_the_lease_to_one_subscribed_longer(client, run):
    a, b = lease(client, "a"), lease(client, "b")
    taken = (await a.hold(1, run)).tenure
    await b.hold(1, run)
    assert (await a.hold(1, run)).holder == "a", "b subscribed after a took the lease: no hand-over"
    await asyncio.sleep(0.01)
    handed = await a.hold(2, run)  # a re-subscribed: it may have missed what b has
    assert handed.holder == "b"
    assert handed.tenure is not None
    assert taken is not None
    assert (handed.tenure.token, handed.tenure.previous) == (taken.token + 1, Previous.TRANSFERRED)
    assert (await b.hold(1, run)).holder == "b"


async def test_the_holder_s_subscription_on_this_redis_is_known(client, run):
    a, b = lease(client, "a"), lease(client, "b")
    await a.hold(None)  # took it before subscribing (after a restart, say)
    assert (await b.hold(None)).holder_listening is False
    await a.hold(1, run)
    standing = await b.hold(None)
    assert (standing.holder, standing.holder_listening) == ("a", True)
    assert standing.run_id
    assert standing.since_ms > 0


async def test_a_subscription_on_a_redis_that_restarted_since_does_not_count(client, run):
    """A holder busy retrying a write may not have noticed that Redis restarted: its
    subscription is gone, so a standby must not take it for subscribed."""
    a, b = lease(client, "a"), lease(client, "b")
    assert (await a.hold(1, "a-run-before-the-restart")).holder == "a"
    assert (await b.hold(None)).holder_listening is False
    assert (await a.hold(1, run)).tenure is not None
    assert (await b.hold(None)).holder_listening is True


async def test_a_subscription_keeps_its_start_while_its_bridge_reconnects(client, run):
    """The holder that subscribes first after a Redis restart goes on with its ring, and
    with the start it registered: it does not look newer than a standby."""
    a = lease(client, "a")
    first = await a.hold(1, run)
    await asyncio.sleep(0.01)
    assert (await a.hold(None)).since_ms == first.since_ms  # reconnecting
    assert (await a.hold(1, run)).since_ms == first.since_ms  # the same subscription goes on
    assert (await a.hold(2, run)).since_ms > first.since_ms  # a new one


async def test_a_lease_handed_over_says_when_its_holder_last_had_nothing_in_hand(client, run):
    a, b = lease(client, "a"), lease(client, "b")
    await a.hold(1, run)
    await b.hold(1, run)
    await asyncio.sleep(0.01)
    handed = await a.hold(2, run, drained=True)
    assert handed.tenure is not None
    assert handed.tenure.previous is Previous.TRANSFERRED
    assert handed.tenure.drained_ms >= handed.since_ms


async def test_a_lease_of_an_older_bridge_is_respected(client, run):
    await client.set("lease", "host:1:abc", px=10_000)  # the value an older version writes
    standing = await lease(client, "new").hold(1, run)
    assert (standing.holder, standing.holder_listening) == ("host:1:abc", True)
    assert standing.tenure == Tenure("host:1:abc", 0, "host:1:abc")


@pytest.mark.parametrize(
    ("previous", "drained", "since", "covers"),
    [
        (Previous.NONE, 0, 10_000, True),
        (Previous.RELEASED, 0, 10_000, True),
        (Previous.EXPIRED, 10_000, 10_000 - COVER_MARGIN_MS, True),
        (Previous.EXPIRED, 10_000, 10_000 - COVER_MARGIN_MS + 1, False),
        (Previous.EXPIRED, 0, 5, False),  # it never had nothing in hand
        (Previous.TRANSFERRED, 0, 5, False),
    ],
)
def test_a_ring_covers_the_old_holders_gap_if_it_subscribed_before_it_last_drained(
    previous, drained, since, covers
):
    tenure = Tenure(f"2 x 0 {previous} {drained}", 2, "x", previous, drained)
    assert Tenure.parse(tenure.value) == tenure
    assert tenure.covers(since) is covers


async def test_elections_pick_one_active_and_hand_over_on_stop(client):
    first = Election(lease(client, "first", 5), interval=0.05)
    second = Election(lease(client, "second", 5), interval=0.05)
    first.segment = second.segment = 1
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    running_first = asyncio.create_task(first.run(stop_first))
    await until_active(first, 2)
    running_second = asyncio.create_task(second.run(stop_second))
    await asyncio.wait_for(second.decided.wait(), 2)
    assert (first.role, second.role) == (Role.ACTIVE, Role.STANDBY)
    assert first.fence.value.startswith("1 first ")
    assert second.fence.value == NOT_HELD, "a standby's writes are all refused"
    stop_first.set()
    await running_first
    assert first.role is Role.STANDBY
    await until_active(second, 2)
    assert second.takeovers == 1
    stop_second.set()
    await running_second
    assert await client.get("lease") is None


async def test_a_deposed_bridge_is_a_standby_until_it_asks_again(client):
    election = Election(lease(client, "solo", 5), interval=10)
    election.segment = 1
    assert await election.check() is Role.ACTIVE
    election.deposed()
    assert (election.role, election.holder_unknown, election.tenure) == (Role.STANDBY, True, None)
    assert await election.check() is Role.ACTIVE


async def test_a_bridge_waits_to_subscribe_until_the_holder_has(client, run):
    """After a Redis restart the holder subscribes first, so nothing reaches only a standby."""
    holder = lease(client, "holder")
    await holder.hold(None)  # it holds the lease, and is not subscribed yet
    waiting = Election(lease(client, "standby"), interval=1)
    stopping = asyncio.Event()
    subscribing = asyncio.create_task(waiting.wait_to_subscribe(stopping))
    await asyncio.sleep(0.2)
    assert not subscribing.done()
    await holder.hold(1, run)  # the holder subscribed
    standing = await asyncio.wait_for(subscribing, 2)
    assert standing is not None
    assert (standing.holder, waiting.role) == ("holder", Role.STANDBY)


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
