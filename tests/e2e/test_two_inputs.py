"""Both inputs at once, no fault: one order, positions that only grow.

A worker PUBLISHes and another XADDs to the durable ingest stream, 100 updates
a second each, while a client is connected (real Redis, Daphne and bridge
processes). The bridge recorded the two inputs' batches concurrently: a client
got an XADDed update at ``...111-1`` and then a PUBLISHed one at ``...111-0``, so
its resume point depended on which came last, and a resume could skip or
repeat an update. One ordered intake records and sends a batch at a time.

To make the worst instant happen on every cycle rather than by chance, Redis
holds every write for a moment, every 50 ms (``CLIENT PAUSE ... WRITE``): the
two inputs' recordings queue up and are answered in the same instant, so the
bridge, if it let them overlap, would resume either one first.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
import redis

from harness.clients import welcomed, ws_connect
from harness.updates import STREAM, job_update
from tests.support.bridge_faults import Steady, Worker
from tests.support.inbox import Inbox, Key, exactly_once, position_pair

pytestmark = pytest.mark.e2e

EACH = 300
"""Updates each worker publishes."""
PAUSE_MS = 20
"""How long Redis holds every write, once per :data:`CYCLE` seconds."""
CYCLE = 0.05


class StreamWorker(Worker):
    """XADDs numbered updates to the durable ingest stream; every XADD is accepted."""

    def send(self, pipe: Any, key: Key) -> None:
        pipe.xadd(STREAM, {"payload": job_update(key[0], data={"n": key[1]})})

    @staticmethod
    def receivers_of(reply: Any) -> int:
        return 1  # an entry ID: the stream keeps it


def only(inbox: Inbox, job_id: str) -> Inbox:
    """The updates of one worker, as their own inbox, for the per-worker verdict."""
    mine = Inbox(inbox.ws)
    mine.updates = [got for got in inbox.updates if got.key[0] == job_id]
    mine.resets = inbox.resets
    return mine


@pytest.mark.parametrize("stack", ["fast"], indirect=True)
async def test_publish_and_xadd_at_once_reach_a_client_in_one_order(stack, staff_cookie):
    publisher, streamer = Worker(stack.redis.url, "pub"), StreamWorker(stack.redis.url, "xadd")
    drivers = [Steady(publisher, rate=100), Steady(streamer, rate=100)]
    try:
        async with ws_connect(stack.port, staff_cookie) as ws:
            await welcomed(ws)
            inbox = Inbox(ws).start()
            for driver in drivers:
                driver.start()
            pauser = redis.Redis.from_url(stack.redis.url)
            while min(publisher.next, streamer.next) < EACH:
                failed = [driver.error for driver in drivers if driver.error]
                assert not failed, f"a worker failed: {failed}"
                pauser.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")
                await asyncio.sleep(CYCLE)  # the load's rhythm, not a wait for an event
            pauser.close()
            for driver in drivers:
                driver.finish()
            lasts: list[Key] = [publisher.last(), streamer.last()]
            assert await inbox.until(lambda: all(inbox.has(key) for key in lasts), 20)
            assert await inbox.settle()
            await inbox.stop()
    finally:
        for driver in drivers:
            driver.finish()
        publisher.close()
        streamer.close()

    positions = [position_pair(got.position) for got in inbox.updates]
    regressions = [pair for pair in itertools.pairwise(positions) if pair[1] <= pair[0]]
    print(
        f"\n{len(publisher.accepted)} PUBLISHed and {len(streamer.accepted)} XADDed; the client "
        f"received {len(inbox.updates)}; positions going backwards: {len(regressions)}"
    )
    assert regressions == [], f"{len(regressions)} position(s) going backwards: {regressions[:5]}"
    exactly_once(only(inbox, "pub"), publisher.accepted, "PUBLISHed updates")
    exactly_once(only(inbox, "xadd"), streamer.accepted, "XADDed updates")
