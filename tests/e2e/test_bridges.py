"""One active bridge with a hot standby, end to end: exactly once, and a kill -9 takeover.

Two real ``run_bridge`` processes share one lease (JOBUPDATES_BRIDGE_LEASE_TTL,
5 s by default). The standby is subscribed but leaves every update to the
lease holder until the lease expires; it buffers them meanwhile, and on
taking over forwards those the dead bridge never recorded
(jobupdates/ingest/takeover.py). So the test publishes probes until the
first one arrives, and requires every probe, from the first, exactly once and
in order (tests/e2e/test_takeover.py does it under load).
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from harness.clients import recv_json, welcomed, ws_connect
from harness.processes import start_bridge
from harness.updates import job_update
from tests.conftest import CHANNEL

pytestmark = pytest.mark.e2e

TAKEOVER_LIMIT = 10.0
"""Seconds the standby may take to deliver after the active bridge is killed."""
PROBE_INTERVAL = 0.1


async def receive_numbers(ws, job_id: str, count: int) -> list[int]:
    numbers = []
    while len(numbers) < count:
        frame = await recv_json(ws, timeout=5)
        assert frame["job_id"] == job_id, frame
        numbers.append(frame["data"]["n"])
    return numbers


async def takeover_in_stats(client: redis.Redis, pid: int) -> None:
    """Wait until the bridge with ``pid`` reports itself active after one takeover."""
    from jobupdates.ingest.report import read_reports

    deadline = time.monotonic() + 5
    while True:
        mine = [r for r in read_reports(client) if f":{pid}:" in r.bridge]
        if mine and (mine[0].role, mine[0].takeovers) == ("active", 1):
            return
        assert time.monotonic() < deadline, f"expected the takeover in the stats, got {mine}"
        await asyncio.sleep(0.1)


async def nothing_more(ws) -> None:
    await ws.send('{"type":"ping"}')
    assert await recv_json(ws) == {"type": "pong"}, "expected no duplicate before the pong"


@pytest.mark.parametrize("stack", ["fast"], indirect=True)
async def test_two_bridges_deliver_once_and_the_standby_takes_over_a_kill_9(
    stack, staff_cookie, publish
):
    active = stack.bridge
    fast_reports = {
        "JOBUPDATES_REGISTRY_INTERVAL": "0.5",
        "JOBUPDATES_REGISTRY_SOCKET_TIMEOUT": "0.5",
    }
    standby = start_bridge({**stack.env, **fast_reports}, active=False)
    try:
        standby.wait_for(r"-> subscribed: .* as a standby")
        client = redis.Redis.from_url(stack.redis.url)
        async with ws_connect(stack.port, staff_cookie) as ws:
            await welcomed(ws)
            count = 300
            with client.pipeline(transaction=False) as pipe:
                for n in range(count):
                    pipe.publish(CHANNEL, job_update("before", data={"n": n}))
                receivers = pipe.execute()
            assert set(receivers) == {2}, "expected both bridges subscribed"
            assert await receive_numbers(ws, "before", count) == list(range(count))
            await nothing_more(ws)

            mark = standby.mark()
            active.kill()
            killed = time.monotonic()
            probe = 0
            while True:  # probes published before the takeover are buffered, then forwarded
                assert publish(job_update("probe", data={"n": probe})) == 1, (
                    "expected the standby subscribed"
                )
                probe += 1
                try:
                    first = await recv_json(ws, timeout=PROBE_INTERVAL)
                    break
                except TimeoutError:
                    assert time.monotonic() - killed < TAKEOVER_LIMIT, "expected a takeover"
            takeover = time.monotonic() - killed
            assert first["job_id"] == "probe"
            assert first["data"]["n"] == 0, "expected the first probe, buffered by the standby"
            later = await receive_numbers(ws, "probe", probe - 1)
            assert later == list(range(1, probe)), "expected every probe once, in order"
            assert takeover < TAKEOVER_LIMIT
            print(f"takeover: first delivery {takeover:.2f}s after kill -9")
            standby.wait_for(r"is now the active bridge", after=mark, timeout=1)
            await takeover_in_stats(client, standby.popen.pid)

            with client.pipeline(transaction=False) as pipe:
                for n in range(count):
                    pipe.publish(CHANNEL, job_update("after", data={"n": n}))
                pipe.execute()
            assert await receive_numbers(ws, "after", count) == list(range(count))
            await nothing_more(ws)
        client.close()
    finally:
        standby.stop()


@pytest.mark.parametrize("stack", ["fast"], indirect=True)
async def test_a_gracefully_stopped_active_bridge_hands_over_at_once(stack, staff_cookie, publish):
    """SIGTERM releases the lease, so the standby takes over within one lease interval."""
    standby = start_bridge(stack.env, active=False)
    try:
        async with ws_connect(stack.port, staff_cookie) as ws:
            await welcomed(ws)
            mark = standby.mark()
            stopped = time.monotonic()
            assert stack.bridge.stop() == 0
            standby.wait_for(r"is now the active bridge", after=mark, timeout=5)
            assert time.monotonic() - stopped < 5
            publish(job_update("handed-over", data={"n": 0}))
            assert (await recv_json(ws))["job_id"] == "handed-over"
            await asyncio.wait_for(nothing_more(ws), 5)
    finally:
        standby.stop()
