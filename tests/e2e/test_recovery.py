"""Never miss an update, end to end: replay with since=, resets, per-job subscriptions.

Real redis-server, Daphne and run_bridge processes; real WebSocket clients.
Every wait is on an event (a frame, a log line, an entry in the history
stream), never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
import redis

from harness.clients import recv_json, welcomed, ws_connect
from harness.processes import start_bridge
from harness.updates import job_update
from tests.conftest import CHANNEL
from tests.support.clients import without_position
from tests.support.outages import restart_redis

pytestmark = pytest.mark.e2e

HISTORY_KEY = "botrix:jobs:history"


def key(position: str) -> tuple[int, int]:
    """A position as Redis orders it."""
    ms, seq = position.split("-")
    return int(ms), int(seq)


def wait_recorded(url: str, job_id: str, timeout: float = 10.0) -> None:
    """Block until the newest history entry is ``job_id``'s (the bridge recorded it)."""
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            newest = client.xrevrange(HISTORY_KEY, count=1)
            if newest and newest[0][1][b"j"].decode() == job_id:
                return
            assert time.monotonic() < deadline, f"expected {job_id} recorded in the history"
            time.sleep(0.02)
    finally:
        client.close()


async def assert_nothing_more(ws) -> None:
    """A ping's pong comes next: nothing else (a duplicate, a stray update) was queued."""
    await ws.send('{"type":"ping"}')
    assert await recv_json(ws) == {"type": "pong"}


async def test_reconnect_with_since_gets_exactly_the_missed_updates_in_order_then_live(
    stack, staff_cookie, publish
):
    async with ws_connect(stack.port, staff_cookie) as ws:
        await welcomed(ws)
        publish(job_update("seen"))
        last = (await recv_json(ws))["position"]
    missed = [job_update(f"missed-{n}", "processing", {"n": n}) for n in range(3)]
    for payload in missed:
        publish(payload)
    wait_recorded(stack.redis.url, "missed-2")
    async with ws_connect(stack.port, staff_cookie, f"/ws?since={last}") as ws:
        await welcomed(ws)
        replayed = [await recv_json(ws) for _ in range(3)]
        assert [without_position(f) for f in replayed] == [
            {"type": "job_update", **json.loads(p)} for p in missed
        ]
        positions = [last, *(f["position"] for f in replayed)]
        as_keys = [key(p) for p in positions]
        assert as_keys == sorted(set(as_keys)), f"expected increasing positions: {positions}"
        publish(job_update("live"))
        live = await recv_json(ws)
        assert (live["job_id"], live["type"]) == ("live", "job_update")
        await assert_nothing_more(ws)


@pytest.mark.parametrize("stack", ["fast"], indirect=True)
async def test_reconnect_during_a_steady_stream_has_no_gap_and_no_duplicate(stack, staff_cookie):
    """Updates keep coming while the client resumes: the replay and the live updates
    held back meanwhile must join exactly (subscribe, replay, drop live duplicates)."""
    total, stop = 400, threading.Event()

    def publisher() -> None:
        client = redis.Redis.from_url(stack.redis.url)
        for n in range(total):
            if stop.is_set():
                break
            client.publish(CHANNEL, job_update(f"s-{n}", "processing", {"n": n}))
            time.sleep(0.005)
        client.close()

    thread = threading.Thread(target=publisher, daemon=True)
    try:
        async with ws_connect(stack.port, staff_cookie) as ws:
            await welcomed(ws)
            thread.start()
            frames = [await recv_json(ws) for _ in range(50)]
        assert [f["data"]["n"] for f in frames] == list(range(50))
        since = frames[-1]["position"]
        async with ws_connect(stack.port, staff_cookie, f"/ws?since={since}") as ws:
            await welcomed(ws)
            resumed = [await recv_json(ws) for _ in range(total - 50)]
            await assert_nothing_more(ws)
    finally:
        stop.set()
        thread.join(10)
    numbers = [f["data"]["n"] for f in resumed]
    assert numbers == list(range(50, total)), "expected every later update once, in order"


@pytest.fixture
def small_history(stack):
    """The stack's bridge restarted with a history of about 10 updates."""
    stack.bridge.stop()
    stack.bridge = start_bridge({**stack.env, "JOBUPDATES_HISTORY_SIZE": "10"})
    return stack


@pytest.mark.parametrize("stack", ["fast"], indirect=True)
async def test_a_position_older_than_the_history_is_a_reset_then_live_updates(
    small_history, staff_cookie
):
    stack = small_history
    async with ws_connect(stack.port, staff_cookie) as ws:
        await welcomed(ws)
        client = redis.Redis.from_url(stack.redis.url)
        client.publish(CHANNEL, job_update("first"))
        first = (await recv_json(ws))["position"]
        with client.pipeline(transaction=False) as pipe:  # MAXLEN ~ trims whole stream nodes
            for n in range(400):
                pipe.publish(CHANNEL, job_update(f"fill-{n}"))
            pipe.execute()
        for _ in range(400):
            last = await recv_json(ws, timeout=10)
        assert last["job_id"] == "fill-399"
    oldest = client.xrange(HISTORY_KEY, count=1)[0][0].decode()
    assert client.xlen(HISTORY_KEY) < 401, "expected the history trimmed"
    assert key(oldest) > key(first)
    async with ws_connect(stack.port, staff_cookie, f"/ws?since={first}") as ws:
        await welcomed(ws)
        reset = await recv_json(ws)
        assert (reset["type"], reset["reason"]) == ("reset", "position_too_old"), reset
        assert reset["message"]
        client.publish(CHANNEL, job_update("after-reset"))
        assert (await recv_json(ws))["job_id"] == "after-reset", "expected it live after reset"
        await assert_nothing_more(ws)
    client.close()


@pytest.mark.parametrize("stack", ["fast"], indirect=True)
@pytest.mark.parametrize(
    ("since", "reason"),
    [("99999999999999-0", "unknown_position"), ("yesterday", "invalid_position")],
)
async def test_an_unknown_or_invalid_position_is_a_reset(
    stack, staff_cookie, publish, since, reason
):
    publish(job_update("something"))
    wait_recorded(stack.redis.url, "something")
    async with ws_connect(stack.port, staff_cookie, f"/ws?since={since}") as ws:
        await welcomed(ws)
        reset = await recv_json(ws)
        assert (reset["type"], reset["reason"]) == ("reset", reason), reset
        publish(job_update("next"))
        assert (await recv_json(ws))["job_id"] == "next"


async def test_job_subscription_gets_the_current_state_at_once_then_only_its_updates(
    stack, staff_cookie, publish
):
    publish(job_update("a", "queued", {"step": 1}))
    publish(job_update("b", "queued"))
    wait_recorded(stack.redis.url, "b")
    async with ws_connect(stack.port, staff_cookie, "/ws?job=a") as ws:
        await welcomed(ws)
        state = await recv_json(ws)
        assert without_position(state) == {
            "type": "job_state",
            "job_id": "a",
            "status": "queued",
            "data": {"step": 1},
        }
        publish(job_update("b", "completed"))
        publish(job_update("a", "processing", {"step": 2}))
        nxt = await recv_json(ws)
        assert (nxt["type"], nxt["job_id"], nxt["status"]) == ("job_update", "a", "processing")
        assert key(nxt["position"]) > key(state["position"])

        await ws.send(json.dumps({"type": "subscribe", "job_ids": ["b"]}))
        assert await recv_json(ws) == {"type": "subscribed", "job_ids": ["b"]}
        b_state = await recv_json(ws)
        assert (b_state["type"], b_state["job_id"], b_state["status"]) == (
            "job_state",
            "b",
            "completed",
        )
        await ws.send(json.dumps({"type": "unsubscribe", "job_ids": ["a"]}))
        assert await recv_json(ws) == {"type": "unsubscribed", "job_ids": ["a"]}
        publish(job_update("a", "completed"))
        publish(job_update("b", "failed"))
        nxt = await recv_json(ws)
        assert (nxt["job_id"], nxt["status"]) == ("b", "failed"), "expected a's update dropped"
        await assert_nothing_more(ws)


@pytest.mark.parametrize("stack", ["fast"], indirect=True)  # core-layer consumers die with Redis
async def test_after_a_redis_restart_since_replays_what_the_new_history_holds(
    stack, staff_cookie, publish
):
    """The connection survives the restart and receives again; a reconnect with since=
    replays what it missed afterwards; a position from before the restart (history
    lost with Redis) is a reset, never a silent partial replay."""
    async with ws_connect(stack.port, staff_cookie) as ws:
        await welcomed(ws)
        publish(job_update("before"))
        before = (await recv_json(ws))["position"]
        await asyncio.to_thread(restart_redis, stack.redis, stack.bridge)
        client = redis.Redis.from_url(stack.redis.url)
        client.publish(CHANNEL, job_update("after"))
        reset = await recv_json(ws, timeout=10)  # the restarted Redis lost the history
        assert (reset["type"], reset["reason"]) == ("reset", "gap_not_covered"), reset
        after = (await recv_json(ws, timeout=10))["position"]
    for n in range(3):
        client.publish(CHANNEL, job_update(f"while-away-{n}"))
    wait_recorded(stack.redis.url, "while-away-2")
    async with ws_connect(stack.port, staff_cookie, f"/ws?since={after}") as ws:
        await welcomed(ws)
        got = [(await recv_json(ws))["job_id"] for _ in range(3)]
        assert got == [f"while-away-{n}" for n in range(3)]
        await assert_nothing_more(ws)
    async with ws_connect(stack.port, staff_cookie, f"/ws?since={before}") as ws:
        await welcomed(ws)
        reset = await recv_json(ws)
        assert reset["type"] == "reset"
        assert reset["reason"] in {"position_too_old", "unknown_position"}, reset
    client.close()
