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
from redis.exceptions import RedisError

from harness.clients import recv_json, welcomed, ws_connect
from harness.processes import start_bridge
from harness.updates import STREAM, job_update
from tests.support.outages import restart_redis

pytestmark = pytest.mark.e2e

RATE = 100
"""Updates per second the worker XADDs."""
OUTAGE_UPDATES = 10 * RATE
"""Updates added while no bridge runs: 10 s at RATE."""
AFTER_UPDATES = 3 * RATE
"""Updates added after the new bridge started."""


class Worker:
    """XADDs ``{"n": 0, 1, 2...}`` updates of job ``durable`` at RATE per second, one
    attempt per n: what Redis refused (while it restarts) is counted, not retried."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.attempts = 0
        self.accepted: list[int] = []
        self.refused: list[int] = []
        self.changed = asyncio.Condition()
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        started = time.monotonic()
        while not self.stopping.is_set():
            n = self.attempts
            update = job_update("durable", "processing", {"n": n})
            try:
                added = await self.client.xadd(STREAM, {"payload": update})
            except (RedisError, OSError):
                added = None
            async with self.changed:
                (self.accepted if added else self.refused).append(n)
                self.attempts += 1
                self.changed.notify_all()
            due = started + self.attempts / RATE  # pacing, not waiting for an event
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def wait_accepted(self, count: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: len(self.accepted) >= count)


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
            killed_at = len(worker.accepted)
            delivered_before = len(counter.received)
            await worker.wait_accepted(killed_at + OUTAGE_UPDATES)  # 10 s with no bridge
            started = time.monotonic()
            stack.bridge = await asyncio.to_thread(start_bridge, stack.env)
            active = time.monotonic() - started
            await worker.wait_accepted(len(worker.accepted) + AFTER_UPDATES)
            worker.stopping.set()
            await writing
            assert worker.refused == [], "expected Redis to take every XADD"
            total = len(worker.accepted)
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


class ResetCounter(Counter):
    """The client's side, also counting ``reset`` frames."""

    def __init__(self) -> None:
        super().__init__()
        self.resets = 0
        self.received_before_reset: int | None = None

    async def run(self, ws) -> None:
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == "reset":
                self.resets += 1
                if self.received_before_reset is None:
                    self.received_before_reset = len(self.received)
            elif frame.get("type") == "job_update" and frame["job_id"] == "durable":
                async with self.changed:
                    self.received.append(frame["data"]["n"])
                    self.changed.notify_all()


async def _restart_under_load(port: int, cookie: str, stack) -> dict:
    """XADD at RATE, restart Redis, keep XADDing; return what was accepted and received."""
    client = aioredis.Redis.from_url(stack.redis.url)
    worker = Worker(client)
    counter = ResetCounter()
    async with ws_connect(port, cookie) as ws:
        await welcomed(ws)
        counting = asyncio.create_task(counter.run(ws))
        writing = asyncio.create_task(worker.run())
        try:
            await counter.wait_received(RATE, timeout=20)  # flowing through the bridge
            stopping_at = worker.attempts
            started = await asyncio.to_thread(restart_redis, stack.redis, stack.bridge)
            back = time.monotonic() - started
            stack_back_at = worker.attempts  # the bridge active, Daphne subscribed
            await worker.wait_accepted(len(worker.accepted) + AFTER_UPDATES)
            worker.stopping.set()
            await writing
            await _until_received(counter, worker.accepted[-1], timeout=30)
            await ws.send('{"type":"ping"}')
            await asyncio.wait_for(_until_pong(ws, counting), 5)
        finally:
            worker.stopping.set()
            counting.cancel()
            await client.aclose()
    refused = worker.refused
    came_back_at = min(refused) if refused else stack_back_at
    """Attempts from the first refused one on went to the restarted Redis, if accepted."""
    figures = {
        "accepted": worker.accepted,
        "refused": refused,
        "received": counter.received,
        "resets": counter.resets,
        "received_before_reset": counter.received_before_reset,
        "since_redis_back": [n for n in worker.accepted if n > came_back_at],
        "since_stack_back": [n for n in worker.accepted if n >= stack_back_at],
    }
    before = {n for n in worker.accepted if n < stopping_at}
    received = counter.received
    lost = {
        key: sorted(set(figures[key]) - set(received))
        for key in ("since_redis_back", "since_stack_back")
    }
    figures["lost"] = lost
    figures["duplicated"] = len(received) - len(set(received))
    print(
        f"\nRedis restarted under durable ingest at {RATE}/s: {worker.attempts} XADDs, "
        f"{len(worker.accepted)} accepted, {len(refused)} refused while Redis was down "
        f"(n {refused[:1]}..{refused[-1:]}); bridge active and Daphne subscribed again "
        f"{back:.2f}s after Redis started (at XADD #{stack_back_at}); client resets "
        f"{counter.resets}; accepted since Redis was back: {len(figures['since_redis_back'])}, "
        f"lost {len(lost['since_redis_back'])} (n {lost['since_redis_back'][:1]}.."
        f"{lost['since_redis_back'][-1:]}); accepted since the stack was back: "
        f"{len(figures['since_stack_back'])}, lost {len(lost['since_stack_back'])}; "
        f"duplicated {figures['duplicated']}; accepted before the restart and never "
        f"delivered (the old Redis's data): {len(before - set(received))}"
    )
    return figures


def _in_order(figures: dict, key: str) -> bool:
    wanted = set(figures[key])
    return [n for n in figures["received"] if n in wanted] == figures[key]


@pytest.mark.parametrize("stack", ["fast"], indirect=True)
async def test_redis_restarted_under_load_loses_no_update_accepted_after_the_restart(
    stack, staff_cookie
):
    figures = await _restart_under_load(stack.port, staff_cookie, stack)
    assert figures["resets"] >= 1, "expected a reset: the restarted Redis lost the history"
    assert figures["lost"]["since_redis_back"] == [], "expected every accepted update delivered"
    assert figures["duplicated"] == 0
    assert _in_order(figures, "since_redis_back")
    first = figures["received"].index(figures["since_redis_back"][0])
    assert first >= figures["received_before_reset"], "expected the reset before the replay"


async def _until_received(counter: Counter, last: int, timeout: float) -> None:
    """Wait until ``last`` arrived (updates that never arrive make this time out)."""
    async with counter.changed:
        await asyncio.wait_for(counter.changed.wait_for(lambda: last in counter.received), timeout)
