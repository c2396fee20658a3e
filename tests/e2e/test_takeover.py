"""Plain PUBLISH loses nothing when the active bridge of two dies or is stopped.

Three real ``run_bridge`` processes in turn, at 100 updates/s PUBLISHed
throughout and one WebSocket client counting: the active bridge is SIGKILLed
(its standby buffers what arrives until the lease expires, then forwards
exactly what the dead one never recorded), a third bridge starts as the new
standby, and the new active bridge is stopped with SIGTERM (it releases the
lease; the third takes over the same way). Every update arrives exactly once,
in order. (Before the standby ring, the kill alone lost about 5 s of updates:
tests/e2e/test_bridges.py.)

Each takeover's figures (its log line) are checked too: what it buffered is
what it found in the history plus what it forwarded; on the SIGKILL, what it
found is exactly what the dead bridge had recorded (read from the history
between the kill and the takeover), and what it forwarded is exactly what it
then recorded first, the updates after those, in order.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
import redis

from harness.clients import recv_json, welcomed, ws_connect
from harness.processes import Process, start_bridge
from harness.updates import job_update
from tests.conftest import CHANNEL

pytestmark = pytest.mark.e2e

RATE = 100
"""Updates published per second."""
BATCH = 10
"""Updates published at once, every BATCH / RATE seconds."""
TAKEOVER = r"takeover: (\d+) update\(s\) buffered, (\d+) already in the history, forwarding (\d+)"
HISTORY = "botrix:jobs:history"
"""The history stream (``JOBUPDATES_HISTORY_KEY``'s default)."""
LEASE = "botrix:jobs:bridge:active"
"""The bridges' lease (``JOBUPDATES_BRIDGE_LEASE_KEY``'s default)."""


class Publisher(threading.Thread):
    """PUBLISHes job "load" updates n = 0, 1, ... at RATE per second until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.sent = 0
        self.halt = threading.Event()
        self.unheard = 0
        """Updates that fewer than two bridges received."""

    def run(self) -> None:
        started = time.monotonic()
        while not self.halt.is_set():
            with self.client.pipeline(transaction=False) as pipe:
                for n in range(self.sent, self.sent + BATCH):
                    pipe.publish(CHANNEL, job_update("load", data={"n": n}))
                receivers = pipe.execute()
            self.unheard += sum(1 for r in receivers if r < 1)
            self.sent += BATCH
            self.halt.wait(max(0.0, started + self.sent / RATE - time.monotonic()))
        self.client.close()


class Counter:
    """Reads one WebSocket's job updates; lets a test wait for the nth."""

    def __init__(self) -> None:
        self.numbers: list[int] = []
        self._grew = asyncio.Event()

    async def read(self, ws) -> None:
        while True:
            frame = await recv_json(ws, timeout=60)
            if frame.get("type") == "pong":
                self.numbers.append(-1)
            else:
                assert frame["job_id"] == "load", frame
                self.numbers.append(frame["data"]["n"])
            self._grew.set()

    async def until(self, count: int) -> None:
        while len(self.numbers) < count:
            self._grew.clear()
            await self._grew.wait()


async def active_after(process: Process, mark: int) -> None:
    await asyncio.to_thread(process.wait_for, r"is now the active bridge", after=mark, timeout=30)


def figures(process: Process, mark: int) -> tuple[int, int, int]:
    found = process.wait_for(TAKEOVER, after=mark, timeout=10)
    buffered, recorded, forwarded = (int(found.group(i)) for i in (1, 2, 3))
    return buffered, recorded, forwarded


def gaps_logged(process: Process) -> list[str]:
    return [line for line in process.lines if "may be lost" in line]


def load_numbers(entries: list[Any]) -> list[int]:
    """The ``n`` of each "load" update among history entries (``XRANGE``'s), in order."""
    frames = [json.loads(fields[b"f"]) for _, fields in entries if fields.get(b"j") == b"load"]
    return [frame["data"]["n"] for frame in frames]


def lease_value(url: str) -> bytes | None:
    client = redis.Redis.from_url(url)
    try:
        value: bytes | None = client.get(LEASE)
        return value
    finally:
        client.close()


def recorded_by_the_dead(url: str, lease: bytes | None) -> tuple[bytes, list[int]]:
    """The history as the SIGKILLed bridge left it, read before the next one takes over:
    its newest entry's ID and the load numbers recorded.

    ``lease`` is the lease's value before the kill. The read is checked to come before
    the takeover: the lease, read with it atomically, is still the dead bridge's (or
    expired, not yet taken), and a bridge records only while it holds the lease.
    """
    client = redis.Redis.from_url(url)
    try:
        # What the dead bridge wrote to its sockets is in Redis's input buffers: Redis
        # runs it in the event-loop turn that answers this PING, if not before.
        client.ping()
        with client.pipeline(transaction=True) as pipe:
            pipe.get(LEASE)
            pipe.xrange(HISTORY)
            now, entries = pipe.execute()
    finally:
        client.close()
    assert now in (lease, None), f"expected the history read before the takeover: {now!r}"
    assert entries, "expected the killed bridge to have recorded updates"
    return entries[-1][0], load_numbers(entries)


def recorded_after(url: str, position: bytes, count: int) -> list[int]:
    """The load numbers of the first ``count`` history entries after ``position``."""
    client = redis.Redis.from_url(url)
    try:
        return load_numbers(client.xrange(HISTORY, b"(" + position, "+", count=count))
    finally:
        client.close()


@pytest.mark.parametrize("stack", ["fast"], indirect=True)
async def test_a_kill_9_then_a_sigterm_lose_nothing_at_100_updates_a_second(stack, staff_cookie):
    first = stack.bridge
    second = start_bridge(stack.env, active=False)
    third: Process | None = None
    publisher = Publisher(stack.redis.url)
    try:
        second.wait_for(r"-> subscribed: .* as a standby")
        async with ws_connect(stack.port, staff_cookie) as ws:
            await welcomed(ws)
            counter = Counter()
            reading = asyncio.create_task(counter.read(ws))
            publisher.start()
            await counter.until(RATE)  # the first bridge forwards

            mark = second.mark()
            lease = await asyncio.to_thread(lease_value, stack.redis.url)  # the first's
            first.kill()
            killed_at = publisher.sent
            last, recorded = await asyncio.to_thread(recorded_by_the_dead, stack.redis.url, lease)
            await active_after(second, mark)
            kill_figures = figures(second, mark)
            buffered, already, forwarded = kill_figures
            # The standby subscribed before the first publish, and its ring (30 s, 10000
            # updates) holds everything since: updates 0 .. buffered - 1. The dead bridge
            # recorded a prefix of them; the takeover forwards the rest.
            assert recorded == list(range(len(recorded))), "expected a prefix, once, in order"
            assert buffered == already + forwarded, kill_figures
            assert forwarded >= 1, f"expected the kill to leave updates unrecorded: {kill_figures}"
            assert already == len(recorded), (
                f"expected the takeover to find the {len(recorded)} updates the dead bridge"
                f" recorded: {kill_figures}"
            )
            await counter.until(max(buffered, killed_at + RATE))  # so the forwarded are recorded
            first_recorded = await asyncio.to_thread(
                recorded_after, stack.redis.url, last, forwarded
            )
            assert first_recorded == list(range(already, buffered)), (
                f"expected the new bridge to record the {forwarded} forwarded updates first,"
                f" {already} to {buffered - 1}: got {first_recorded}"
            )

            third = await asyncio.to_thread(start_bridge, stack.env, active=False)
            listening = publisher.sent  # the batch from listening + BATCH is built after this
            # so the third buffers at least one update that the second records:
            await counter.until(max(len(counter.numbers) + RATE, listening + BATCH + 1))
            mark = third.mark()
            assert await asyncio.to_thread(second.stop) == 0
            stopped_at = publisher.sent
            await active_after(third, mark)
            term_figures = figures(third, mark)
            assert term_figures[0] == term_figures[1] + term_figures[2], term_figures
            assert term_figures[1] >= 1, f"expected the ring to overlap the history: {term_figures}"
            await counter.until(stopped_at + RATE)

            publisher.halt.set()
            await asyncio.to_thread(publisher.join, 10)
            total = publisher.sent
            await counter.until(total)
            await ws.send('{"type":"ping"}')
            await counter.until(total + 1)  # the pong: nothing more was in flight
            reading.cancel()

        numbers = counter.numbers[:-1]
        assert counter.numbers[-1] == -1, "expected the pong last: no duplicates after it"
        lost = sorted(set(range(total)) - set(numbers))
        duplicated = len(numbers) - len(set(numbers))
        print(
            f"\n{total} updates at {RATE}/s; SIGKILL at #{killed_at}: the standby buffered "
            f"{kill_figures[0]}, found {kill_figures[1]} in the history (the dead one had "
            f"recorded {len(recorded)}), forwarded {kill_figures[2]}; SIGTERM at "
            f"#{stopped_at}: buffered {term_figures[0]}, found {term_figures[1]}, "
            f"forwarded {term_figures[2]}; lost {len(lost)}, "
            f"duplicated {duplicated} (without the ring, the kill lost ~5 s: ~500)"
        )
        assert publisher.unheard == 0, "expected a bridge subscribed throughout"
        assert lost == [], f"expected nothing lost, lost {len(lost)}: {lost[:20]}"
        assert duplicated == 0
        assert numbers == list(range(total)), "expected every update once, in order"
        assert gaps_logged(second) == []
        assert gaps_logged(third) == []
    finally:
        publisher.halt.set()
        second.stop()
        if third is not None:
            third.stop()
