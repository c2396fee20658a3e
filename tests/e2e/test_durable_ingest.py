"""Durable ingest end to end: the only bridge SIGKILLed, 10 s with no bridge, a new one.

A worker XADDs 100 updates/s to the ingest stream throughout; one WebSocket
client, connected to Daphne the whole time, counts them. Every update must
arrive once, in order: those added while no bridge ran are forwarded by the
new bridge when it starts (the dead one's pending entries it claims, skipping
those already in the history).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest
import redis.asyncio as aioredis

from harness.clients import recv_json, welcomed, ws_connect
from harness.processes import start_bridge

pytestmark = pytest.mark.e2e

STREAM = "botrix:jobs:ingest"
RATE = 100
"""Updates per second the worker XADDs."""
OUTAGE_UPDATES = 10 * RATE
"""Updates added while no bridge runs: 10 s at RATE."""
AFTER_UPDATES = 3 * RATE
"""Updates added after the new bridge started."""


class Worker:
    """XADDs ``{"n": 0, 1, 2...}`` updates of job ``durable`` at RATE per second."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.added = 0
        self.changed = asyncio.Condition()
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        started = time.monotonic()
        while not self.stopping.is_set():
            update = {"job_id": "durable", "status": "processing", "data": {"n": self.added}}
            await self.client.xadd(STREAM, {"payload": json.dumps(update)})
            async with self.changed:
                self.added += 1
                self.changed.notify_all()
            due = started + self.added / RATE  # pacing, not waiting for an event
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def wait_added(self, count: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.added >= count)


class Counter:
    """The client's side: every ``n`` received, in order of arrival."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.changed = asyncio.Condition()

    async def run(self, ws) -> None:
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == "job_update" and frame["job_id"] == "durable":
                async with self.changed:
                    self.received.append(frame["data"]["n"])
                    self.changed.notify_all()

    async def wait_received(self, count: int, timeout: float) -> None:
        async with self.changed:
            await asyncio.wait_for(
                self.changed.wait_for(lambda: len(self.received) >= count), timeout
            )


@pytest.mark.parametrize("stack", ["fast"], indirect=True)
async def test_durable_ingest_loses_and_duplicates_nothing_across_a_kill_9_and_10s_without_bridge(
    stack, staff_cookie
):
    client = aioredis.Redis.from_url(stack.redis.url)
    worker = Worker(client)
    counter = Counter()
    async with ws_connect(stack.port, staff_cookie) as ws:
        await welcomed(ws)
        counting = asyncio.create_task(counter.run(ws))
        writing = asyncio.create_task(worker.run())
        try:
            await counter.wait_received(RATE, timeout=20)  # flowing through the first bridge
            stack.bridge.kill()
            killed_at = worker.added
            delivered_before = len(counter.received)
            await worker.wait_added(killed_at + OUTAGE_UPDATES)  # 10 s with no bridge
            started = time.monotonic()
            stack.bridge = await asyncio.to_thread(start_bridge, stack.env)
            active = time.monotonic() - started
            target = worker.added + AFTER_UPDATES
            await worker.wait_added(target)
            worker.stopping.set()
            await writing
            total = worker.added
            await counter.wait_received(total, timeout=30)
            caught_up = time.monotonic() - started
            await ws.send('{"type":"ping"}')
            await asyncio.wait_for(_until_pong(ws, counting), 5)
        finally:
            worker.stopping.set()
            counting.cancel()
            await client.aclose()
    received = counter.received
    lost = len(set(range(total)) - set(received))
    duplicated = len(received) - len(set(received))
    print(
        f"durable ingest: {total} updates XADDed at {RATE}/s; bridge SIGKILLed after "
        f"{killed_at} ({delivered_before} delivered by then), {OUTAGE_UPDATES} added with no "
        f"bridge; new bridge active {active:.2f}s after start, all delivered "
        f"{caught_up:.2f}s after start; lost {lost}, duplicated {duplicated}, "
        f"in order {received == sorted(received)}"
    )
    assert (lost, duplicated) == (0, 0)
    assert received == list(range(total)), "expected every update once, in order"


async def _until_pong(ws, counting: asyncio.Task[None]) -> None:
    """Stop the counter, then read until the pong: nothing more may come first."""
    counting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await counting
    frame = await recv_json(ws)
    assert frame == {"type": "pong"}, f"expected no duplicate before the pong, got {frame}"
